import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { demoCatalog, demoMachines } from "../../src/cli/demo-machines";
import { validateManifests } from "../../src/cli/validate";
import { devAdminPolicy } from "../../src/dev/dev-policy";
import { INSTALL_ROOT_ANNOTATION } from "../../src/controllers/machine/context";

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0c3rT8b6y0d3kZ0u1mQ4fC9xV2p7bN5wA1sE8hJkL";
const hosts = [0, 1].map((i) => ({ name: `demo-${i}`, ip: `127.0.1.${10 + i}`, port: 2222, user: "root", hostKey: HOST_KEY, root: `/state/hosts/demo-${i}/root` }));
const artifact = (name: string, version: string, digit: string) => ({ version, url: `http://127.0.0.1:18099/${name}`, sha256: digit.repeat(64) });
const packages = {
  containerd: artifact("containerd-2.4.2-linux-amd64.tar.gz", "2.4.2", "a"),
  runc: artifact("runc.amd64", "1.5.3", "b"),
  cni: artifact("cni-plugins-linux-amd64-v1.10.0.tgz", "v1.10.0", "c"),
  kubelet: artifact("kubelet-v1.35.4-linux-amd64", "v1.35.4", "d"),
};

describe("the demo's generated manifests", () => {
  it("pass every check the apiserver's schema and the operator run", () => {
    const text = [demoCatalog(packages), ...demoMachines(hosts)].map((o) => stringify(o)).join("---\n");
    // The demo's operator runs with the local environment's policy: its hosts are on loopback.
    const reports = validateManifests("machines.yaml", text, devAdminPolicy());
    expect(reports.map((r) => [r.subject, r.problems])).toEqual([
      ["ClusterPackageVersion fleet/demo-workers", []],
      ["Machine fleet/demo-0", []],
      ["Machine fleet/demo-1", []],
    ]);
  });

  it("make exactly one Machine the canary, and give each its host's address, key, Secret and install root", () => {
    const machines = demoMachines(hosts) as { metadata: { annotations: Record<string, string> }; spec: { ip: string; labels: Record<string, string>; ssh: { credentialsSecretRef: { name: string }; hostKey: string } } }[];
    expect(machines.filter((m) => m.spec.labels.canary === "true")).toHaveLength(1);
    expect(machines.map((m) => [m.spec.ip, m.spec.ssh.credentialsSecretRef.name, m.metadata.annotations[INSTALL_ROOT_ANNOTATION]])).toEqual([
      ["127.0.1.10", "demo-0-ssh", "/state/hosts/demo-0/root"],
      ["127.0.1.11", "demo-1-ssh", "/state/hosts/demo-1/root"],
    ]);
    const rollout = (demoCatalog(packages) as { spec: { rollout: { canary: { count: number }; maxUnavailable: number } } }).spec.rollout;
    expect([rollout.canary.count, rollout.maxUnavailable]).toEqual([1, 1]);
  });
});

describe("the built-in admin policy", () => {
  it("refuses the demo's loopback hosts: only the local environment's policy lets the operator reach them", () => {
    const reports = validateManifests("machines.yaml", demoMachines(hosts).map((o) => stringify(o)).join("---\n"));
    expect(reports.map((r) => r.problems.map((p) => p.message))).toEqual([
      ["127.0.1.10 is in 127.0.0.0/8, where the operator may not open SSH connections (admin policy: sshTargets.denied)"],
      ["127.0.1.11 is in 127.0.0.0/8, where the operator may not open SSH connections (admin policy: sshTargets.denied)"],
    ]);
  });
});
