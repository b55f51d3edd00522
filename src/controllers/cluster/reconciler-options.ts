/**
 * What the Cluster reconciler (reconciler.ts) is given: the store, the engine, the readers of the
 * meta-cluster and the checks it runs, each documented where it is declared; and where a
 * Cluster's objects live (objectsLocationOf). Kept apart so the reconciler's file is its logic.
 */
import {
  adminKubeconfigCopyOf,
  adminKubeconfigSecretOf,
  mastersNamespaceOf,
  userKubeconfigCopyOf,
  type ClusterObject,
  type ClusterSpec,
  type ClusterStatus,
  type MachineCertificateReport,
  type ResolvedAdminPolicy,
} from "../../api/v1alpha1";
import { deploysAddons } from "../../program/cluster-program";
import type { ObjectStore } from "../../runtime/object-store";
import type { StackRunner } from "../../runtime/stack-runner";
import type { AddonWorkloads } from "./addons-readiness";
import type { SecretReader } from "./backup-credentials";
import type { EtcdBackupCheck } from "./etcd-backup-check";
import type { EtcdMembershipCheck } from "./etcd-membership-check";
import type { MachineKubelet } from "./kubelet-skew";
import type { ClusterObjectsLocation } from "./live-fingerprint";
import type { NamespacePresence } from "./masters-lost";
import type { NamespaceLabels } from "./masters-namespace";

/**
 * Reads and writes Cluster objects; the implementation retries status writes on conflict. With
 * `annotate`, the recreate-masters annotation is removed once it was acted on.
 */
export type ClusterStore = ObjectStore<ClusterObject, ClusterStatus> & {
  annotate?(object: ClusterObject, annotations: Record<string, string | null>): Promise<ClusterObject>;
};

export interface EventSink {
  record(cluster: ClusterObject, type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
}

export type ClusterStacks = Pick<StackRunner, "up" | "preview" | "destroyAndRemove" | "resources" | "rename">;

export type DriftCheckResult = "in-sync" | "drifted" | "error";
/** How a drift check decided: the live objects' fingerprint alone, or a full preview with refresh. */
export type DriftCheckMethod = "fingerprint" | "preview";

/** Observers of what the reconciler finds and does, for metrics; each is optional. */
export interface ClusterReconcilerHooks {
  /** A drift check ended: the live objects match, differ, or the check failed; and how it decided. */
  readonly driftChecked?: (result: DriftCheckResult, method: DriftCheckMethod) => void;
  /** The `up` that followed a drift check succeeded: the live objects were put back. */
  readonly driftCorrected?: () => void;
  /**
   * A Cluster's `status.certificatesExpireAt` as last seen; `undefined` once the Cluster is being
   * deleted or gone, so a per-Cluster series does not outlive its Cluster.
   */
  readonly certificatesExpireAt?: (namespace: string, name: string, expiresAt: Date | undefined) => void;
}

export interface ClusterReconcilerOptions {
  readonly store: ClusterStore;
  readonly events: EventSink;
  readonly stacks: ClusterStacks;
  /** The labels of a meta-cluster namespace (undefined: none such), for the ownership check before an `up`. */
  readonly namespaceLabels: NamespaceLabels;
  /**
   * Whether a meta-cluster namespace exists or is being deleted, to stop before an `up` that would
   * re-create lost masters empty (masters-lost.ts). Default: from `namespaceLabels` (no
   * "terminating").
   */
  readonly namespacePresence?: NamespacePresence;
  /** How often a reconciled Cluster is checked for drift. */
  readonly resyncMs: number;
  /**
   * Fingerprint of a Cluster's live objects (LiveClusterObjects.fingerprint). Without it every
   * drift check is a full preview with refresh.
   */
  readonly liveFingerprint?: (at: ClusterObjectsLocation) => Promise<string>;
  /**
   * The add-on workloads' status in a Cluster's business cluster (LiveClusterObjects.addonWorkloads),
   * read on the drift check's cadence and after each `up` for the AddonsReady condition. Without
   * it the condition is not written.
   */
  readonly addonWorkloads?: (at: ClusterObjectsLocation) => Promise<AddonWorkloads>;
  /**
   * What is stuck on the Pods of a masters' namespace (master-pods.ts), polled every
   * `troublesCheckMs` (default 15 s) while an update or deletion runs and told in `Progressing`.
   */
  readonly masterPodTroubles?: (mastersNamespace: string) => Promise<string[]>;
  readonly troublesCheckMs?: number;
  /**
   * The etcd backup check (etcd-backup-check.ts): on-demand backups, status.etcd.lastBackup,
   * EtcdBackupHealthy. Without it none of these is written.
   */
  readonly etcdBackups?: Pick<EtcdBackupCheck, "check" | "forget">;
  /** A full preview at least this often, even when the fingerprint is unchanged. Default 24 h. */
  readonly fullDriftCheckMs?: number;
  /**
   * The operator's own namespace: the masters' NetworkPolicies admit it to the apiserver. Default
   * none (then only the apiserver's open port reaches the masters from outside their namespace).
   */
  readonly operatorNamespace?: string;
  /** Meta-cluster kubeconfig for the program's provider; default the engine's ambient one. */
  readonly metaKubeconfig?: string;
  readonly now?: () => Date;
  /**
   * Names of the Machines that still belong to a Cluster. Deletion waits for them: their own
   * deletion drains and removes their Nodes through this cluster's masters.
   */
  readonly machinesOf?: (namespace: string, cluster: string) => readonly string[];
  /** The Machines of a Cluster and their reported kubelets: a masters upgrade that would strand them waits. */
  readonly machineKubelets?: (namespace: string, cluster: string) => readonly MachineKubelet[];
  /** The Machines of a Cluster and their certificates: phase 2 of a CA rotation waits for every one. */
  readonly machineCertificates?: (namespace: string, cluster: string) => readonly MachineCertificateReport[];
  readonly hooks?: ClusterReconcilerHooks;
  /** What the platform lets a Cluster ask for (admin-policy.ts); default the built-in policy. */
  readonly policy?: ResolvedAdminPolicy;
  /** Reads a tenant's Secret: the backup store's credentials (backup-credentials.ts). */
  readonly readSecret?: SecretReader;
  /** The image of the etcd backup and restore containers (`--backup-image`); default the components' own. */
  readonly backupImage?: string;
  /**
   * The etcd membership check (etcd-membership-check.ts): spec.etcd.replicas reached one member at
   * a time, lost members replaced. Without it the StatefulSet keeps the spec's count as rendered.
   */
  readonly etcdMembership?: Pick<EtcdMembershipCheck, "check" | "renderFor">;
}

/**
 * Where the objects of a Cluster's stack live (what its program creates and the fingerprint reads).
 * `mastersNamespace`: the placement's (a migrated stack keeps its legacy one); default the derived name.
 * With a spec whose add-ons are deployed, also the business cluster's add-ons, read through the
 * admin kubeconfig the stack keeps in the masters' namespace (never the tenant's copy).
 */
export function objectsLocationOf(c: Pick<ClusterObject, "metadata"> & { readonly spec?: ClusterSpec }, mastersNamespace = mastersNamespaceOf(c)): ClusterObjectsLocation {
  return {
    cluster: c.metadata.name,
    mastersNamespace,
    adminKubeconfigCopy: adminKubeconfigCopyOf(c),
    ...(c.spec?.kubeconfigs?.length ? { userKubeconfigCopies: c.spec.kubeconfigs.map((k) => userKubeconfigCopyOf(c, k.name)) } : {}),
    ...(c.spec && deploysAddons(c.spec) ? { addons: { adminKubeconfig: adminKubeconfigSecretOf(c, mastersNamespace) } } : {}),
    ...(c.spec?.etcd?.backup ? { etcdBackup: { credentials: { namespace: c.metadata.namespace, name: c.spec.etcd.backup.store.s3.credentialsSecretRef.name } } } : {}),
  };
}
