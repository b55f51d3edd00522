import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { demoCatalog, demoMachines } from "../../src/cli/demo-machines";
import { packageVersionPolicyProblems, resolveAdminPolicy } from "../../src/api/v1alpha1";
import { defaultConfig } from "../../src/dev/config";
import { workersRegistry } from "../../src/dev/host-netns";
import { validateManifests } from "../../src/cli/validate";
import { devAdminPolicy } from "../../src/dev/dev-policy";
import { INSTALL_ROOT_ANNOTATION } from "../../src/controllers/machine/context";

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0c3rT8b6y0d3kZ0u1mQ4fC9xV2p7bN5wA1sE8hJkL";
// The demo's network hosts with the default config: the hosts subnet 10.250.100.0/24, the mirror and the registry on the node link's machine end.
const config = defaultConfig("/state");
const registry = workersRegistry(config);
const hosts = [0, 1].map((i) => ({ name: `demo-${i}`, ip: `10.250.100.${10 + i}`, port: 22, user: "root", hostKey: HOST_KEY, root: `/state/hosts/demo-${i}/root` }));
const artifact = (name: string, version: string, digit: string) => ({ version, url: `http://10.88.255.254:18099/${name}`, sha256: digit.repeat(64) });
const packages = {
  containerd: artifact("containerd-2.4.2-linux-amd64.tar.gz", "2.4.2", "a"),
  runc: artifact("runc.amd64", "1.5.3", "b"),
  cni: artifact("cni-plugins-linux-amd64-v1.10.0.tgz", "v1.10.0", "c"),
  kubelet: artifact("kubelet-v1.35.4-linux-amd64", "v1.35.4", "d"),
};

describe("the demo's generated manifests", () => {
  it("pass every check the apiserver's schema and the operator run", () => {
    const text = [demoCatalog(packages, registry), ...demoMachines(hosts)].map((o) => stringify(o)).join("---\n");
    // The demo's operator runs with the local environment's policy: its hosts are in the hosts subnet, its images come through the dev registry.
    const reports = validateManifests("machines.yaml", text, devAdminPolicy(config));
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
      ["10.250.100.10", "demo-0-ssh", "/state/hosts/demo-0/root"],
      ["10.250.100.11", "demo-1-ssh", "/state/hosts/demo-1/root"],
    ]);
    const catalog = demoCatalog(packages, registry) as { spec: { rollout: { canary: { count: number }; maxUnavailable: number }; registryMirrors: Record<string, string[]> } };
    expect([catalog.spec.rollout.canary.count, catalog.spec.rollout.maxUnavailable]).toEqual([1, 1]);
    expect(catalog.spec.registryMirrors).toEqual({ "registry.k8s.io": [`http://${registry}`], "docker.io": [`http://${registry}`] });
  });
});

describe("the built-in admin policy", () => {
  it("refuses the demo catalog's registry mirror: only the local environment's policy allows the dev registry", () => {
    const spec = (demoCatalog(packages, registry) as { spec: Parameters<typeof packageVersionPolicyProblems>[0] }).spec;
    expect(packageVersionPolicyProblems(spec, devAdminPolicy(config))).toEqual([]);
    expect(packageVersionPolicyProblems(spec, resolveAdminPolicy({})).map((p) => [p.path, p.rule])).toEqual([
      ['spec.registryMirrors["registry.k8s.io"][0]', "allowedRegistries"],
      ['spec.registryMirrors["docker.io"][0]', "allowedRegistries"],
    ]);
  });
});
