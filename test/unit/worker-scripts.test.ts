import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import YAML from "yaml";
import { describe, expect, it } from "vitest";
import { cniScript, containerdConfig, containerdScript, kubeletConfig, kubeletScript, runcScript, writeFileLines, type HostLayout } from "../../src/host/scripts/install";
import { drainScript, kubeletKubeconfig, readyScript, removeNodeScript } from "../../src/host/scripts/kubectl";
import { cleanupScript, hostMarkerScript, joinScript, kubeletFlags, nodeLabels, verifyScript } from "../../src/host/scripts/node";
import { preflightScript } from "../../src/host/scripts/preflight";
import { bashCommand, shellQuote } from "../../src/host/scripts/shell";
import { parseVerifyOutput } from "../../src/components/worker-node";
import { packages } from "../support/worker-fixtures";

const layouts: HostLayout[] = [
  { installRoot: "/", serviceManager: "systemd" },
  { installRoot: "/srv/test host's root", serviceManager: "none" },
  { installRoot: "/srv/host-2", serviceManager: "process" },
];
const inner = (command: string) => {
  const prefix = "/bin/bash -c ";
  expect(command.startsWith(prefix)).toBe(true);
  return execFileSync("bash", ["-c", `printf %s ${command.slice(prefix.length)}`], { encoding: "utf8" });
};

describe("shellQuote", () => {
  it("turns any string into one bash word that expands to itself", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }).filter((s) => !s.includes("\0")), (s) => {
        expect(execFileSync("bash", ["-c", `printf %s ${shellQuote(s)}`], { encoding: "utf8" })).toBe(s);
      }),
      { numRuns: 60 },
    );
    // 60 bash processes: past vitest's 5 s default on a loaded 2-core machine (seen at load 22).
  }, 60_000);
});

describe("host scripts", () => {
  const all = (layout: HostLayout) => ({
    host: hostMarkerScript("worker-0001", layout),
    preflight: preflightScript({ hostname: "worker-0001", ignore: ["swap"] }, layout),
    containerd: containerdScript(packages().containerd, layout),
    runc: runcScript({ version: "1.1.5", url: "http://m/runc", sha256: "f".repeat(64) }, layout),
    kubelet: kubeletScript(packages().kubelet, { clusterDNS: ["10.96.0.10"] }, layout),
    kubeletServing: kubeletScript(packages().kubelet, { clusterDNS: ["10.96.0.10"] }, layout, true),
    cni: cniScript(packages().cni, layout),
    join: joinScript({ ip: "192.0.2.11", hostname: "worker-0001", labels: { a: "b" }, taints: [], caCertificate: "CA\n", credentials: "certificate" }, layout),
    verify: verifyScript(layout),
    cleanup: cleanupScript(layout),
  });

  it.each(layouts)("are valid bash for installRoot %j", (layout) => {
    for (const [step, command] of Object.entries(all(layout))) {
      const script = inner(command);
      expect(() => execFileSync("bash", ["-n", "-c", script]), step).not.toThrow();
      expect(script.startsWith("set -euo pipefail\n"), step).toBe(true);
    }
  });

  it("are pure: the same inputs give the same text, so Pulumi sees no change", () => {
    expect(all(layouts[0])).toEqual(all(layouts[0]));
  });

  it("start and restart services only with systemd", () => {
    expect(inner(all(layouts[0]).containerd)).toContain("systemctl restart containerd");
    expect(inner(all(layouts[1]).containerd)).not.toContain("systemctl");
    expect(inner(all(layouts[1]).cleanup)).not.toContain("systemctl");
    expect(inner(all(layouts[0]).preflight)).toContain("modprobe \"$m\" 2>/dev/null");
    expect(inner(all(layouts[1]).preflight)).not.toContain("modprobe \"$m\" 2>/dev/null");
  });

  it("run the daemons as detached processes with pid files in process mode", () => {
    const join = inner(all(layouts[2]).join);
    expect(join).toContain('setsid bash -c "exec $*"');
    expect(join).toContain("svc_start kubelet");
    expect(inner(all(layouts[2]).cleanup)).toContain("svc_stop kubelet");
    // The Pods' containers outlive containerd: ended after the kubelet, before containerd.
    const cleanup = inner(all(layouts[2]).cleanup);
    expect(cleanup.indexOf("svc_stop kubelet")).toBeLessThan(cleanup.indexOf("tasks kill -a -s SIGTERM"));
    expect(cleanup.indexOf("tasks delete -f")).toBeLessThan(cleanup.indexOf("svc_stop containerd"));
    expect(inner(all(layouts[2]).verify)).toContain('svc_running "$svc"');
  });

  it("put containerd's state, socket and CNI paths under the install root", () => {
    const config = containerdConfig("/srv/h", "cgroupfs");
    expect(config).toContain('address = "/srv/h/run/containerd/containerd.sock"');
    expect(config).toContain('conf_dir = "/srv/h/etc/cni/net.d"');
    expect(config).toContain("SystemdCgroup = false");
    expect(containerdConfig("/")).toContain('root = "/var/lib/containerd"');
    expect(YAML.parse(kubeletConfig({}, "/srv/h")).containerRuntimeEndpoint).toBe("unix:///srv/h/run/containerd/containerd.sock");
    // Kubelets sharing a filesystem would remove each other's Pod logs.
    expect(YAML.parse(kubeletConfig({}, "/srv/h")).podLogsDir).toBe("/srv/h/var/log/pods");
    expect(YAML.parse(kubeletConfig({})).podLogsDir).toBeUndefined();
  });

  it("check the sha256 before unpacking and switch versions with a rename", () => {
    const script = inner(all(layouts[0]).kubelet);
    const verifyAt = script.indexOf('fetch_verified "$URL" "$SHA"');
    expect(verifyAt).toBeGreaterThan(0);
    expect(script.indexOf('install -m 0755 "$stage/artifact"')).toBeGreaterThan(verifyAt);
    expect(script.indexOf('activate "$pkgdir" "$vdir"')).toBeGreaterThan(verifyAt);
    expect(script).toContain('mv -Tf "$pkgdir/current.new" "$pkgdir/current"');
  });

  it("refuse file content that would end the heredoc early", () => {
    expect(() => writeFileLines("/etc/x", "0644", "a\nKUBE_ON_KUBE_EOF\n")).toThrow(/heredoc marker/);
  });

  it("keep the admin kubeconfig off the kubectl command lines", () => {
    for (const script of [drainScript("w1", 60), removeNodeScript("w1", 60), readyScript("w1", 60)]) {
      expect(script).toContain('cat > "$kc"');
      expect(() => execFileSync("bash", ["-n", "-c", script])).not.toThrow();
    }
  });
});

describe("node identity", () => {
  it("adds the zone label from idc and sorts labels in the kubelet flags", () => {
    const labels = nodeLabels({ pool: "general" }, "hz-a");
    expect(labels).toEqual({ pool: "general", "topology.kubernetes.io/zone": "hz-a" });
    expect(kubeletFlags({ ip: "192.0.2.1", hostname: "w", labels: { z: "1", a: "2" }, taints: [{ key: "k", effect: "NoExecute" }], bootstrap: false })).toBe(
      'KUBELET_ARGS="--node-ip=192.0.2.1 --hostname-override=w --node-labels=a=2,z=1 --register-with-taints=k:NoExecute"\n',
    );
  });

  it("renders a kubelet kubeconfig with the certificate or the token", () => {
    const cert = YAML.parse(kubeletKubeconfig({ endpoint: "https://a:6443", caCertificate: "CA", user: "system:node:w", clientCertificate: "C", clientKey: "K" }));
    expect(cert.clusters[0].cluster).toEqual({ server: "https://a:6443", "certificate-authority-data": Buffer.from("CA").toString("base64") });
    expect(cert.users[0]).toEqual({ name: "system:node:w", user: { "client-certificate-data": "Qw==", "client-key-data": "Sw==" } });
    const token = YAML.parse(kubeletKubeconfig({ endpoint: "https://a:6443", caCertificate: "CA", user: "b", token: "t.x" }));
    expect(token.users[0].user).toEqual({ token: "t.x" });
  });

  it("writes a kubelet config that uses the systemd cgroup driver and the cluster DNS", () => {
    const config = YAML.parse(kubeletConfig({ clusterDNS: ["10.0.0.10"], clusterDomain: "c.local" }));
    expect(config).toMatchObject({ kind: "KubeletConfiguration", cgroupDriver: "systemd", clusterDNS: ["10.0.0.10"], clusterDomain: "c.local", failSwapOn: true });
    expect(YAML.parse(kubeletConfig({ cgroupDriver: "cgroupfs", config: { failSwapOn: false, address: "127.0.0.9" } }))).toMatchObject({ cgroupDriver: "cgroupfs", failSwapOn: false, address: "127.0.0.9" });
  });

  it("installs the kubelet's serving certificate (0644) and key (0600) from stdin, points its config at them, and changes nothing the second time", () => {
    const root = mkdtempSync(path.join(tmpdir(), "kok-serving-"));
    try {
      const artifact = packages().kubelet;
      // The kubelet version is already active, so the script neither downloads nor unpacks.
      const vdir = path.join(root, "opt/kube-on-kube/kubelet", `${artifact.version}-${artifact.sha256.slice(0, 12)}`);
      mkdirSync(vdir, { recursive: true });
      writeFileSync(path.join(vdir, ".kube-on-kube-version"), `${artifact.version}\n`);
      symlinkSync(path.basename(vdir), path.join(root, "opt/kube-on-kube/kubelet/current"));
      const script = inner(kubeletScript(artifact, {}, { installRoot: root, serviceManager: "none" }, true));
      const bundle = "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n-----BEGIN EC PRIVATE KEY-----\nKEY\n-----END EC PRIVATE KEY-----\n";
      const first = execFileSync("bash", ["-c", script], { input: bundle, encoding: "utf8" });
      expect(first).toContain("wrote /var/lib/kubelet/pki/kubelet-serving.key");
      expect(readFileSync(path.join(root, "var/lib/kubelet/pki/kubelet-serving.crt"), "utf8")).toBe("-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n");
      expect(readFileSync(path.join(root, "var/lib/kubelet/pki/kubelet-serving.key"), "utf8")).toBe("-----BEGIN EC PRIVATE KEY-----\nKEY\n-----END EC PRIVATE KEY-----\n");
      expect(statSync(path.join(root, "var/lib/kubelet/pki/kubelet-serving.key")).mode & 0o777).toBe(0o600);
      expect(statSync(path.join(root, "var/lib/kubelet/pki/kubelet-serving.crt")).mode & 0o777).toBe(0o644);
      const config = YAML.parse(readFileSync(path.join(root, "var/lib/kubelet/config.yaml"), "utf8"));
      expect(config).toMatchObject({ tlsCertFile: `${root}/var/lib/kubelet/pki/kubelet-serving.crt`, tlsPrivateKeyFile: `${root}/var/lib/kubelet/pki/kubelet-serving.key` });
      expect(execFileSync("bash", ["-c", script], { input: bundle, encoding: "utf8" })).not.toContain("wrote");
      expect(() => execFileSync("bash", ["-c", script], { input: "", stdio: "pipe" })).toThrow(/no serving certificate and key arrived on stdin/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    // Four bash runs: generous for a loaded 2-core machine.
  }, 30_000);

  it("parses the verify step's output, and nothing when there is none", () => {
    expect(parseVerifyOutput('noise\n{"observedVersions":{"kubelet":"v1"},"binaries":{"kubelet":"Kubernetes v1"}}\n')).toEqual({ observedVersions: { kubelet: "v1" }, binaries: { kubelet: "Kubernetes v1" } });
    expect(parseVerifyOutput(undefined)).toEqual({ observedVersions: {}, binaries: {} });
  });
});

describe("bashCommand", () => {
  it("wraps a script for any login shell", () => {
    expect(execFileSync("sh", ["-c", bashCommand('echo "$BASH_VERSION" | cut -c1')], { encoding: "utf8" })).toMatch(/^\d\n$/);
  });
});
