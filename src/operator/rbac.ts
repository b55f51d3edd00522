/**
 * The operator's RBAC, split by what each grant is for (docs/security.md, "The operator's
 * permissions", explains every rule). Kubernetes RBAC cannot follow namespaces created at run
 * time nor select by label, so the masters' objects are granted cluster-wide and the
 * ValidatingAdmissionPolicy of operator-admission-policy.ts confines every write to the masters'
 * namespaces (and the admin kubeconfig copies). Reads cannot be confined by admission: they are
 * kept to the kinds the operator and the Kubernetes provider's await logic actually read.
 *
 * Verbs are listed, never `*`; no rule names RBAC objects, Pods' exec/attach, Nodes, webhooks or
 * CRDs, so the operator cannot grant itself more than it has.
 */
import { API_GROUP } from "../api/v1alpha1";

type Json = Record<string, unknown>;

/** The name of the operator's ServiceAccount, Deployment and RBAC objects. */
export const OPERATOR_NAME = "kube-on-kube-operator";
/** Name of the Lease the replicas elect a leader with (src/operator/operator.ts). */
export const LEADER_LEASE_NAME = "kube-on-kube-operator";
/**
 * Name of the Lease that holds who runs each stack's update, for state backends other than
 * `file://` (src/runtime/holder-leases.ts), in the same namespace.
 */
export const HOLDERS_LEASE_NAME = "kube-on-kube-operator-holders";

const READ = ["get", "list", "watch"];
const WRITE = ["create", "update", "patch", "delete"];

/**
 * Tenants' objects, read cluster-wide: the three kinds (informers list and watch them in every
 * namespace), finalizers and annotations set with merge patches, status written with PUT on the
 * status subresource, and Events next to the objects (the Kubernetes provider also watches the
 * Events of what it creates to report warnings).
 */
export function tenantObjectRules(): Json[] {
  return [
    { apiGroups: [API_GROUP], resources: ["clusters", "machines", "clusterpackageversions"], verbs: [...READ, "patch"] },
    { apiGroups: [API_GROUP], resources: ["clusters/status", "machines/status", "clusterpackageversions/status"], verbs: ["get", "update", "patch"] },
    { apiGroups: [""], resources: ["events"], verbs: [...READ, "create", "patch"] },
  ];
}

/**
 * Everything the Cluster program writes into a masters' namespace, plus the Namespace itself and
 * the admin kubeconfig copy next to the Cluster (a Secret in the tenant's namespace). Write verbs
 * here are cluster-wide in RBAC and bounded by the admission policy.
 *
 * Secrets are read cluster-wide because the same grant serves three places that RBAC cannot name
 * in advance: the masters' namespaces (created per Cluster: the admin kubeconfig, certificates,
 * listed by label for the drift fingerprint), the tenants' namespaces (the Secrets a Machine or a
 * Cluster references: SSH credentials, backup store keys) and the copy the stack refreshes.
 */
export function mastersRules(): Json[] {
  return [
    { apiGroups: [""], resources: ["namespaces"], verbs: [...READ, ...WRITE] },
    { apiGroups: [""], resources: ["secrets", "services", "configmaps"], verbs: [...READ, ...WRITE] },
    { apiGroups: ["apps"], resources: ["statefulsets", "deployments"], verbs: [...READ, ...WRITE] },
    { apiGroups: ["policy"], resources: ["poddisruptionbudgets"], verbs: [...READ, ...WRITE] },
    { apiGroups: ["networking.k8s.io"], resources: ["networkpolicies"], verbs: [...READ, ...WRITE] },
    // etcd backups (docs/backups.md): the stack writes the CronJob; the operator creates the
    // on-demand Jobs from it, reads the Jobs' results and annotates each once it told it.
    { apiGroups: ["batch"], resources: ["cronjobs", "jobs"], verbs: [...READ, ...WRITE] },
    // Read only: the rollout gates and the master Pods' troubles (master-pods.ts), the backup
    // Pods' termination messages (etcd-backup-api.ts), and the Kubernetes provider's await of
    // Deployments (ReplicaSets, Pods, PVCs) and Services (Endpoints).
    // The etcd PVCs are created by the StatefulSet controller and go with the namespace.
    { apiGroups: [""], resources: ["endpoints"], verbs: READ },
    // And delete: an etcd member whose volume was lost is wiped and re-added (its Pod and PVC,
    // etcd-membership-api.ts); the admission policy confines deletes to masters' namespaces.
    { apiGroups: [""], resources: ["pods", "persistentvolumeclaims"], verbs: [...READ, "delete"] },
    { apiGroups: ["apps"], resources: ["replicasets"], verbs: READ },
  ];
}

/**
 * Leader election in the operator's own namespace: create the Lease, then read and renew only it;
 * the same for the holder records' Lease (fencing with an object store).
 */
export function leaderElectionRules(): Json[] {
  return [
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], resourceNames: [LEADER_LEASE_NAME, HOLDERS_LEASE_NAME], verbs: ["get", "update"] },
  ];
}

/**
 * What tenants get, through Kubernetes' aggregated roles: whoever holds `edit` or `admin` in a
 * namespace may write the three kinds' specs there, whoever holds `view` may read them. Never
 * their status, which is the operator's account of what it did (a tenant who could write it
 * could make a Cluster look Ready, or point readers at a Secret of its choosing), and never the
 * masters' namespaces, which no tenant role reaches.
 */
export function tenantRoles(labels: Record<string, string>): Json[] {
  const rbac = "rbac.authorization.k8s.io";
  const kinds = ["clusters", "machines", "clusterpackageversions"];
  return [
    {
      apiVersion: `${rbac}/v1`,
      kind: "ClusterRole",
      metadata: { name: "kube-on-kube-tenant-edit", labels: { ...labels, [`${rbac}/aggregate-to-edit`]: "true", [`${rbac}/aggregate-to-admin`]: "true" } },
      rules: [{ apiGroups: [API_GROUP], resources: kinds, verbs: [...READ, ...WRITE, "deletecollection"] }],
    },
    {
      apiVersion: `${rbac}/v1`,
      kind: "ClusterRole",
      metadata: { name: "kube-on-kube-tenant-view", labels: { ...labels, [`${rbac}/aggregate-to-view`]: "true" } },
      rules: [{ apiGroups: [API_GROUP], resources: [...kinds, ...kinds.map((k) => `${k}/status`)], verbs: READ }],
    },
  ];
}

/** ClusterRoles, Role and their bindings to the operator's ServiceAccount in `namespace`. */
export function operatorRbac(namespace: string, labels: Record<string, string>): Json[] {
  const rbac = "rbac.authorization.k8s.io";
  const subjects = [{ kind: "ServiceAccount", name: OPERATOR_NAME, namespace }];
  const clusterRole = (suffix: string, rules: Json[]): Json[] => [
    { apiVersion: `${rbac}/v1`, kind: "ClusterRole", metadata: { name: `${OPERATOR_NAME}-${suffix}`, labels }, rules },
    {
      apiVersion: `${rbac}/v1`,
      kind: "ClusterRoleBinding",
      metadata: { name: `${OPERATOR_NAME}-${suffix}`, labels },
      roleRef: { apiGroup: rbac, kind: "ClusterRole", name: `${OPERATOR_NAME}-${suffix}` },
      subjects,
    },
  ];
  const leader = `${OPERATOR_NAME}-leader-election`;
  return [
    ...clusterRole("tenants", tenantObjectRules()),
    ...clusterRole("masters", mastersRules()),
    { apiVersion: `${rbac}/v1`, kind: "Role", metadata: { name: leader, namespace, labels }, rules: leaderElectionRules() },
    {
      apiVersion: `${rbac}/v1`,
      kind: "RoleBinding",
      metadata: { name: leader, namespace, labels },
      roleRef: { apiGroup: rbac, kind: "Role", name: leader },
      subjects,
    },
  ];
}
