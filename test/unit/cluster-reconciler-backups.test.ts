/**
 * The etcd backup check's place in the Cluster reconciler (reconciler.ts, register.ts): run on
 * every reconcile of a reconciled Cluster before the drift check and after each `up`, its sooner
 * requeue kept, not run while paused, its series dropped when the Cluster goes; and a new
 * `kubeonkube.io/backup-now` value wakes the Cluster while other annotations do not.
 */
import { describe, expect, it } from "vitest";
import { mastersNamespaceLabels, mastersNamespaceOf, type ClusterObject, type ClusterStatus } from "../../src/api/v1alpha1";
import { ClusterReconciler, type ClusterReconcilerOptions } from "../../src/controllers/cluster/reconciler";
import { clusterWakes } from "../../src/controllers/cluster/register";
import type { StateResource } from "../../src/runtime/stack-runner";
import { minimalSpec } from "../support/specs";

const MASTERS = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "dev" } });

function harness(backupRequeue: number | undefined) {
  const calls: string[] = [];
  let stored: ClusterObject | undefined = {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Cluster",
    metadata: { name: "dev", namespace: "fleet", uid: "u1", generation: 1, finalizers: ["kubeonkube.io/cluster-stack"] },
    spec: minimalSpec(),
  };
  const state: StateResource[] = [{ type: "kubernetes:core/v1:Namespace", name: "dev-namespace", id: MASTERS }];
  const options: ClusterReconcilerOptions = {
    resyncMs: 300_000,
    now: () => new Date("2026-12-04T06:00:00Z"),
    namespaceLabels: async () => mastersNamespaceLabels(stored!),
    events: { record: async () => undefined },
    stacks: {
      up: async () => {
        calls.push("up");
        return { changes: { same: 1 }, outputs: {} };
      },
      preview: async () => {
        calls.push("preview");
        return { same: 30 };
      },
      destroyAndRemove: async () => undefined,
      resources: async () => structuredClone(state),
      rename: async () => undefined,
    },
    store: {
      getLive: async () => structuredClone(stored),
      setFinalizers: async (c) => c,
      writeStatus: async (_c, compute: (s: ClusterStatus | undefined) => ClusterStatus) => {
        stored = { ...stored!, status: compute(stored!.status) };
      },
    },
    etcdBackups: {
      check: async (c, ns) => {
        calls.push(`backups ${c.metadata.namespace}/${c.metadata.name} in ${ns}`);
        return backupRequeue === undefined ? {} : { requeueAfter: backupRequeue };
      },
      forget: (ns, name) => calls.push(`forget ${ns}/${name}`),
    },
  };
  return {
    calls,
    reconciler: new ClusterReconciler(options),
    set: (f: (c: ClusterObject) => ClusterObject | undefined) => (stored = f(stored!)),
  };
}

const reconciled = (c: ClusterObject): ClusterObject => ({ ...c, status: { observedGeneration: 1, lastOperation: { kind: "up", result: "succeeded", startedAt: "2026-12-04T05:00:00Z" } } });

describe("the etcd backup check in the Cluster reconciler", () => {
  it("runs before the drift check of a reconciled Cluster, and its sooner requeue wins", async () => {
    const h = harness(15_000);
    h.set(reconciled);
    expect(await h.reconciler.reconcile("fleet/dev")).toEqual({ requeueAfter: 15_000 });
    expect(h.calls).toEqual([`backups fleet/dev in ${MASTERS}`, "preview"]);
  });

  it("keeps the drift check's requeue when the backups have nothing running", async () => {
    const h = harness(undefined);
    h.set(reconciled);
    expect(await h.reconciler.reconcile("fleet/dev")).toEqual({ requeueAfter: 300_000 });
  });

  it("runs after an up", async () => {
    const h = harness(undefined);
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls).toEqual(["up", `backups fleet/dev in ${MASTERS}`]);
  });

  it("does not run while the Cluster is paused", async () => {
    const h = harness(15_000);
    h.set((c) => ({ ...reconciled(c), spec: { ...c.spec, paused: true } }));
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls).toEqual([]);
  });

  it("forgets a Cluster being deleted or gone", async () => {
    const h = harness(undefined);
    h.set((c) => ({ ...reconciled(c), metadata: { ...c.metadata, deletionTimestamp: new Date("2026-12-04T06:00:00Z") } }));
    await h.reconciler.reconcile("fleet/dev").catch(() => undefined);
    expect(h.calls[0]).toBe("forget fleet/dev");
    expect(h.calls).not.toContain(`backups fleet/dev in ${MASTERS}`);
    h.set(() => undefined);
    h.calls.length = 0;
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls).toEqual(["forget fleet/dev"]);
  });
});

describe("what wakes a Cluster", () => {
  const cluster = (annotations: Record<string, string>) => ({ metadata: { name: "dev", namespace: "fleet", generation: 1, annotations } });

  it("is a new backup-now token, not another annotation", () => {
    expect(clusterWakes({ key: "fleet/dev", type: "update", old: cluster({}), new: cluster({ "kubeonkube.io/backup-now": "t1" }) })).toBe(true);
    expect(clusterWakes({ key: "fleet/dev", type: "update", old: cluster({ "kubeonkube.io/backup-now": "t1" }), new: cluster({ "kubeonkube.io/backup-now": "t2" }) })).toBe(true);
    expect(clusterWakes({ key: "fleet/dev", type: "update", old: cluster({ "kubeonkube.io/backup-now": "t1" }), new: cluster({ "kubeonkube.io/backup-now": "t1", other: "x" }) })).toBe(false);
  });
});
