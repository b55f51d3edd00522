/**
 * The composition root: one operator process. It connects to the meta-cluster, builds what every
 * kind shares (informers, metrics, events, redaction, the manager with its leader Lease and the
 * HTTP server), and hands them to each kind's registration (src/controllers/<kind>/register.ts).
 * On becoming leader, and before any update of an object, its stacks are recovered (locks of an
 * ended term, pending operations of a killed update), each object on its own: one that fails is
 * reported on its object and retried, the others are reconciled. Losing the lease kills every
 * engine of this replica before the lease can pass on (fencing.ts; docs/operator.md, "Fencing").
 */
import { hostname } from "node:os";
import * as k8s from "@kubernetes/client-node";
import type { ResolvedAdminPolicy } from "../api/v1alpha1";
import { ClusterMetrics } from "../controllers/cluster/metrics";
import { registerClusterController } from "../controllers/cluster/register";
import { CLUSTERS, customObjectInformer, MACHINES, PACKAGE_VERSIONS, type ControllerContext, type KindInformers, type Registered } from "../controllers/context";
import type { KubernetesObject } from "@kubernetes/client-node";
import { FleetMetrics } from "../controllers/machine/metrics";
import { registerMachineController } from "../controllers/machine/register";
import type { RemediationPolicy } from "../controllers/machine/remediation";
import { registerPackageVersionController } from "../controllers/packageversion/register";
import { credentialsDirOf, resetCredentialsDir, SSH_DIR_VARIABLE } from "../host/credentials-dir";
import type { WorkerDefaults } from "../program/machine-program";
import { EventRecorder } from "../runtime/events";
import { EngineFence, FenceWatchdog, type HolderRecords } from "../runtime/fencing";
import { holderRecordsFor } from "../runtime/holder-files";
import { leaseHolderRecords } from "../runtime/holder-leases";
import { writeGated } from "../runtime/write-gate";
import { parseListenAddress, startOperatorServer, type OperatorServer } from "../runtime/http-server";
import { KnownSecrets, PLATFORM_SCOPE, secretValuesOfEnvironment } from "../runtime/known-secrets";
import { Manager } from "../runtime/manager";
import { OperatorMetrics } from "../runtime/metrics";
import { createLogger, logLine, type Logger, type LogLevel } from "../runtime/logger";
import { MIN_SECRET_LENGTH } from "../runtime/redact";
import { HOLDERS_LEASE_NAME } from "./rbac";

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
  /**
   * Receives each log line as an object (`level`, `time`, `msg`, then the fields, already
   * redacted) instead of stdout; tests and embedders use it.
   */
  readonly log?: (line: Record<string, unknown>) => void;
  /** Lines below this level are dropped (`--log-level`); default `info`. */
  readonly logLevel?: LogLevel;
  /** Host settings for every Machine (`--worker-defaults FILE`). */
  readonly workerDefaults?: WorkerDefaults;
  /** Period of the SSH probe of installed versions; default 10 min. */
  readonly probeIntervalMs?: number;
  /** Period of a Machine health look without a Node wake-up; default 5 min. */
  readonly healthCheckMs?: number;
  readonly remediation?: RemediationPolicy;
  /** The admin policy (`--policy FILE`); default the built-in one (admin-policy.ts). */
  readonly policy?: ResolvedAdminPolicy;
  /** The image of Clusters' etcd backup and restore containers (`--backup-image`); default the operator image of this release. */
  readonly backupImage?: string;
}

export interface RunningOperator {
  readonly server: OperatorServer;
  stop(): Promise<void>;
}

/** The leader Lease, and the operator's name in `leader_election_master_status` with or without election. */
const LEASE_NAME = "kube-on-kube-operator";

/** client-node errors carry the whole HTTP exchange (headers included): log its gist only. */
function brief(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const code = /HTTP-Code: (\d+)/.exec(text)?.[1];
  const message = /"message":"((?:[^"\\]|\\.)*)"/.exec(text)?.[1];
  return code ? `HTTP ${code}${message ? `: ${message}` : ""}` : text.split("\n")[0];
}

/** The meta-cluster connection: `--kubeconfig`, else in-cluster or $KUBECONFIG. */
function metaClusterConfig(kubeconfigPath: string | undefined): k8s.KubeConfig {
  const kubeConfig = new k8s.KubeConfig();
  if (kubeconfigPath) kubeConfig.loadFromFile(kubeconfigPath);
  else kubeConfig.loadFromDefault();
  return kubeConfig;
}

export async function startOperator(options: OperatorOptions): Promise<RunningOperator> {
  // Every secret value handled, for redaction: the passphrase and other credentials of the
  // environment and the operator's own kubeconfig now, every Secret read later (machine/register.ts).
  const knownSecrets = new KnownSecrets();
  // Every line passes the redaction: fields of every value known, `msg` of the platform's own
  // (logger.ts says why tenants' values are not looked for in `msg`).
  const logger = createLogger({
    level: options.logLevel,
    sink: options.log,
    secrets: () => knownSecrets.for(),
    messageSecrets: () => knownSecrets.for(PLATFORM_SCOPE),
  });
  const controllerLoggers = new Map<string, Logger>();
  const controllerLog = (kind: string) => controllerLoggers.get(kind) ?? controllerLoggers.set(kind, logger.child({ controller: kind })).get(kind)!;
  const log = (line: Record<string, unknown>) => logLine(logger, line);
  const kubeConfig = metaClusterConfig(options.kubeconfigPath);
  // This replica's name in the Lease, in its engines' marker and in its own logs, so they can be matched.
  const identity = `${hostname()}-${process.pid}`;
  const self = kubeConfig.getCurrentUser();
  knownSecrets.add(PLATFORM_SCOPE, [...secretValuesOfEnvironment(options.engineEnv), self?.token, self?.password]);
  const passphrase = options.engineEnv.PULUMI_CONFIG_PASSPHRASE;
  if (passphrase !== undefined && passphrase.length < MIN_SECRET_LENGTH) {
    logger.warn(`PULUMI_CONFIG_PASSPHRASE is shorter than ${MIN_SECRET_LENGTH} characters: too short to be redacted from messages (or to resist guessing); use a long random one`);
  }
  // Before anything connects to a host: what a killed predecessor left there goes (credentials-dir.ts).
  const credentialsDir = resetCredentialsDir(credentialsDirOf(options.workRoot));

  const metrics = new OperatorMetrics();
  // Every engine this replica starts carries the fence's marker; the watchdog kills them if the
  // operator is frozen or dies while they run (fencing.ts).
  // Statuses, Events, finalizers and holder records are written only while this replica leads (write-gate.ts).
  const mayWrite = (): boolean => fence.mayWrite();
  const gated = <T extends object>(api: T, what: string): T => writeGated(api, mayWrite, what);
  const fence: EngineFence = new EngineFence({ identity, holders: objectStoreHolders(options, kubeConfig, gated, logger) });
  const watchdog = new FenceWatchdog(fence.marker);
  const core = gated(kubeConfig.makeApiClient(k8s.CoreV1Api), "CoreV1Api");
  const customObjects = gated(kubeConfig.makeApiClient(k8s.CustomObjectsApi), "CustomObjectsApi");
  const recorder = new EventRecorder({
    api: core,
    instance: hostname(),
    secrets: (namespace) => knownSecrets.for(namespace),
    onError: (err, event) => logger.warn("event not recorded", { reason: event.reason, subject: event.subject, error: brief(err) }),
  });
  const watchOptions = { kubeConfig, customObjects, namespace: options.namespace, resyncMs: options.resyncMs, log, brief };
  const informers: KindInformers = {
    clusters: customObjectInformer(watchOptions, CLUSTERS),
    machines: customObjectInformer(watchOptions, MACHINES),
    packageVersions: customObjectInformer(watchOptions, PACKAGE_VERSIONS),
  };
  const kinds: Registered[] = [];
  const objectOf = (kind: string, key: string): KubernetesObject | undefined =>
    kind === "Cluster" ? informers.clusters.get(key) : kind === "Machine" ? informers.machines.get(key) : undefined;
  const manager = new Manager({
    metrics,
    name: LEASE_NAME,
    election: options.leaderElectionNamespace
      ? {
          api: kubeConfig.makeApiClient(k8s.CoordinationV1Api),
          namespace: options.leaderElectionNamespace,
          name: LEASE_NAME,
          identity,
          onNewLeader: (identity) => logger.info("leader", { identity }),
          onError: (err) => logger.warn("leader election error", { error: brief(err) }),
        }
      : undefined,
    fence,
    watchdog,
    onFenceFailed: (reason) => {
      logger.error("fencing failed after losing the lease: exiting so that the next leader is safe", { reason });
      process.exit(70);
    },
    // Before any update of an object in a new term: a predecessor killed or fenced mid-update
    // left locks and pending operations on the stacks it was working on.
    recoveries: async (_termEnded, term) => {
      logger.info("leading: recovering stacks", { clusters: informers.clusters.list().length, machines: informers.machines.list().length });
      return (await Promise.all(kinds.map((kind) => kind.recoveries?.(term) ?? []))).flat();
    },
    onRecoveryFailed: ({ recovery, error, attempt, retryInMs }) => {
      const why = brief(error);
      logger.warn("stack recovery failed; the object waits for it, the others go on", { kind: recovery.kind, key: recovery.key, attempt, retryInMs, error: why });
      const object = objectOf(recovery.kind, recovery.key);
      if (object) {
        void recorder.warning(object, "StackRecoveryFailed", `recovering its stacks after a leader change failed (try ${attempt}; next in ${Math.round(retryInMs / 1000)} s); it is not reconciled until this succeeds: ${why}`);
      }
    },
    onRecovered: (recovery, attempts) => {
      if (attempts <= 1) return;
      logger.info("stack recovery succeeded", { kind: recovery.kind, key: recovery.key, attempts });
      const object = objectOf(recovery.kind, recovery.key);
      if (object) void recorder.normal(object, "StackRecovered", `its stacks were recovered after ${attempts} tries; reconciling`);
    },
    onReconciling: (term, termEnded) => {
      logger.info("leading: reconciling", { clusters: informers.clusters.list().length, machines: informers.machines.list().length });
      // In the background: each record of a stack without an object may take an engine call.
      for (const kind of kinds) void kind.pruneHolders?.(term, termEnded).catch((err: unknown) => logger.warn("pruning holder records failed; the next term tries again", { error: brief(err) }));
    },
    // A failed reconcile is an error; a terminal one (an invalid spec) is the object owner's to
    // fix, told in its status and Events, so a warning here.
    onReconcile: (event) =>
      controllerLog(event.kind)
        .child({ key: event.key })
        .log(event.result === "error" ? "error" : event.result === "terminal" ? "warn" : "info", "reconciled", {
          result: event.result,
          durationMs: Math.round(event.durationMs),
          retryAfterMs: event.retryAfterMs,
          error: event.error?.message,
        }),
    onError: (err) => logger.error("operator error", { error: brief(err) }),
  });

  const ctx: ControllerContext = {
    kubeConfig,
    customObjects,
    core,
    manager,
    informers,
    metrics,
    recorder,
    knownSecrets,
    log,
    brief,
    backendUrl: options.backendUrl,
    workRoot: options.workRoot,
    engineEnv: { ...options.engineEnv, [SSH_DIR_VARIABLE]: credentialsDir },
    secretsProvider: options.secretsProvider,
    concurrency: options.concurrency,
    policy: options.policy,
  };
  const fleetMetrics = new FleetMetrics(metrics.registry, () => informers.machines.list());
  kinds.push(
    registerClusterController(ctx, {
      fence,
      clusterMetrics: new ClusterMetrics(metrics.registry, () => informers.clusters.list()),
      workers: options.clusterWorkers,
      resyncMs: options.resyncMs,
      fullDriftCheckMs: options.fullDriftCheckMs,
      operatorNamespace: options.operatorNamespace,
      kubeconfigPath: options.kubeconfigPath,
      backupImage: options.backupImage,
    }),
    registerMachineController(ctx, {
      fence,
      fleetMetrics,
      workers: options.machineWorkers,
      workerDefaults: options.workerDefaults,
      probeIntervalMs: options.probeIntervalMs,
      healthCheckMs: options.healthCheckMs,
      remediation: options.remediation,
      credentialsDir,
    }),
    registerPackageVersionController(ctx, { fleetMetrics }),
  );

  const server = await startOperatorServer({ address: parseListenAddress(options.metricsAddr), registry: metrics.registry, readiness: manager.readiness(), describe: () => manager.describe() });
  await manager.start();
  logger.info("operator started", { identity, metrics: `${server.address.host}:${server.address.port}`, backend: options.backendUrl.replace(/\/\/[^@/]*@/, "//***@") });

  return {
    server,
    async stop() {
      await manager.stop();
      for (const kind of kinds) await kind.stop?.();
      await watchdog.stop();
      await server.close();
    },
  };
}

/**
 * Where the holder records of a backend other than `file://` go (fencing.ts): a Lease in the
 * operator's namespace (holder-leases.ts says why not the bucket). Without a namespace to put it
 * in (no leader election, no operator namespace: a process on a laptop) there are none, and a
 * lock left by a killed update needs `pulumi cancel` by hand.
 */
function objectStoreHolders(
  options: OperatorOptions,
  kubeConfig: k8s.KubeConfig,
  gated: <T extends object>(api: T, what: string) => T,
  logger: Logger,
): HolderRecords | undefined {
  if (holderRecordsFor(options.backendUrl)) return undefined;
  const namespace = options.leaderElectionNamespace ?? options.operatorNamespace;
  if (!namespace) {
    logger.warn("no namespace for the holder records of this backend (--leader-election-namespace or --operator-namespace): a lock left by a killed update is never cleared automatically");
    return undefined;
  }
  const api = gated(kubeConfig.makeApiClient(k8s.CoordinationV1Api), "CoordinationV1Api");
  return leaseHolderRecords({ api, namespace, name: HOLDERS_LEASE_NAME, labels: { "app.kubernetes.io/name": "kube-on-kube-operator", "app.kubernetes.io/part-of": "kube-on-kube" } });
}
