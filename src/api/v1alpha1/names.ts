/**
 * The names the operator derives from a tenant's object: its Pulumi stack and its masters'
 * namespace. Derived here and nowhere else, so that no two objects can share one (a shared
 * stack or namespace is another tenant's masters and hosts; docs/architecture.md, "Names").
 *
 * - Stack: `<namespace>.<name>`. A namespace is a DNS label (no dot), so the first dot splits the
 *   pair back: two objects never share a stack. Pulumi accepts `[A-Za-z0-9_.-]` and at most 100
 *   characters in a stack name (pulumi `sdk/go/common/tokens/stack_name.go`, ParseStackName), and
 *   the URNs of every resource carry it; name-limits.ts keeps names within that.
 * - Secrets: the admin kubeconfig `<name>-admin-kubeconfig`, in the masters' namespace (the stack's,
 *   the one the operator reads) and next to the Cluster (a copy for its users, never read back);
 *   the cluster CA wherever the Cluster's status says, inside its masters' namespace only.
 * - Masters' namespace: `kok-<namespace>-<name>-<10 hex of sha256("<namespace>/<name>")>`, the
 *   readable parts shortened so the whole stays a DNS label of at most 63 characters. It always
 *   starts with `kok-` and ends with the hash: never `kube-system`, `default`, a tenant's own
 *   namespace or the name another pair derives. The hash is 40 bits; a collision would also need
 *   the same readable prefix, and the ownership label (MASTERS_CLUSTER_UID_LABEL) refuses it anyway.
 */
import { createHash } from "node:crypto";
import type { CaSecretReference } from "./cluster";

/** What a name is derived from: the object's own namespace and name. */
export interface ObjectKey {
  readonly namespace: string;
  readonly name: string;
}

type WithKey = { readonly metadata: ObjectKey };

/** Kubernetes' limit on a namespace name (a DNS-1123 label). */
export const MAX_NAMESPACE_LENGTH = 63;

const PREFIX = "kok";
const HASH_HEX = 10;
/** What the two readable parts may use: 63 minus `kok-`, two `-` and the hash. */
const READABLE_BUDGET = MAX_NAMESPACE_LENGTH - PREFIX.length - 1 - 2 - HASH_HEX;

/** The Pulumi stack of a Cluster or a Machine. */
export const stackNameOf = (o: WithKey): string => `${o.metadata.namespace}.${o.metadata.name}`;

/**
 * The stack name before names could not collide (`<namespace>-<name>`): only to find and migrate
 * stacks created under it, never to create one.
 */
export const legacyStackNameOf = (o: WithKey): string => `${o.metadata.namespace}-${o.metadata.name}`;

/** The meta-cluster namespace a new Cluster's masters are created in. */
export function mastersNamespaceOf(o: WithKey): string {
  const { namespace, name } = o.metadata;
  const hash = createHash("sha256").update(`${namespace}/${name}`).digest("hex").slice(0, HASH_HEX);
  const [nsLength, nameLength] = shareBudget(namespace.length, name.length, READABLE_BUDGET);
  return `${PREFIX}-${readable(namespace, nsLength)}-${readable(name, nameLength)}-${hash}`;
}

/** Lengths for two parts within `budget`: each keeps at least half of it, the other the rest. */
function shareBudget(a: number, b: number, budget: number): [number, number] {
  if (a + b <= budget) return [a, b];
  const half = Math.floor(budget / 2);
  if (a <= half) return [a, budget - a];
  if (b <= budget - half) return [budget - b, b];
  return [half, budget - half];
}

/** A prefix of `part` that reads well inside a DNS label: [a-z0-9-] only, no dash at its ends. */
function readable(part: string, length: number): string {
  const text = part
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .slice(0, length)
    .replace(/^-+|-+$/g, "");
  return text || "x";
}

/** Label on a masters' namespace: the UID of the Cluster whose masters it holds. */
export const MASTERS_CLUSTER_UID_LABEL = "kubeonkube.io/cluster-uid";
/** Label on a masters' namespace: the Cluster's own namespace (its name is `kubeonkube.io/cluster`). */
export const MASTERS_CLUSTER_NAMESPACE_LABEL = "kubeonkube.io/cluster-namespace";
/**
 * Annotation on a Cluster whose masters' namespace was lost: its value, the name of that
 * namespace, lets the operator re-create the masters with empty etcd volumes (masters-lost.ts).
 */
export const RECREATE_MASTERS_ANNOTATION = "kubeonkube.io/recreate-masters";
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY = "kube-on-kube";

/**
 * The ownership labels of a Cluster's masters' namespace. The operator uses a namespace only when
 * it carries this Cluster's UID (or its own stack created it), so no tenant can point it at a
 * namespace it did not create.
 */
export function mastersNamespaceLabels(o: { readonly metadata: ObjectKey & { readonly uid?: string } }): Record<string, string> {
  return {
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [MASTERS_CLUSTER_NAMESPACE_LABEL]: o.metadata.namespace,
    ...(o.metadata.uid ? { [MASTERS_CLUSTER_UID_LABEL]: o.metadata.uid } : {}),
  };
}

/** What every admin kubeconfig Secret's name ends with: the stack's and the copy next to the Cluster. */
export const ADMIN_KUBECONFIG_SUFFIX = "-admin-kubeconfig";

/** The name of a cluster's admin kubeconfig Secret; ControlPlane writes it (cluster-context.ts objectNames). */
export const adminKubeconfigSecretName = (cluster: string): string => `${cluster}${ADMIN_KUBECONFIG_SUFFIX}`;

/**
 * The Secret the Cluster's stack writes the admin kubeconfig to, and its key: `kubeconfig` reaches
 * the apiserver at the Cluster's endpoint, as the operator does (`kubeconfig-internal` names the
 * Service inside the meta-cluster, which an operator outside it cannot resolve).
 */
export const adminKubeconfigSecretOf = (o: WithKey, mastersNamespace: string) => ({
  namespace: mastersNamespace,
  name: adminKubeconfigSecretName(o.metadata.name),
  key: "kubeconfig",
});

/** The copy of the admin kubeconfig next to the Cluster, for its users; the tenant's to edit, never read back. */
export const adminKubeconfigCopyOf = (o: WithKey): ObjectKey => ({ namespace: o.metadata.namespace, name: adminKubeconfigSecretName(o.metadata.name) });

const USER_KUBECONFIG_INFIX = ".kubeconfig.";

/**
 * The copy of a user kubeconfig (spec.kubeconfigs[].name) next to the Cluster, for that user:
 * `<cluster>.kubeconfig.<entry>`. Dots, because Cluster and entry names are DNS labels, which have
 * none: joined with hyphens, Cluster `a` entry `b-c` and Cluster `a-b` entry `c` would be one Secret,
 * and two stacks would take it from each other.
 */
export const userKubeconfigCopyOf = (o: WithKey, entry: string): ObjectKey => ({ namespace: o.metadata.namespace, name: `${o.metadata.name}${USER_KUBECONFIG_INFIX}${entry}` });
/** Every name userKubeconfigCopyOf gives (two DNS labels around the infix): what the operator may write next to a Cluster. */
export const USER_KUBECONFIG_COPY_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?[.]kubeconfig[.][a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/**
 * Where a Cluster's CA is: the reference its stack output and the operator recorded in
 * `status.caSecretRef`. A Cluster whose status predates that field (last applied by an older
 * operator, unchanged since) falls back to the Secret ControlPlane kept the CA in then, so it
 * keeps working until its next update records the reference. Check it with caSecretRefProblem
 * before reading it.
 */
export function caSecretOf(cluster: WithKey & { readonly status?: { readonly caSecretRef?: CaSecretReference } }, mastersNamespace: string): CaSecretReference {
  return cluster.status?.caSecretRef ?? { namespace: mastersNamespace, name: `${cluster.metadata.name}-controller-manager-certs`, certificateKey: "ca.crt", privateKeyKey: "ca.key" };
}

/**
 * Why the operator will not read a CA reference, or undefined. Only the Cluster's own masters'
 * namespace is read: tenants are not granted `clusters/status`, but whoever could write it must
 * still not make the operator sign kubelet certificates with another cluster's CA, nor read any
 * Secret outside the namespace only this Cluster's stack writes.
 */
export function caSecretRefProblem(ref: CaSecretReference, mastersNamespace: string): string | undefined {
  if (ref.namespace !== mastersNamespace) {
    return `status.caSecretRef names Secret ${ref.namespace}/${ref.name}, outside the Cluster's masters' namespace ${mastersNamespace}; the operator reads the CA only there`;
  }
  return undefined;
}
