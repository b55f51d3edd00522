/**
 * The generated CRDs carry every fixed rule of the schemas (patterns, lengths, CEL), so the
 * apiserver refuses a hostile object before the operator sees it; and no field a tenant writes
 * keeps unknown fields.
 */
import { describe, expect, it } from "vitest";
import {
  ARTIFACT_URL_PATTERN,
  HOST_KEY_PATTERN,
  HOSTNAME_PATTERN,
  IMAGE_PATTERN,
  IMAGE_REPOSITORY_PATTERN,
  KUBERNETES_VERSION_PATTERN,
  PACKAGE_VERSION_PATTERN,
  POSIX_USER_PATTERN,
  SHA256_PATTERN,
} from "../../src/api/v1alpha1";
import { allCustomResourceDefinitions } from "../../src/api/v1alpha1/crds";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const crds: Record<string, Json> = Object.fromEntries(allCustomResourceDefinitions().map((c: Json) => [c.spec.names.kind, c.spec.versions[0].schema.openAPIV3Schema]));
const at = (root: Json, path: string): Json =>
  path.split(".").reduce((node, segment) => (segment === "[]" ? node.items : node.properties[segment]) as Json, root);
const rules = (node: Json) => ((node["x-kubernetes-validations"] ?? []) as { rule: string }[]).map((r) => r.rule);

function walk(node: Json, path: string, visit: (node: Json, path: string) => void): void {
  visit(node, path);
  for (const [key, child] of Object.entries((node.properties ?? {}) as Record<string, Json>)) walk(child, `${path}.${key}`, visit);
  if (node.items) walk(node.items as Json, `${path}[]`, visit);
  if (node.additionalProperties && typeof node.additionalProperties === "object") walk(node.additionalProperties as Json, `${path}{}`, visit);
}

describe("generated CRDs", () => {
  it("carry the fixed patterns of every tenant-written string", () => {
    const machine = crds.Machine;
    const cpv = crds.ClusterPackageVersion;
    const cluster = crds.Cluster;
    expect(at(machine, "spec.ssh.user").pattern).toBe(POSIX_USER_PATTERN);
    expect(at(machine, "spec.ssh.hostKey").pattern).toBe(HOST_KEY_PATTERN);
    expect(at(machine, "spec.hostname")).toMatchObject({ pattern: HOSTNAME_PATTERN, maxLength: 63 });
    expect(rules(at(machine, "spec.ip"))).toEqual(["isIP(self) && (ip(self).isGlobalUnicast() || ip(self).isLoopback())"]);
    for (const root of [at(machine, "spec.packages"), at(cpv, "spec.packages")]) {
      expect(at(root, "kubelet.version").pattern).toBe(PACKAGE_VERSION_PATTERN);
      expect(at(root, "kubelet.url").pattern).toBe(ARTIFACT_URL_PATTERN);
      expect(at(root, "kubelet.sha256").pattern).toBe(SHA256_PATTERN);
    }
    expect(at(cpv, "spec.rollout.healthGate.readyTimeoutSeconds").maximum).toBe(86400);
    expect(at(cluster, "spec.kubernetesVersion").pattern).toBe(KUBERNETES_VERSION_PATTERN);
    expect(rules(at(cluster, "spec.kubernetesVersion"))[0]).toContain("<= 37");
    expect(at(cluster, "spec.imageRepository").pattern).toBe(IMAGE_REPOSITORY_PATTERN);
    expect(at(cluster, "spec.etcd.image").pattern).toBe(IMAGE_PATTERN);
    expect(rules(at(cluster, "spec.kubeconfigs.[].groups"))).toEqual(["self.all(g, !g.startsWith('system:'))"]);
    expect(at(cluster, "spec.apiServer.replicas").maximum).toBe(25);
    expect(rules(cluster)[0]).toContain("size(self.metadata.name) <= 40");
    expect(rules(machine)).toEqual(["size(self.metadata.name) <= 63"]);
  });

  it("keep no unknown fields anywhere a tenant writes (etcd.storage.volumeSource is closed)", () => {
    const open: string[] = [];
    for (const [kind, root] of Object.entries(crds)) {
      walk(at(root, "spec"), `${kind}.spec`, (node, path) => {
        if (node["x-kubernetes-preserve-unknown-fields"]) open.push(path);
      });
    }
    expect(open).toEqual([]);
    expect(Object.keys(at(crds.Cluster, "spec.etcd.storage.volumeSource").properties)).toEqual(["emptyDir", "hostPath"]);
    expect(at(crds.Cluster, "spec.etcd.storage.volumeSource.hostPath.type").enum).toEqual(["", "DirectoryOrCreate", "Directory"]);
  });

  it("carry the add-on rules: kube-proxy's skew against the masters and a service range with a 10th address", () => {
    const cluster = crds.Cluster;
    const skew = rules(at(cluster, "spec"));
    expect(skew).toHaveLength(1);
    expect(skew[0]).toContain("int(self.addons.kubeProxy.version.split('.')[1]) <= int(self.kubernetesVersion.split('.')[1])");
    expect(skew[0]).toContain("int(self.addons.kubeProxy.version.split('.')[1]) + 3 >= int(self.kubernetesVersion.split('.')[1])");
    expect(rules(at(cluster, "spec.network"))).toContain(
      "!has(self.serviceCIDR) || !isCIDR(self.serviceCIDR) || cidr(self.serviceCIDR).prefixLength() <= (cidr(self.serviceCIDR).ip().family() == 4 ? 28 : 124)",
    );
    expect(at(cluster, "spec.addons.network.image").pattern).toBe(IMAGE_PATTERN);
    expect(at(cluster, "spec.addons.kubeProxy.mode").enum).toEqual(["iptables", "nftables"]);
    expect(at(cluster, "spec.addons.coreDNS.replicas")).toMatchObject({ minimum: 1, maximum: 10 });
  });

  it("bound every map and list a tenant fills", () => {
    expect(at(crds.Cluster, "spec.apiServer.extraArgs").maxProperties).toBe(64);
    expect(at(crds.Cluster, "spec.apiServer.certSANs").maxItems).toBe(100);
    expect(at(crds.Machine, "spec.labels").maxProperties).toBe(64);
  });
});
