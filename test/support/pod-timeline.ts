/**
 * Every Pod change in one meta-cluster namespace, in the order the apiserver committed them (one
 * list, then one watch from its resourceVersion), so an e2e can ask which Pods existed at the
 * moment another was created: a question about order, not about timing.
 */
import * as k8s from "@kubernetes/client-node";
import { clientFor } from "./dev-cluster";

export interface PodChange {
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  readonly name: string;
  /** The `kubeonkube.io/component` label. */
  readonly component: string;
  /** The first container's image. */
  readonly image: string;
  readonly terminating: boolean;
  /** When the test saw it (for reporting only; order comes from the index). */
  readonly seenAt: number;
}

export interface PodTimeline {
  readonly changes: PodChange[];
  /** How many of the changes are the initial list (an ADDED each), before the watched ones. */
  readonly listed: number;
  /** Stops watching; throws if the watch had ended before, as the timeline is then incomplete. */
  stop(): void;
}

function change(type: string, pod: k8s.V1Pod): PodChange {
  return {
    type: type as PodChange["type"],
    name: pod.metadata?.name ?? "",
    component: pod.metadata?.labels?.["kubeonkube.io/component"] ?? "",
    image: pod.spec?.containers?.[0]?.image ?? "",
    terminating: Boolean(pod.metadata?.deletionTimestamp),
    seenAt: Date.now(),
  };
}

export async function recordPods(kubeconfig: string, namespace: string): Promise<PodTimeline> {
  const { kc, core } = clientFor(kubeconfig);
  const list = await core.listNamespacedPod({ namespace });
  const changes = list.items.map((pod) => change("ADDED", pod));
  let ended: string | undefined;
  const abort = await new k8s.Watch(kc).watch(
    `/api/v1/namespaces/${namespace}/pods`,
    { resourceVersion: list.metadata?.resourceVersion },
    (type, pod: k8s.V1Pod) => {
      if (type === "ADDED" || type === "MODIFIED" || type === "DELETED") changes.push(change(type, pod));
    },
    (error: unknown) => {
      ended = error ? String(error) : "closed by the server";
    },
  );
  return {
    changes,
    listed: list.items.length,
    stop() {
      if (ended) throw new Error(`the Pod watch of namespace ${namespace} ended early (${ended}): the timeline is incomplete`);
      abort.abort();
    },
  };
}

/** The Pods that existed just before change `index` (terminating ones included). */
export function podsBefore(changes: readonly PodChange[], index: number): PodChange[] {
  const pods = new Map<string, PodChange>();
  for (const c of changes.slice(0, index)) {
    if (c.type === "DELETED") pods.delete(c.name);
    else pods.set(c.name, c);
  }
  return [...pods.values()];
}
