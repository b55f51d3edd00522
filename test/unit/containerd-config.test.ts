import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_PAUSE_VERSION,
  packageVersionPolicyProblems,
  resolveAdminPolicy,
  validateClusterPackageVersionSpec,
} from "../../src/api/v1alpha1";
import { containerdConfig, hostsToml, registryHostsLines, resolvedRuntime, tomlString } from "../../src/host/scripts/containerd";
import { writeFileLines } from "../../src/host/scripts/install";
import { preamble } from "../../src/host/scripts/shell";
import { packages } from "../support/worker-fixtures";

const catalog = (extra: Record<string, unknown>) => ({ clusterRef: { name: "c" }, packages: packages(), ...extra });

describe("containerd 2 config", () => {
  it("is config version 3 with the CRI plugins' ids, the sandbox image and certs.d under the install root", () => {
    const config = containerdConfig("/srv/h", "cgroupfs", { sandboxImage: "mirror.example.com/k8s/pause:3.10.2" });
    expect(config.startsWith("version = 3\n")).toBe(true);
    expect(config).toContain("[plugins.'io.containerd.cri.v1.images'.pinned_images]\n      sandbox = \"mirror.example.com/k8s/pause:3.10.2\"");
    expect(config).toContain("[plugins.'io.containerd.cri.v1.images'.registry]\n      config_path = \"/srv/h/etc/containerd/certs.d\"");
    expect(config).toContain("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n          SystemdCgroup = false");
    expect(config).toContain('bin_dirs = ["/srv/h/opt/cni/bin"]');
    expect(config).toContain('address = "/srv/h/run/containerd/containerd.sock"');
    expect(config).not.toContain("io.containerd.grpc.v1.cri'.containerd");
  });

  it("defaults the sandbox image to registry.k8s.io's pause of the named version and the systemd driver", () => {
    const config = containerdConfig("/");
    expect(config).toContain(`sandbox = "registry.k8s.io/pause:${DEFAULT_PAUSE_VERSION}"`);
    expect(DEFAULT_PAUSE_VERSION).toBe("3.10.2");
    expect(config).toContain("SystemdCgroup = true");
    expect(config).toContain('root = "/var/lib/containerd"');
  });

  it("keeps config version 2 and the 1.x CRI plugin for a catalog that still installs containerd 1.x", () => {
    const config = containerdConfig("/srv/h", "cgroupfs", { sandboxImage: "registry.k8s.io/pause:3.10.2" }, { restrictOomScoreAdj: true }, "1.7.22");
    expect(config.startsWith("version = 2\n")).toBe(true);
    expect(config).toContain('[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "registry.k8s.io/pause:3.10.2"\n  restrict_oom_score_adj = true');
    expect(config).toContain('config_path = "/srv/h/etc/containerd/certs.d"');
    expect(config).not.toContain("io.containerd.cri.v1");
    expect(containerdConfig("/", "systemd", {}, {}, "2.4.2").startsWith("version = 3\n")).toBe(true);
    expect(containerdConfig("/", "systemd", {}, {}, "v1.6.20~ds1").startsWith("version = 2\n")).toBe(true);
  });

  it("writes one hosts.toml per registry: upstream server, each mirror for pull and resolve, in order", () => {
    expect(hostsToml("registry.k8s.io", ["http://127.0.0.1:5000", "https://m2.example.com/v"])).toBe(
      'server = "https://registry.k8s.io"\n\n[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n\n[host."https://m2.example.com/v"]\n  capabilities = ["pull", "resolve"]\n',
    );
    expect(hostsToml("docker.io", ["https://m"])).toContain('server = "https://registry-1.docker.io"');
  });
});

describe("tenant strings in TOML", () => {
  it("tomlString keeps any text one escaped string on one line", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        const t = tomlString(s);
        expect(t).not.toMatch(/[\n\r]/);
        // TOML basic-string escapes used here are JSON's: the value decodes back unchanged.
        expect(JSON.parse(t)).toBe(s);
      }),
    );
  });

  it("refuses at render time a mirror or registry validation should have refused", () => {
    const evil = 'http://m"]\n[host."http://evil"]\n  capabilities = ["push';
    expect(() => resolvedRuntime({ registryMirrors: { "registry.k8s.io": [evil] } })).toThrow(/mirror .*evil/);
    expect(() => resolvedRuntime({ registryMirrors: { "../../etc/cron.d": ["http://m"] } })).toThrow(/registry "..\/..\/etc\/cron.d"/);
    expect(() => containerdConfig("/", "systemd", { sandboxImage: 'x"\nimports = ["/tmp/evil.toml"]' })).toThrow(/sandboxImage/);
  });

  it("even an unchecked mirror URL stays inside its [host] key", () => {
    const evil = 'http://m"]\n[host."http://evil"]\n  capabilities = ["push';
    const lines = hostsToml("registry.k8s.io", [evil]).split("\n");
    expect(lines.filter((l) => l.startsWith("[host."))).toHaveLength(1);
    expect(lines).toHaveLength(5);
    expect(JSON.parse(lines[2].slice("[host.".length, -1))).toBe(evil);
  });
});

describe("registryMirrors validation", () => {
  it("accepts registry hosts with ports and http(s) mirrors", () => {
    expect(validateClusterPackageVersionSpec(catalog({ registryMirrors: { "registry.k8s.io": ["https://mirror.example.com"], "localhost:5000": ["http://10.0.0.1:5000/v"] } }))).toEqual([]);
  });

  it("names every bad key and URL by its path", () => {
    const problems = validateClusterPackageVersionSpec(
      catalog({
        registryMirrors: {
          "Registry.K8s.io/path": ["https://ok.example.com"],
          "docker.io": ["ftp://m.example.com", 'https://m.example.com/"\nx', "https://user:pw@m.example.com"],
          "quay.io": [],
        },
      }),
    );
    expect(problems.map((p) => p.path)).toEqual([
      'spec.registryMirrors["Registry.K8s.io/path"]',
      'spec.registryMirrors["docker.io"][0]',
      'spec.registryMirrors["docker.io"][1]',
      'spec.registryMirrors["docker.io"][2]',
      'spec.registryMirrors["quay.io"]',
    ]);
    expect(problems[2].message).toContain("not a mirror URL");
  });

  it("checks mirrors and the sandbox image against the admin policy's allowedRegistries", () => {
    const policy = resolveAdminPolicy({ allowedRegistries: ["registry.k8s.io", "mirror.example.com/k8s"] });
    const problems = packageVersionPolicyProblems(
      { sandboxImage: "evil.example.com/pause:3.10.2", registryMirrors: { "registry.k8s.io": ["https://mirror.example.com/k8s", "https://mirror.example.com/other", "http://evil.example.com"] } },
      policy,
    );
    expect(problems.map((p) => `${p.path} ${p.rule}`)).toEqual([
      "spec.sandboxImage allowedRegistries",
      'spec.registryMirrors["registry.k8s.io"][1] allowedRegistries',
      'spec.registryMirrors["registry.k8s.io"][2] allowedRegistries',
    ]);
  });
});

describe("the certs.d lines run", () => {
  const run = (root: string, mirrors: Record<string, string[]>) =>
    execFileSync("bash", ["-c", `${preamble("containerd", root)}changed=0\n${registryHostsLines({ registryMirrors: mirrors }, writeFileLines)}echo "changed=$changed"`], { encoding: "utf8" });

  it("write the catalog's registries, remove ones it dropped, and leave an admin's own alone", () => {
    const root = mkdtempSync(path.join(tmpdir(), "kok-certsd-"));
    try {
      const certs = path.join(root, "etc/containerd/certs.d");
      mkdirSync(path.join(certs, "admin.example.com"), { recursive: true });
      writeFileSync(path.join(certs, "admin.example.com/hosts.toml"), "server = \"https://admin.example.com\"\n");
      expect(run(root, { "registry.k8s.io": ["http://127.0.0.1:5000"], "docker.io": ["http://127.0.0.1:5000"] })).toContain("changed=1");
      expect(readFileSync(path.join(certs, "registry.k8s.io/hosts.toml"), "utf8")).toBe(hostsToml("registry.k8s.io", ["http://127.0.0.1:5000"]));
      expect(run(root, { "registry.k8s.io": ["http://127.0.0.1:5000"], "docker.io": ["http://127.0.0.1:5000"] })).toContain("changed=0");
      run(root, { "registry.k8s.io": ["http://127.0.0.1:5000"] });
      expect(readdirSync(certs).sort()).toEqual(["admin.example.com", "registry.k8s.io"]);
      run(root, {});
      expect(readdirSync(certs)).toEqual(["admin.example.com"]);
      expect(existsSync(path.join(certs, "admin.example.com/hosts.toml"))).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
