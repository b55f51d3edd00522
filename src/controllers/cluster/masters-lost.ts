/**
 * A masters' namespace that the Cluster's own stack created and that is now gone (or being
 * deleted) took etcd's volumes with it: the business cluster's whole state. Its stack's state still
 * lists every object, so the next `up` (an edit, or the drift check putting back what is missing)
 * would bring the masters back with EMPTY etcd volumes — a business cluster that answers but knows
 * nothing, whose kubelets then stop every Pod it does not list. That is never done on the
 * operator's own initiative: the Cluster reports `MastersLost` and waits for a human to choose
 * between a restore into a new Cluster (docs/backups.md, "Disaster recovery") and starting this
 * one over, empty, by writing the masters' namespace's name into the annotation
 * `kubeonkube.io/recreate-masters` — a name, not `"true"`, so it is typed on purpose and does not
 * carry over to the next loss (whose namespace has the same name only if nothing changed: the
 * annotation is removed by the operator once the masters are back).
 */
import type * as k8s from "@kubernetes/client-node";
import { RECREATE_MASTERS_ANNOTATION, type ClusterObject } from "../../api/v1alpha1";
import type { Placement } from "./masters-namespace";

/** Whether a meta-cluster namespace exists, and whether it is being deleted. */
export type NamespacePresence = (name: string) => Promise<"active" | "terminating" | "absent">;

/** Reads a namespace's presence from the meta-cluster. */
export function namespacePresenceReader(core: Pick<k8s.CoreV1Api, "readNamespace">): NamespacePresence {
  return async (name) => {
    try {
      const ns = await core.readNamespace({ name });
      return ns.metadata?.deletionTimestamp || ns.status?.phase === "Terminating" ? "terminating" : "active";
    } catch (err) {
      if ((err as { code?: number }).code === 404) return "absent";
      throw err;
    }
  };
}

export type MastersVerdict =
  | { readonly lost: false }
  | { readonly lost: true; readonly recreate: false; readonly message: string }
  | { readonly lost: true; readonly recreate: true; readonly message: string };

/**
 * Whether the masters of a Cluster were lost, from where its stack put them and what the
 * meta-cluster holds now. A namespace the stack never created (a first `up`, a stack whose state
 * does not record it) is not a loss: there was nothing to lose.
 */
export function mastersVerdict(cluster: Pick<ClusterObject, "metadata">, placement: Pick<Placement, "mastersNamespace" | "namespaceInStack">, presence: "active" | "terminating" | "absent"): MastersVerdict {
  if (!placement.namespaceInStack || presence === "active") return { lost: false };
  const ns = placement.mastersNamespace;
  const what = presence === "absent" ? `the masters' namespace "${ns}" is gone` : `the masters' namespace "${ns}" is being deleted`;
  if (cluster.metadata.annotations?.[RECREATE_MASTERS_ANNOTATION] === ns) {
    return { lost: true, recreate: true, message: `${what}; ${RECREATE_MASTERS_ANNOTATION} names it: the masters are re-created with EMPTY etcd volumes` };
  }
  return {
    lost: true,
    recreate: false,
    message:
      `${what}, and etcd's data with it. Nothing is applied: re-creating the masters would bring up an EMPTY business cluster. ` +
      `Restore into a new Cluster from a backup (docs/backups.md, "Disaster recovery"), or start this one over empty with ` +
      `kubectl annotate cluster ${cluster.metadata.name} ${RECREATE_MASTERS_ANNOTATION}=${ns}`,
  };
}
