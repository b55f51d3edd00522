import { describe, expect, it } from "vitest";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { ClusterObject, MachineObject } from "../../src/api/v1alpha1";
import { clusterChangedForMachines, machineChanged, machinesOfCatalogKey, machinesOfClusterKey } from "../../src/controllers/machine/register";
import { catalogsOfMachineChange } from "../../src/controllers/packageversion/register";
import { PACKAGES_REVISION_ANNOTATION } from "../../src/controllers/packageversion/revision";
import {
  and,
  annotationChanged,
  generationChanged,
  isResync,
  labelChanged,
  or,
  specOrLifecycleChanged,
  type ObjectChange,
} from "../../src/runtime/predicates";

type Meta = NonNullable<KubernetesObject["metadata"]>;
const obj = (metadata: Partial<Meta> = {}): KubernetesObject => ({ metadata: { name: "a", namespace: "fleet", generation: 1, ...metadata } });
const update = <T extends KubernetesObject>(old: T, now: T): ObjectChange<T> => ({ key: "fleet/a", type: "update", old, new: now });

describe("predicates (which changes wake a reconciler)", () => {
  it("pass adds and deletes, compare updates, and reject resyncs unless asked for", () => {
    const o = obj();
    expect(generationChanged({ key: "fleet/a", type: "add", new: o })).toBe(true);
    expect(generationChanged({ key: "fleet/a", type: "delete", old: o })).toBe(true);
    expect(generationChanged(update(o, obj({ generation: 1, resourceVersion: "9" })))).toBe(false);
    expect(generationChanged(update(o, obj({ generation: 2 })))).toBe(true);
    expect(generationChanged({ key: "fleet/a", type: "resync", old: o, new: o })).toBe(false);
    expect(isResync({ key: "fleet/a", type: "resync", old: o, new: o })).toBe(true);
  });

  it("see one annotation or label, or all of them, whatever the key order", () => {
    const a = obj({ annotations: { x: "1", y: "2" }, labels: { l: "a" } });
    expect(annotationChanged("x")(update(a, obj({ annotations: { x: "1", y: "3" } })))).toBe(false);
    expect(annotationChanged()(update(a, obj({ annotations: { x: "1", y: "3" } })))).toBe(true);
    expect(annotationChanged()(update(a, obj({ annotations: { y: "2", x: "1" } })))).toBe(false);
    expect(annotationChanged("x")(update(a, obj({ annotations: { y: "2" } })))).toBe(true);
    expect(labelChanged("l")(update(a, obj({ labels: { l: "b" } })))).toBe(true);
    expect(labelChanged()(update(a, obj({ labels: { l: "a" } })))).toBe(false);
  });

  it("combine with or/and", () => {
    const a = obj({ annotations: { x: "1" } });
    const b = obj({ generation: 2, annotations: { x: "1" } });
    expect(or(annotationChanged("x"), generationChanged)(update(a, b))).toBe(true);
    expect(and(annotationChanged("x"), generationChanged)(update(a, b))).toBe(false);
  });

  it("ignore our own status writes but not spec, deletion, finalizer changes or resyncs", () => {
    const c = obj();
    expect(specOrLifecycleChanged(update(c, { ...obj({ resourceVersion: "2" }), status: { phase: "Ready" } } as KubernetesObject))).toBe(false);
    expect(specOrLifecycleChanged(update(c, obj({ generation: 2 })))).toBe(true);
    expect(specOrLifecycleChanged(update(c, obj({ finalizers: ["kubeonkube.io/cluster-stack"] })))).toBe(true);
    expect(specOrLifecycleChanged(update(c, obj({ deletionTimestamp: new Date() })))).toBe(true);
    expect(specOrLifecycleChanged({ key: "fleet/a", type: "resync", old: c, new: c })).toBe(true);
  });
});

const machine = (name: string, cluster: string, catalog?: string, extra: Partial<Meta> = {}) =>
  ({ metadata: { name, namespace: "fleet", generation: 1, ...extra }, spec: { clusterRef: { name: cluster }, ...(catalog ? { packageVersionRef: { name: catalog } } : {}) } }) as unknown as MachineObject & KubernetesObject;
const cluster = (status: ClusterObject["status"], extra: Partial<Meta> = {}) =>
  ({ metadata: { name: "prod", namespace: "fleet", generation: 1, ...extra }, spec: {}, status }) as unknown as ClusterObject & KubernetesObject;

describe("the Machine registration's predicates and watches", () => {
  it("wakes a Machine for its catalog admission but not for its own status writes", () => {
    const m = machine("w1", "prod", "pkgs");
    const admitted = machine("w1", "prod", "pkgs", { annotations: { [PACKAGES_REVISION_ANNOTATION]: "3" } });
    expect(machineChanged(update(m, admitted))).toBe(true);
    expect(machineChanged(update(m, { ...m, status: { phase: "Ready" } } as typeof m))).toBe(false);
  });

  it("wakes a Cluster's Machines only when what they use of it changes", () => {
    const provisioning = cluster({ phase: "Provisioning" });
    const ready = cluster({ phase: "Ready", endpoint: "https://10.0.0.1:6443" });
    expect(clusterChangedForMachines(update(provisioning, ready))).toBe(true);
    expect(clusterChangedForMachines(update(ready, cluster({ phase: "Ready", endpoint: "https://10.0.0.1:6443", version: "v1.36.3" })))).toBe(false);
    expect(clusterChangedForMachines(update(ready, cluster({ phase: "Ready", endpoint: "https://10.0.0.2:6443" })))).toBe(true);
    expect(clusterChangedForMachines({ key: "fleet/prod", type: "resync", old: ready, new: ready })).toBe(false);
    // A CA rotation moving on (the Cluster's status.certificates) wakes them to compare their certificates.
    const rotating = cluster({ phase: "Ready", endpoint: "https://10.0.0.1:6443", certificates: { rotation: { token: "t1", phase: "WaitingForMachines", generation: 1, startedAt: "2026-12-05T12:00:00Z" } } } as ClusterObject["status"]);
    expect(clusterChangedForMachines(update(ready, rotating))).toBe(true);
    expect(clusterChangedForMachines(update(rotating, { ...rotating, status: { ...rotating.status, version: "v1.36.3" } } as typeof rotating))).toBe(false);
    const all = [machine("w1", "prod"), machine("w2", "other"), machine("w3", "prod")];
    expect(machinesOfClusterKey(all, "fleet/prod")).toEqual(["fleet/w1", "fleet/w3"]);
    expect(machinesOfClusterKey(all, "other-ns/prod")).toEqual([]);
    expect(machinesOfCatalogKey([machine("w1", "prod", "a"), machine("w2", "prod", "b")], "fleet/b")).toEqual(["fleet/w2"]);
  });

  it("wakes both the catalog a Machine moved to and the one it left, and the one a deleted Machine used", () => {
    expect(catalogsOfMachineChange(update(machine("w1", "prod", "old"), machine("w1", "prod", "new")))).toEqual(["fleet/new", "fleet/old"]);
    expect(catalogsOfMachineChange({ old: machine("w1", "prod", "old") })).toEqual(["fleet/old"]);
    expect(catalogsOfMachineChange({ new: machine("w1", "prod") })).toEqual([]);
  });
});
