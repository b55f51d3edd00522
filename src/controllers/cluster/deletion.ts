/**
 * The deletion of a Cluster, behind its finalizer: it waits for the Cluster's Machines (their
 * Nodes are drained through these masters), destroys and removes the stack, then releases the
 * finalizer on a fresh read.
 */
import type { PulumiFn } from "@pulumi/pulumi/automation";
import type { ClusterStatus, Condition } from "../../api/v1alpha1";
import type { OperationTracker } from "../../runtime/operation-progress";
import type { Placement } from "./masters-namespace";
import type { ClusterReconcilerOptions } from "./reconciler";
import type { ClusterObject } from "../../api/v1alpha1";
import { abandonDecision, abandonedMessage, AbandonedResources, DELETE_UNREACHABLE_INPUT } from "./unreachable-addons";

export const CLUSTER_FINALIZER = "kubeonkube.io/cluster-stack";

/** What the deletion uses of the reconciler. */
export interface DeletionSteps {
  readonly o: ClusterReconcilerOptions;
  program(cluster: ClusterObject, mastersNamespace: string): PulumiFn;
  status(cluster: ClusterObject, fields: Partial<ClusterStatus>, conditions: Omit<Condition, "lastTransitionTime" | "observedGeneration">[]): Promise<void>;
  /** The Cluster's stack and masters' namespace (a legacy stack renamed first). */
  placement(key: string, cluster: ClusterObject): Promise<Placement>;
  trackProgress(cluster: ClusterObject, reason: string, namespace: string): OperationTracker;
  /** The stack is gone: its placement is not remembered. */
  forgetPlacement(key: string): void;
}

export async function finalizeCluster(s: DeletionSteps, key: string, cluster: ClusterObject): Promise<{ requeueAfter: number } | void> {
  if (!cluster.metadata.finalizers?.includes(CLUSTER_FINALIZER)) return;
  const machines = s.o.machinesOf?.(cluster.metadata.namespace, cluster.metadata.name) ?? [];
  if (machines.length > 0) {
    const shown = machines.slice(0, 5).join(", ") + (machines.length > 5 ? `, and ${machines.length - 5} more` : "");
    const message = `waiting for ${machines.length} Machine(s) of this cluster to be deleted first (${shown}): their Nodes are drained through these masters`;
    const before = cluster.status?.conditions?.find((c) => c.type === "Progressing");
    if (before?.reason !== "WaitingForMachines") await s.o.events.record(cluster, "Normal", "WaitingForMachines", message);
    await s.status(cluster, { phase: "Deleting" }, [{ type: "Progressing", status: "True", reason: "WaitingForMachines", message }]);
    return { requeueAfter: 10_000 };
  }
  // A legacy stack is renamed first, so the destroy finds what this Cluster created.
  const { stack, mastersNamespace } = await s.placement(key, cluster);
  // With the business apiserver unreachable (the masters broken: often why the Cluster is being
  // deleted) the add-ons are dropped from the state instead of failing the destroy forever; only
  // when the state shows nothing but the business cluster can be dropped (unreachable-addons.ts).
  const decision = abandonDecision(await s.o.stacks.resources(stack, { inputs: [DELETE_UNREACHABLE_INPUT] }));
  const caveat = !decision.allow && decision.addons ? `; add-ons cannot be abandoned if the business cluster is unreachable: ${decision.reason}` : "";
  await s.status(cluster, { phase: "Deleting" }, [{ type: "Progressing", status: "True", reason: "Deleting", message: `destroying stack ${stack}${caveat}` }]);
  const abandoned = new AbandonedResources();
  const progress = s.trackProgress(cluster, "Deleting", mastersNamespace);
  try {
    await s.o.stacks.destroyAndRemove(stack, s.program(cluster, mastersNamespace), progress.onProgress, decision.allow ? { env: decision.env, onDiagnostic: abandoned.onDiagnostic } : {});
  } finally {
    await progress.stop();
  }
  s.forgetPlacement(key);
  if (abandoned.list.length) {
    const message = abandonedMessage(abandoned.list);
    await s.o.events.record(cluster, "Warning", "AddonsAbandoned", message);
    await s.status(cluster, { phase: "Deleting" }, [{ type: "Progressing", status: "True", reason: "AddonsAbandoned", message: `stack ${stack} destroyed: ${message}` }]);
  }
  await s.o.events.record(cluster, "Normal", "Deleted", `stack ${stack} destroyed and removed`);
  // The status writes above moved the resourceVersion on: patch what is there now, or the
  // optimistic patch conflicts and the release waits for the key's (by then long) backoff.
  const fresh = await s.o.store.getLive(cluster.metadata.namespace, cluster.metadata.name);
  if (fresh) await s.o.store.setFinalizers(fresh, (fresh.metadata.finalizers ?? []).filter((f) => f !== CLUSTER_FINALIZER));
}
