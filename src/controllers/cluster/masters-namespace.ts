/**
 * Where a Cluster's masters live, and whether the operator may put them there.
 *
 * - Placement: a new Cluster's masters go to the derived namespace (mastersNamespaceOf). A Cluster
 *   whose stack already exists keeps the namespace its stack's state records (a stack migrated
 *   from a legacy name keeps its legacy namespace: moving etcd would lose its data). The stack's
 *   state is what the operator wrote; the Cluster's status is the tenant's to write and is never
 *   read for this.
 * - Ownership: before any `up`, the namespace must be absent (the stack creates it), carry this
 *   Cluster's UID label, or be recorded in this Cluster's own stack. Anything else is a namespace
 *   the operator did not create for this Cluster (`kube-system`, another tenant's masters, a
 *   platform namespace): server-side apply would adopt it and a delete of the Cluster would delete
 *   it, so the update is refused before the engine runs.
 */
import type * as k8s from "@kubernetes/client-node";
import { legacyStackNameOf, MASTERS_CLUSTER_UID_LABEL, mastersNamespaceOf, type ObjectKey } from "../../api/v1alpha1";
import { adoptLegacyStack, type AdoptedStack, type LegacyStacks } from "../legacy-stacks";
import type { StateResource } from "../../runtime/stack-runner";

type Owner = { readonly metadata: ObjectKey & { readonly uid?: string } };

export interface Placement extends AdoptedStack {
  readonly mastersNamespace: string;
  /** The stack's state records that namespace as one it created. */
  readonly namespaceInStack: boolean;
}

/** The namespace a ControlPlane named `name` created, as its stack's state records it. */
export function namespaceInState(resources: readonly StateResource[] | undefined, name: string): string | undefined {
  return resources?.find((r) => r.type === "kubernetes:core/v1:Namespace" && r.name === `${name}-namespace` && r.id)?.id;
}

/** Placement of a Cluster's masters, legacy stacks migrated on the way. */
export async function placeMasters(stacks: LegacyStacks, cluster: Owner): Promise<Placement> {
  const adopted = await adoptLegacyStack(stacks, cluster, "ControlPlane");
  const recorded = namespaceInState(adopted.resources, cluster.metadata.name);
  return { ...adopted, mastersNamespace: recorded ?? mastersNamespaceOf(cluster), namespaceInStack: recorded !== undefined };
}

/** The labels of a meta-cluster namespace, or undefined when there is no such namespace. */
export type NamespaceLabels = (name: string) => Promise<Readonly<Record<string, string>> | undefined>;

/** Reads a namespace's labels from the meta-cluster: `{}` for none, undefined when it does not exist. */
export function namespaceLabelsReader(core: Pick<k8s.CoreV1Api, "readNamespace">): NamespaceLabels {
  return async (name) => {
    try {
      return (await core.readNamespace({ name })).metadata?.labels ?? {};
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  };
}

/**
 * The masters' namespace of a Cluster for readers outside its stack (a Machine's install reads the
 * cluster CA there): the legacy `<namespace>-<name>` when that namespace carries this Cluster's UID
 * label (its stack was migrated and labelled it; only the platform can label namespaces), else the
 * derived name.
 */
export async function mastersNamespaceFor(cluster: Owner, labelsOf: NamespaceLabels): Promise<string> {
  const uid = cluster.metadata.uid;
  const legacy = legacyStackNameOf(cluster);
  if (uid !== undefined && (await labelsOf(legacy))?.[MASTERS_CLUSTER_UID_LABEL] === uid) return legacy;
  return mastersNamespaceOf(cluster);
}

/** Why the operator may not use the masters' namespace of `placement`, or undefined when it may. */
export function namespaceConflict(cluster: Owner, placement: Placement, labels: Readonly<Record<string, string>> | undefined): string | undefined {
  if (labels === undefined || placement.namespaceInStack) return undefined;
  const uid = cluster.metadata.uid;
  const owner = labels[MASTERS_CLUSTER_UID_LABEL];
  if (uid !== undefined && owner === uid) return undefined;
  const ns = placement.mastersNamespace;
  const why =
    owner === undefined
      ? `it exists without the label ${MASTERS_CLUSTER_UID_LABEL}, so kube-on-kube did not create it for this Cluster`
      : `its label ${MASTERS_CLUSTER_UID_LABEL} names another Cluster`;
  return `the masters' namespace "${ns}" cannot be used: ${why}; nothing was applied. A platform admin must remove or rename that namespace (it is not this Cluster's)`;
}
