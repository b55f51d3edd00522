/**
 * The Cluster kind: its reconciler, its stack project (`kube-on-kube-clusters`, one stack per
 * Cluster) and its registration. Clusters wake on their own spec, deletion and finalizer changes,
 * on a new `kubeonkube.io/backup-now` value (an on-demand etcd backup) and on resyncs (the drift
 * check); no other kind's change concerns a Cluster's masters.
 */
import * as path from "node:path";
import { legacyStackNameOf, ROTATE_CA_ANNOTATION, stackNameOf, type ClusterObject, type ClusterStatus } from "../../api/v1alpha1";
import { CustomObjectStore } from "../../runtime/object-store";
import { annotationChanged, or, specOrLifecycleChanged } from "../../runtime/predicates";
import type { EngineFence } from "../../runtime/fencing";
import { recoveryLogLine, type StackRecoveries } from "../../runtime/recovery";
import { killedEngineLogLine } from "../../runtime/killed-engine";
import { pruneLogLine } from "../../runtime/holder-pruning";
import { StackRunner } from "../../runtime/stack-runner";
import { writeGated } from "../../runtime/write-gate";
import { CLUSTERS, type Cached, type ControllerContext, type Registered } from "../context";
import { KubeEtcdBackupApi } from "./etcd-backup-api";
import type { EventSink } from "./reconciler";
import { EtcdBackupCheck } from "./etcd-backup-check";
import { KubeEtcdMembershipApi } from "./etcd-membership-api";
import { EtcdMembershipCheck } from "./etcd-membership-check";
import { defaultBackupImage } from "../../components/etcd-backup";
import { BACKUP_NOW_ANNOTATION } from "./etcd-backups";
import { LiveClusterObjects } from "./live-fingerprint";
import type { ClusterMetrics } from "./metrics";
import { MasterPods } from "./master-pods";
import { namespaceLabelsReader } from "./masters-namespace";
import { namespacePresenceReader } from "./masters-lost";
import { ClusterReconciler, type ClusterStore } from "./reconciler";
import type { SecretReader } from "./backup-credentials";
import { secretValuesOf } from "../../runtime/known-secrets";
import { isNotFound } from "../../runtime/api-errors";

/** What wakes a Cluster: its spec, deletion and finalizers, resyncs, and a new backup-now or rotate-ca token. */
export const clusterWakes = or(specOrLifecycleChanged, annotationChanged(BACKUP_NOW_ANNOTATION), annotationChanged(ROTATE_CA_ANNOTATION));

export interface ClusterControllerOptions {
  /** The replica's engine fence (fencing.ts): the stacks' operations run only while it leads. */
  readonly fence?: EngineFence;
  /** Drift and certificate metrics of Clusters. */
  readonly clusterMetrics: ClusterMetrics;
  /** Reconciles at once; default 4 × concurrency (engine operations stay capped at `concurrency`). */
  readonly workers?: number;
  readonly resyncMs: number;
  /** A full drift preview at least this often, even with unchanged live objects; default 24 h. */
  readonly fullDriftCheckMs?: number;
  /** The namespace the operator runs in (admitted to the masters' apiservers). */
  readonly operatorNamespace?: string;
  /** The engine's KUBECONFIG for the meta-cluster provider, when not in-cluster. */
  readonly kubeconfigPath?: string;
  /** The image of the etcd backup and restore containers (`--backup-image`). */
  readonly backupImage?: string;
}

/**
 * Reads a Secret in a Cluster's namespace (the backup store's credentials); its values are then
 * redacted from whatever the operator writes about that tenant (known-secrets.ts).
 */
function tenantSecretReader(ctx: ControllerContext): SecretReader {
  return async (namespace, name) => {
    try {
      const secret = await ctx.core.readNamespacedSecret({ namespace, name });
      const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
      ctx.knownSecrets.add(namespace, secretValuesOf(data));
      return data;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
}

export function registerClusterController(ctx: ControllerContext, o: ClusterControllerOptions): Registered & StackRecoveries {
  const { informers, metrics } = ctx;
  const runner = new StackRunner({
    projectName: "kube-on-kube-clusters",
    backendUrl: ctx.backendUrl,
    workRoot: path.join(ctx.workRoot, "clusters"),
    env: { ...ctx.engineEnv, ...(o.kubeconfigPath ? { KUBECONFIG: o.kubeconfigPath } : {}) },
    secretsProvider: ctx.secretsProvider,
    maxConcurrentOperations: ctx.concurrency,
    fence: o.fence,
    onKilledEngine: (cleanup) => ctx.log(killedEngineLogLine(cleanup)),
    onOperation: (operation, result, durationMs) => metrics.recordStackOperation("Cluster", operation, result, durationMs),
  });
  const objects = new CustomObjectStore<Cached<ClusterObject>, ClusterStatus>({
    api: ctx.customObjects,
    resource: CLUSTERS,
    informer: informers.clusters,
    secrets: (ns) => ctx.knownSecrets.for(ns),
  });
  const store: ClusterStore = objects;
  const liveObjects = new LiveClusterObjects(ctx.kubeConfig);
  const masterPods = new MasterPods(ctx.kubeConfig);
  const events: EventSink = { record: (cluster, type, reason, message) => ctx.recorder.record(cluster, type, reason, message) };
  // Jobs created and annotated only while this replica leads, as statuses and Events (write-gate.ts).
  const backupApi = new KubeEtcdBackupApi(ctx.kubeConfig, (api, what) => writeGated(api, () => o.fence?.mayWrite() ?? true, what));
  const etcdBackups = new EtcdBackupCheck({ api: backupApi, store, events, now: () => new Date(), hooks: o.clusterMetrics.backupHooks() });
  const membershipApi = new KubeEtcdMembershipApi(ctx.kubeConfig, (api, what) => writeGated(api, () => o.fence?.mayWrite() ?? true, what));
  const etcdMembership = new EtcdMembershipCheck({ api: membershipApi, store, events, now: () => new Date(), image: o.backupImage ?? defaultBackupImage() });
  const reconciler = new ClusterReconciler({
    machinesOf: (namespace, cluster) =>
      informers.machines
        .list()
        .filter((m) => m.metadata.namespace === namespace && m.spec.clusterRef.name === cluster)
        .map((m) => m.metadata.name),
    machineKubelets: (namespace, cluster) =>
      informers.machines
        .list()
        .filter((m) => m.metadata.namespace === namespace && m.spec.clusterRef.name === cluster)
        .map((m) => ({ name: m.metadata.name, kubelet: m.status?.observedVersions?.kubelet })),
    machineCertificates: (namespace, cluster) =>
      informers.machines
        .list()
        .filter((m) => m.metadata.namespace === namespace && m.spec.clusterRef.name === cluster)
        // status.certificates is the machine controller's (its schema in machine.ts).
        .map((m) => ({ name: m.metadata.name, deleting: Boolean(m.metadata.deletionTimestamp), certificates: m.status?.certificates })),
    store,
    events,
    stacks: runner,
    namespaceLabels: namespaceLabelsReader(ctx.core),
    namespacePresence: namespacePresenceReader(ctx.core),
    operatorNamespace: o.operatorNamespace,
    resyncMs: o.resyncMs,
    liveFingerprint: (at) => liveObjects.fingerprint(at),
    addonWorkloads: (at) => liveObjects.addonWorkloads(at),
    masterPodTroubles: (namespace) => masterPods.troubles(namespace),
    etcdBackups,
    etcdMembership,
    fullDriftCheckMs: o.fullDriftCheckMs,
    hooks: o.clusterMetrics.hooks("Cluster"),
    policy: ctx.policy,
    readSecret: tenantSecretReader(ctx),
    backupImage: o.backupImage,
  });

  ctx.manager.register({
    kind: "Cluster",
    informer: informers.clusters,
    reconcile: (key) => reconciler.reconcile(key),
    concurrency: o.workers ?? 4 * ctx.concurrency,
    predicate: clusterWakes,
  });

  return {
    // Each Cluster recovers on its own (recovery.ts): a stack not yet migrated from its legacy
    // name is recovered under that name too, since the rename needs its lock.
    recoveries: (term) =>
      informers.clusters.list().map((cluster) => ({
        kind: "Cluster",
        key: `${cluster.metadata.namespace}/${cluster.metadata.name}`,
        run: async (termEnded) => {
          for (const stack of [stackNameOf(cluster), legacyStackNameOf(cluster)]) {
            if (termEnded.aborted) return;
            ctx.log(recoveryLogLine(stack, await runner.recover(stack, reconciler.program(cluster), term)));
          }
        },
      })),
    // The stacks a Cluster may name: its own and its legacy one (until the rename), as recovered above.
    pruneHolders: async (term, termEnded) => {
      const inUse = (stack: string) => informers.clusters.list().some((c) => stackNameOf(c) === stack || legacyStackNameOf(c) === stack);
      for (const outcome of await runner.pruneHolderRecords(inUse, term, termEnded)) ctx.log(pruneLogLine(outcome));
    },
  };
}
