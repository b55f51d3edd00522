import { describe, expect, it } from "vitest";
import type { ClusterObject, MachineObject, PackageVersionObject } from "../../src/api/v1alpha1";
import { machineCatalog, type MachineDependencies } from "../../src/controllers/machine/context";
import { packages } from "../support/worker-fixtures";

const cluster = (imageRepository?: string, network?: Record<string, string>) =>
  ({
    metadata: { name: "c", namespace: "t" },
    spec: { mode: "minimal", kubernetesVersion: "v1.36.3", etcd: { version: "3.6.5" }, ...(imageRepository ? { imageRepository } : {}), ...(network ? { network } : {}) },
    status: { endpoint: "https://c:6443" },
  }) as unknown as ClusterObject;
const machine = (own = false) =>
  ({
    metadata: { name: "m", namespace: "t" },
    spec: { clusterRef: { name: "c" }, ...(own ? { packages: packages() } : { packageVersionRef: { name: "cat" } }), ip: "192.0.2.1", hostname: "m", ssh: {} },
  }) as unknown as MachineObject;
const catalog = (extra: Record<string, unknown>) => ({ metadata: { name: "cat", namespace: "t" }, spec: { clusterRef: { name: "c" }, packages: packages(), ...extra } }) as unknown as PackageVersionObject;
const deps = (c: ClusterObject, cpv?: PackageVersionObject): MachineDependencies => ({
  cluster: () => c,
  packageVersion: () => cpv,
  secret: () => Promise.resolve(undefined),
  mastersNamespace: () => Promise.resolve("m"),
});
const runtimeOf = (m: MachineObject, d: MachineDependencies) => {
  const result = machineCatalog(m, d);
  if ("waiting" in result) throw new Error(result.message);
  return result.runtime;
};

describe("a Machine's container runtime settings", () => {
  it("take the sandbox image from the Cluster's imageRepository when the catalog names none", () => {
    expect(runtimeOf(machine(), deps(cluster("registry.example.com/k8s"), catalog({})))).toEqual({ sandboxImage: "registry.example.com/k8s/pause:3.10.2", registryMirrors: undefined });
    expect(runtimeOf(machine(true), deps(cluster()))).toEqual({ sandboxImage: "registry.k8s.io/pause:3.10.2" });
  });

  it("take the catalog's sandbox image and registry mirrors", () => {
    const registryMirrors = { "registry.k8s.io": ["https://mirror.example.com"] };
    expect(runtimeOf(machine(), deps(cluster(), catalog({ sandboxImage: "mirror.example.com/pause:3.10.2", registryMirrors })))).toEqual({
      sandboxImage: "mirror.example.com/pause:3.10.2",
      registryMirrors,
    });
  });
});

describe("a Machine's kubelet network", () => {
  const networkOf = (m: MachineObject, d: MachineDependencies) => {
    const result = machineCatalog(m, d);
    if ("waiting" in result) throw new Error(result.message);
    return result.network;
  };

  it("comes from the Cluster's spec.network, with its defaults where the Cluster leaves it out", () => {
    expect(networkOf(machine(), deps(cluster(undefined, { serviceCIDR: "172.20.0.0/16", clusterDomain: "corp.internal" }), catalog({})))).toEqual({
      serviceCIDR: "172.20.0.0/16",
      clusterDomain: "corp.internal",
    });
    expect(networkOf(machine(true), deps(cluster()))).toEqual({ serviceCIDR: "10.96.0.0/12", clusterDomain: "cluster.local" });
    expect(networkOf(machine(true), deps(cluster(undefined, { podCIDR: "10.244.0.0/16" })))).toEqual({ serviceCIDR: "10.96.0.0/12", clusterDomain: "cluster.local" });
  });

  it("waits, naming the field, for a service range without a cluster DNS address", () => {
    expect(machineCatalog(machine(true), deps(cluster(undefined, { serviceCIDR: "10.96.0.0/29" })))).toEqual({
      waiting: true,
      reason: "InvalidClusterNetwork",
      message: "Cluster t/c: spec.network.serviceCIDR: 10.96.0.0/29 has no address number 10 for the cluster DNS Service",
    });
  });
});
