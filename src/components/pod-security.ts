/**
 * How the masters run in the meta-cluster: the securityContext of every master Pod and container
 * (the Pod Security Standard "restricted": non-root, no privilege escalation, no capabilities,
 * seccomp RuntimeDefault, read-only root file system), and the Pod Security labels of the masters'
 * namespace, so the meta-cluster's PodSecurity admission refuses any Pod there that is weaker.
 */
import type * as k8s from "@pulumi/kubernetes";
import type { ResolvedClusterSpec } from "../api/v1alpha1";

/**
 * The uid and gid every master runs as: the `nonroot` user of the distroless images the Kubernetes
 * and etcd images are built on. Any non-zero id would do; one fixed id lets an admin chown a
 * hostPath etcd directory once (fsGroup does not apply to hostPath volumes).
 */
export const MASTER_USER_ID = 65532;

/**
 * The "restricted" Pod Security Standard as plain objects, for any Pod of ours: the masters here,
 * and the operator's own Deployment (src/operator/install-manifests.ts).
 */
export const RESTRICTED_POD_SECURITY_CONTEXT = {
  runAsNonRoot: true,
  runAsUser: MASTER_USER_ID,
  runAsGroup: MASTER_USER_ID,
  fsGroup: MASTER_USER_ID,
  seccompProfile: { type: "RuntimeDefault" },
} as const;

/** Container-level: every field the "restricted" level checks, set explicitly. */
export const RESTRICTED_CONTAINER_SECURITY_CONTEXT = {
  runAsNonRoot: true,
  runAsUser: MASTER_USER_ID,
  runAsGroup: MASTER_USER_ID,
  allowPrivilegeEscalation: false,
  privileged: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
} as const;

/** Pod-level: fsGroup makes mounted Secrets (mode 0400) group-readable and etcd's data volume writable. */
export const MASTER_POD_SECURITY_CONTEXT: k8s.types.input.core.v1.PodSecurityContext = {
  ...RESTRICTED_POD_SECURITY_CONTEXT,
  // A claim with data written by an earlier root etcd is re-owned once, not on every start.
  fsGroupChangePolicy: "OnRootMismatch",
};

/** Container-level for masters: as rendered since their first release (without `privileged`, false by default), so running masters see no diff. */
export const MASTER_CONTAINER_SECURITY_CONTEXT: k8s.types.input.core.v1.SecurityContext = (({ privileged: _unset, ...rest }) => ({ ...rest, capabilities: { drop: ["ALL"] } }))(RESTRICTED_CONTAINER_SECURITY_CONTEXT);

export const PodSecurityLevel = { Restricted: "restricted", Baseline: "baseline", Privileged: "privileged" } as const;
export type PodSecurityLevel = (typeof PodSecurityLevel)[keyof typeof PodSecurityLevel];

/** Volume types the "restricted" level admits (Pod Security Standards, "Volume Types"). */
const RESTRICTED_VOLUME_TYPES = new Set(["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"]);

/**
 * The strictest level the masters of this spec fit. Only etcd's storage varies: a claim template
 * or a restricted volume type gives "restricted"; any other volume type (an admin policy may allow
 * e.g. nfs) gives "baseline"; hostPath, which even "baseline" forbids, gives "privileged".
 */
export function podSecurityLevel(spec: Pick<ResolvedClusterSpec, "etcd">): PodSecurityLevel {
  const source = spec.etcd.storage.volumeSource;
  if (!source) return PodSecurityLevel.Restricted;
  const types = Object.keys(source);
  if (types.includes("hostPath")) return PodSecurityLevel.Privileged;
  return types.every((t) => RESTRICTED_VOLUME_TYPES.has(t)) ? PodSecurityLevel.Restricted : PodSecurityLevel.Baseline;
}

/**
 * Labels of the masters' namespace: enforce the strictest level that fits, and audit and warn at
 * "restricted" always, so a namespace relaxed for a hostPath still reports what it lets through.
 */
export function podSecurityLabels(spec: Pick<ResolvedClusterSpec, "etcd">): Record<string, string> {
  return {
    "pod-security.kubernetes.io/enforce": podSecurityLevel(spec),
    "pod-security.kubernetes.io/audit": PodSecurityLevel.Restricted,
    "pod-security.kubernetes.io/warn": PodSecurityLevel.Restricted,
  };
}
