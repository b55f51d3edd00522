import { describe, expect, it } from "vitest";
import {
  hostKeyProblem,
  validateClusterPackageVersionSpec,
  validateMachineSpec,
  validateNodePool,
  type MachineSpec,
} from "../../src/api/v1alpha1";
import { HOST_KEY, machine, packages, sha } from "../support/worker-fixtures";

const paths = (problems: { path: string }[]) => problems.map((p) => p.path).sort();

describe("validateMachineSpec", () => {
  it("accepts a complete machine", () => {
    expect(validateMachineSpec(machine())).toEqual([]);
  });

  it("reports every problem at once, each with its field path", () => {
    const spec = machine({
      ip: "192.0.2.300",
      hostname: "Worker_1",
      ssh: { user: "root", hostKey: "ssh-ed25519 not-base64!" },
      packages: {
        ...packages(),
        kubelet: { version: "v1.36.3", url: "ftp://mirror.local/kubelet", sha256: sha("B") },
        cni: { version: "v1.5.1", url: "http://mirror.local/cni.tgz" } as never,
      },
    });
    const problems = validateMachineSpec(spec);
    expect(paths(problems)).toEqual([
      "spec.hostname",
      "spec.ip",
      "spec.packages.cni.sha256",
      "spec.packages.kubelet.sha256",
      "spec.packages.kubelet.url",
      "spec.ssh.credentialsSecretRef",
      "spec.ssh.hostKey",
    ]);
    expect(problems.find((p) => p.path === "spec.ip")?.message).toContain("192.0.2.300");
    expect(problems.find((p) => p.path === "spec.packages.kubelet.sha256")?.message).toContain("uppercase");
  });

  it("requires a host key unless unknown keys are explicitly allowed", () => {
    const spec = machine({ ssh: { credentialsSecretRef: { name: "s" } } });
    expect(paths(validateMachineSpec(spec))).toEqual(["spec.ssh.hostKey"]);
    expect(validateMachineSpec(spec, "spec", { allowUnknownHostKey: true })).toEqual([]);
  });

  it("takes inline credentials for the component", () => {
    const spec = machine({ ssh: { hostKey: HOST_KEY } });
    expect(validateMachineSpec(spec, "machine", { credentials: "inline" })).toEqual([]);
  });

  it("wants exactly one of packages and packageVersionRef on a Machine resource", () => {
    expect(paths(validateMachineSpec(machine({ packageVersionRef: { name: "v" } })))).toEqual(["spec.packages"]);
    const withoutPackages: Partial<MachineSpec> = machine();
    delete withoutPackages.packages;
    expect(paths(validateMachineSpec(withoutPackages))).toEqual(["spec.packageVersionRef"]);
  });

  it("refuses labels kube-on-kube derives itself, and bad label values", () => {
    const spec = machine({ labels: { "topology.kubernetes.io/zone": "x", pool: "bad value" } });
    expect(paths(validateMachineSpec(spec))).toEqual(['spec.labels["pool"]', 'spec.labels["topology.kubernetes.io/zone"]']);
  });

  it("reports unknown fields and non-objects", () => {
    expect(paths(validateMachineSpec({ ...machine(), ipAddress: "x" } as MachineSpec))).toEqual(["spec.ipAddress"]);
    expect(validateMachineSpec("worker")).toHaveLength(1);
  });
});

describe("hostKeyProblem", () => {
  it("accepts a real ed25519 key with or without comment", () => {
    expect(hostKeyProblem(HOST_KEY)).toBeUndefined();
    expect(hostKeyProblem(`${HOST_KEY} root@host`)).toBeUndefined();
  });
  it("refuses a key whose blob encodes another type, a truncated key and a bare type", () => {
    expect(hostKeyProblem(HOST_KEY.replace("ssh-ed25519", "ssh-rsa"))).toMatch(/does not encode a ssh-rsa key/);
    expect(hostKeyProblem("ssh-ed25519 AAAAC3Nz")).toMatch(/does not encode/);
    expect(hostKeyProblem("ssh-ed25519")).toMatch(/must be "<type> <base64 key>"/);
    expect(hostKeyProblem("ssh-dss AAAA")).toMatch(/key type "ssh-dss"/);
  });
});

describe("validateClusterPackageVersionSpec", () => {
  const cpv = (rollout: unknown) => ({ clusterRef: { name: "prod-a" }, packages: packages(), rollout });

  it("accepts the design's example", () => {
    const rollout = { canary: { selector: { matchLabels: { canary: "true" } }, count: 2 }, maxUnavailable: "10%", pauseAfterCanary: false, healthGate: { readyTimeoutSeconds: 600 }, haltOnFailure: true };
    expect(validateClusterPackageVersionSpec(cpv(rollout))).toEqual([]);
  });

  it.each([0, "0%"])("refuses maxUnavailable %j", (maxUnavailable) => {
    const problems = validateClusterPackageVersionSpec(cpv({ maxUnavailable }));
    expect(paths(problems)).toEqual(["spec.rollout.maxUnavailable"]);
    expect(problems[0].message).toContain("never make progress");
  });

  it("refuses a percentage over 100, a malformed one and a canary that selects nothing", () => {
    expect(paths(validateClusterPackageVersionSpec(cpv({ maxUnavailable: "150%" })))).toEqual(["spec.rollout.maxUnavailable"]);
    expect(paths(validateClusterPackageVersionSpec(cpv({ maxUnavailable: "ten" })))).toEqual(["spec.rollout.maxUnavailable"]);
    expect(paths(validateClusterPackageVersionSpec(cpv({ canary: { count: 0 } })))).toEqual(["spec.rollout.canary"]);
  });

  it("reports a package without sha256 and a missing kubelet", () => {
    const spec = { clusterRef: { name: "a" }, packages: { containerd: { version: "1", url: "http://m/c" }, cni: packages().cni } };
    expect(paths(validateClusterPackageVersionSpec(spec))).toEqual(["spec.packages.containerd.sha256", "spec.packages.kubelet"]);
  });
});

describe("validateNodePool", () => {
  const pool = (n: number, labels: (i: number) => Record<string, string> = () => ({})) =>
    Array.from({ length: n }, (_, i) => ({
      name: `w${i}`,
      spec: machine({ ip: `192.0.2.${i + 1}`, hostname: `w${i}`, labels: labels(i) }),
    }));

  it("accepts a pool with a fitting canary", () => {
    expect(validateNodePool(pool(5, (i): Record<string, string> => (i === 0 ? { canary: "true" } : {})), { canary: { selector: { matchLabels: { canary: "true" } } } })).toEqual([]);
  });

  it("refuses a canary count larger than the pool", () => {
    const problems = validateNodePool(pool(3), { canary: { count: 4 } });
    expect(problems).toEqual([{ path: "rollout.canary.count", message: "(4) is larger than the pool (3 machines)" }]);
  });

  it("refuses a selector matching nothing, duplicate IPs and hostnames, and mixed clusters", () => {
    const machines = pool(3);
    const dup = { name: "w3", spec: { ...machines[0].spec, clusterRef: { name: "other" } } };
    const problems = validateNodePool([...machines, dup], { canary: { selector: { matchLabels: { canary: "true" } } } });
    expect(paths(problems)).toEqual(["machines", "machines[3].spec.hostname", "machines[3].spec.ip", "rollout.canary.selector"]);
  });

  it("refuses an empty pool", () => {
    expect(paths(validateNodePool([], undefined))).toEqual(["machines"]);
  });
});
