/**
 * The operator process: informer → key queue → ClusterReconciler, behind a leader Lease, with
 * metrics and probes. On becoming leader, and before any update, it recovers the stacks of the
 * Clusters it owns (stale locks of a dead predecessor, pending operations of a killed update).
 */
import { hostname } from "node:os";
import * as path from "node:path";
import * as k8s from "@kubernetes/client-node";
import { API_GROUP, API_VERSION, legacyStackNameOf, stackNameOf, type ClusterObject, type ResolvedAdminPolicy } from "../api/v1alpha1";
import { ClusterReconciler, type ClusterStore, type EventSink } from "../controllers/cluster/reconciler";
import { credentialsDirOf, resetCredentialsDir, SSH_DIR_VARIABLE } from "../host/credentials-dir";
import { EventRecorder } from "../runtime/events";
import { KnownSecrets, PLATFORM_SCOPE, secretValuesOfEnvironment } from "../runtime/known-secrets";
import { MIN_SECRET_LENGTH, redactLogLine } from "../runtime/redact";
import { parseListenAddress, startOperatorServer, type OperatorServer } from "../runtime/http-server";
import { listInPages, ResilientInformer, type ChangeType } from "../runtime/informer";
import { Manager } from "../runtime/manager";
import { OperatorMetrics } from "../runtime/metrics";
import { StatusWriter } from "../runtime/status-writer";
import { StackRunner } from "../runtime/stack-runner";
import type { WorkerDefaults } from "../program/machine-program";
import { registerFleet } from "./fleet";
import { LiveClusterObjects } from "../controllers/cluster/live-fingerprint";
import { MasterPods } from "../controllers/cluster/master-pods";
import { namespaceLabelsReader } from "../controllers/cluster/masters-namespace";
import type { RemediationPolicy } from "../controllers/machine/remediation";

export interface OperatorOptions {
  readonly kubeconfigPath?: string;
  /** Watch one namespace; default all. */
  readonly namespace?: string;
  /** The namespace the operator runs in (ClusterReconcilerOptions.operatorNamespace). */
  readonly operatorNamespace?: string;
  readonly backendUrl: string;
  /** Per-stack work directories. */
  readonly workRoot: string;
  readonly resyncMs: number;
  /** A Cluster's full drift preview at least this often, even with unchanged live objects; default 24 h. */
  readonly fullDriftCheckMs?: number;
  readonly concurrency: number;
  /** Machine reconciles at once; default 4 × concurrency (engine operations stay capped at `concurrency`). */
  readonly machineWorkers?: number;
  /**
   * Cluster reconciles at once; default 4 × concurrency. Engine operations of Clusters stay capped
   * at `concurrency`: the other workers run fingerprint checks, pauses and deletions of waiting
   * Clusters, and tell queued ones that they wait for an engine slot.
   */
  readonly clusterWorkers?: number;
  readonly metricsAddr: string;
  /** Namespace of the leader Lease; undefined turns leader election off (a single replica). */
  readonly leaderElectionNamespace?: string;
  /** Environment of the engine: PATH with the CLI, PULUMI_HOME, the passphrase, KOK_NODE_MODULES. */
  readonly engineEnv: Record<string, string>;
  readonly secretsProvider?: string;
  readonly log?: (line: Record<string, unknown>) => void;
  /** Host settings for every Machine (`--worker-defaults FILE`). */
  readonly workerDefaults?: WorkerDefaults;
  /** Period of the SSH probe of installed versions; default 10 min. */
  readonly probeIntervalMs?: number;
  /** Period of a Machine health look without a Node wake-up; default 5 min. */
  readonly healthCheckMs?: number;
  readonly remediation?: RemediationPolicy;
  /** The admin policy (`--policy FILE`); default the built-in one (admin-policy.ts). */
  readonly policy?: ResolvedAdminPolicy;
}

export interface RunningOperator {
  readonly server: OperatorServer;
  stop(): Promise<void>;
}

const CLUSTERS = { group: API_GROUP, version: API_VERSION, plural: "clusters" } as const;

/** client-node errors carry the whole HTTP exchange (headers included): log its gist only. */
function brief(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const code = /HTTP-Code: (\d+)/.exec(text)?.[1];
  const message = /"message":"((?:[^"\\]|\\.)*)"/.exec(text)?.[1];
  return code ? `HTTP ${code}${message ? `: ${message}` : ""}` : text.split("\n")[0];
}

function clusterStore(api: k8s.CustomObjectsApi, writer: StatusWriter<ClusterObject["status"], ClusterObject>): ClusterStore {
  return {
    async get(namespace, name) {
      try {
        return (await api.getNamespacedCustomObject({ ...CLUSTERS, namespace, name })) as ClusterObject;
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    },
    async setFinalizers(cluster, finalizers) {
      // resourceVersion makes this an optimistic write: a conflict surfaces as an error and the
      // controller retries with a fresh read.
      const body = { metadata: { finalizers, resourceVersion: cluster.metadata.resourceVersion } };
      return (await api.patchNamespacedCustomObject(
        { ...CLUSTERS, namespace: cluster.metadata.namespace, name: cluster.metadata.name, body },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      )) as ClusterObject;
    },
    async writeStatus(cluster, status) {
      await writer.update(`${cluster.metadata.namespace}/${cluster.metadata.name}`, () => status);
    },
  };
}

/**
 * Wakes the reconciler for new objects, deletions, resyncs and updates that change what it acts
 * on (generation, deletion, finalizers), not for its own status writes.
 */
export function specChanged(get: (key: string) => ClusterObject | undefined): (key: string, type: ChangeType) => boolean {
  const seen = new Map<string, string>();
  return (key, type) => {
    const object = get(key);
    if (type === "delete" || !object) {
      seen.delete(key);
      return true;
    }
    const m = object.metadata;
    const fingerprint = JSON.stringify([m.generation, Boolean(m.deletionTimestamp), m.finalizers ?? []]);
    const changed = seen.get(key) !== fingerprint;
    seen.set(key, fingerprint);
    return type !== "update" || changed;
  };
}

export async function startOperator(options: OperatorOptions): Promise<RunningOperator> {
  const writeLog = options.log ?? ((line) => console.log(JSON.stringify({ time: new Date().toISOString(), ...line })));
  const kubeConfig = new k8s.KubeConfig();
  if (options.kubeconfigPath) kubeConfig.loadFromFile(options.kubeconfigPath);
  else kubeConfig.loadFromDefault();
  const customObjects = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  // Every secret value handled, for redaction: the passphrase and other credentials of the
  // environment and the operator's own kubeconfig now, every Secret read later (fleet.ts).
  const knownSecrets = new KnownSecrets();
  const self = kubeConfig.getCurrentUser();
  knownSecrets.add(PLATFORM_SCOPE, [...secretValuesOfEnvironment(options.engineEnv), self?.token, self?.password]);
  const secrets = (namespace?: string) => knownSecrets.for(namespace);
  const log = (line: Record<string, unknown>) => writeLog(redactLogLine(line, knownSecrets.for()));
  const passphrase = options.engineEnv.PULUMI_CONFIG_PASSPHRASE;
  if (passphrase !== undefined && passphrase.length < MIN_SECRET_LENGTH) {
    log({ level: "warn", msg: `PULUMI_CONFIG_PASSPHRASE is shorter than ${MIN_SECRET_LENGTH} characters: too short to be redacted from messages (or to resist guessing); use a long random one` });
  }
  // Before anything connects to a host: what a killed predecessor left there goes (credentials-dir.ts).
  const credentialsDir = resetCredentialsDir(credentialsDirOf(options.workRoot));
  const engineEnv = { ...options.engineEnv, [SSH_DIR_VARIABLE]: credentialsDir };

  const metrics = new OperatorMetrics();
  // This replica's name in the Lease and in its own logs, so the two can be matched.
  const identity = `${hostname()}-${process.pid}`;
  const runner = new StackRunner({
    projectName: "kube-on-kube-clusters",
    backendUrl: options.backendUrl,
    workRoot: path.join(options.workRoot, "clusters"),
    env: { ...engineEnv, ...(options.kubeconfigPath ? { KUBECONFIG: options.kubeconfigPath } : {}) },
    secretsProvider: options.secretsProvider,
    maxConcurrentOperations: options.concurrency,
    onOperation: (operation, result, durationMs) => metrics.recordStackOperation("Cluster", operation, result, durationMs),
  });
  const recorder = new EventRecorder({
    api: core,
    instance: hostname(),
    secrets,
    onError: (err, event) => log({ level: "warn", msg: "event not recorded", reason: event.reason, subject: event.subject, error: brief(err) }),
  });
  const events: EventSink = { record: (cluster, type, reason, message) => recorder.record(cluster, type, reason, message) };
  const statusWriter = new StatusWriter<ClusterObject["status"], ClusterObject>({ api: customObjects, ...CLUSTERS, secrets });
  const machinesOfCluster = (namespace: string, cluster: string) =>
    fleet.machines
      .list()
      .filter((m) => m.metadata.namespace === namespace && m.spec.clusterRef.name === cluster)
      .map((m) => m.metadata.name);
  const liveObjects = new LiveClusterObjects(kubeConfig);
  const masterPods = new MasterPods(kubeConfig);
  const reconciler = new ClusterReconciler({
    machinesOf: machinesOfCluster,
    store: clusterStore(customObjects, statusWriter),
    events,
    stacks: runner,
    namespaceLabels: namespaceLabelsReader(core),
    operatorNamespace: options.operatorNamespace,
    resyncMs: options.resyncMs,
    liveFingerprint: (at) => liveObjects.fingerprint(at),
    masterPodTroubles: (namespace) => masterPods.troubles(namespace),
    fullDriftCheckMs: options.fullDriftCheckMs,
    hooks: { ...metrics.driftHooks("Cluster"), certificatesExpireAt: (ns, name, at) => metrics.setCertificatesExpireAt(ns, name, at) },
    policy: options.policy,
  });

  const informer = new ResilientInformer<ClusterObject & k8s.KubernetesObject>({
    kubeConfig,
    path: options.namespace ? `/apis/${API_GROUP}/${API_VERSION}/namespaces/${options.namespace}/clusters` : `/apis/${API_GROUP}/${API_VERSION}/clusters`,
    list: () =>
      listInPages<ClusterObject & k8s.KubernetesObject>(
        (page) =>
          (options.namespace
            ? customObjects.listNamespacedCustomObject({ ...CLUSTERS, ...page, namespace: options.namespace })
            : customObjects.listClusterCustomObject({ ...CLUSTERS, ...page })) as never,
      ),
    resyncPeriodMs: options.resyncMs,
    onError: (err, restartInMs) => log({ level: "warn", msg: "cluster watch failed; restarting", restartInMs, error: brief(err) }),
  });
  const manager = new Manager({
    metrics,
    election: options.leaderElectionNamespace
      ? {
          api: kubeConfig.makeApiClient(k8s.CoordinationV1Api),
          namespace: options.leaderElectionNamespace,
          name: "kube-on-kube-operator",
          identity,
          onNewLeader: (identity) => log({ level: "info", msg: "leader", identity }),
          onError: (err) => log({ level: "warn", msg: "leader election error", error: brief(err) }),
        }
      : undefined,
    // Before any update of a new term: a predecessor killed mid-update left locks and pending
    // operations on the stacks it was working on.
    beforeReconciling: async (termEnded) => {
      // A stack not yet migrated from its legacy name is recovered under that name: the rename needs its lock.
      for (const cluster of informer.list()) {
        for (const stack of [stackNameOf(cluster), legacyStackNameOf(cluster)]) {
          if (termEnded.aborted) return;
          if (await runner.recover(stack, reconciler.program(cluster))) log({ level: "warn", msg: "cleared pending operations of an interrupted update", stack });
        }
      }
      // Only machines whose status says an update was running can hold a lock or pending
      // operations: a fleet of thousands is not a thousand engine calls at every failover.
      for (const machine of fleet.machines.list()) {
        if (termEnded.aborted) return;
        if (machine.status?.lastOperation?.result !== "running") continue;
        for (const stack of [stackNameOf(machine), legacyStackNameOf(machine)]) {
          if (await fleet.runner.recover(stack, async () => ({}))) log({ level: "warn", msg: "cleared pending operations of an interrupted update", stack });
        }
      }
      log({ level: "info", msg: "leading: reconciling", clusters: informer.list().length, machines: fleet.machines.list().length });
    },
    onReconcile: (event) =>
      log({
        level: event.result === "error" || event.result === "terminal" ? "error" : "info",
        msg: "reconciled",
        kind: event.kind,
        key: event.key,
        result: event.result,
        durationMs: Math.round(event.durationMs),
        error: event.error?.message,
      }),
    onError: (err) => log({ level: "error", msg: "operator error", error: brief(err) }),
  });
  manager.register({
    kind: "Cluster",
    informer,
    reconcile: (key) => reconciler.reconcile(key),
    concurrency: options.clusterWorkers ?? 4 * options.concurrency,
    filter: specChanged((key) => informer.get(key)),
  });

  const fleet = registerFleet({
    kubeConfig,
    namespace: options.namespace,
    manager,
    metrics,
    recorder,
    clusters: informer,
    backendUrl: options.backendUrl,
    workRoot: options.workRoot,
    engineEnv,
    credentialsDir,
    secretsProvider: options.secretsProvider,
    concurrency: options.concurrency,
    machineWorkers: options.machineWorkers,
    resyncMs: options.resyncMs,
    workerDefaults: options.workerDefaults,
    probeIntervalMs: options.probeIntervalMs,
    healthCheckMs: options.healthCheckMs,
    remediation: options.remediation,
    knownSecrets,
    policy: options.policy,
    log,
    brief,
  });

  const server = await startOperatorServer({ address: parseListenAddress(options.metricsAddr), registry: metrics.registry, readiness: manager.readiness() });
  await manager.start();
  log({ level: "info", msg: "operator started", identity, metrics: `${server.address.host}:${server.address.port}`, backend: options.backendUrl.replace(/\/\/[^@/]*@/, "//***@") });

  return {
    server,
    async stop() {
      await manager.stop();
      await fleet.stop();
      await server.close();
    },
  };
}
