/**
 * The operator's worker side: the Machine and ClusterPackageVersion controllers, wired to the
 * meta-cluster (informers, Secrets, status, events), to one Node watch per business cluster and
 * to a stack runner of their own (project `kube-on-kube-machines`, one stack per Machine).
 *
 * Wake-ups across kinds, so nothing waits for a resync:
 *   Cluster becomes Ready / changes endpoint      → its Machines
 *   ClusterPackageVersion spec or rollout status  → its Machines (the catalog they install)
 *   Machine status (installed, failed, Ready)     → its ClusterPackageVersion (the rollout's gate)
 *   a business cluster's Node changes             → the Machine of that Node
 */
import * as path from "node:path";
import * as k8s from "@kubernetes/client-node";
import {
  API_GROUP,
  API_VERSION,
  type ClusterObject,
  type ClusterPackageVersionStatus,
  type MachineObject,
  type MachineStatus,
  type PackageVersionObject,
  type ResolvedAdminPolicy,
} from "../api/v1alpha1";
import type { WorkerDefaults } from "../program/machine-program";
import type { EventRecorder } from "../runtime/events";
import { HostProbe } from "../host/host-probe";
import { PLATFORM_SCOPE, secretValuesOf, type KnownSecrets } from "../runtime/known-secrets";
import { listInPages, ResilientInformer } from "../runtime/informer";
import { MachineReconciler, type MachineStore } from "../controllers/machine/reconciler";
import type { Manager } from "../runtime/manager";
import { FleetMetrics } from "../controllers/machine/metrics";
import type { OperatorMetrics } from "../runtime/metrics";
import { BusinessNodeWatches } from "../controllers/machine/node-health";
import { mastersNamespaceFor, namespaceLabelsReader } from "../controllers/cluster/masters-namespace";
import { PACKAGES_REVISION_ANNOTATION } from "../controllers/packageversion/revision";
import { PackageVersionReconciler, packageVersionKeyOf } from "../controllers/packageversion/reconciler";
import type { RemediationPolicy } from "../controllers/machine/remediation";
import { StackRunner } from "../runtime/stack-runner";
import { StatusWriter } from "../runtime/status-writer";

export const MACHINES = { group: API_GROUP, version: API_VERSION, plural: "machines" } as const;
export const PACKAGE_VERSIONS = { group: API_GROUP, version: API_VERSION, plural: "clusterpackageversions" } as const;

export interface FleetOptions {
  readonly kubeConfig: k8s.KubeConfig;
  readonly namespace?: string;
  readonly manager: Manager;
  readonly metrics: OperatorMetrics;
  readonly recorder: EventRecorder;
  readonly clusters: ResilientInformer<ClusterObject & k8s.KubernetesObject>;
  readonly backendUrl: string;
  readonly workRoot: string;
  readonly engineEnv: Record<string, string>;
  readonly secretsProvider?: string;
  /** Most Machine engine operations at once (`--concurrency`). */
  readonly concurrency: number;
  /** Machine reconciles at once (`--machine-workers`); default 4 × concurrency. Probes, health and status need no engine slot. */
  readonly machineWorkers?: number;
  readonly resyncMs: number;
  readonly workerDefaults?: WorkerDefaults;
  readonly probeIntervalMs?: number;
  readonly healthCheckMs?: number;
  readonly remediation?: RemediationPolicy;
  /** Every Secret value read is added here, so that Events, status and logs never show it. */
  readonly knownSecrets: KnownSecrets;
  /** Where the HostProbe puts a run's credentials (credentials-dir.ts); default `$KOK_SSH_DIR`. */
  readonly credentialsDir?: string;
  /** The admin policy (admin-policy.ts); default the built-in one. */
  readonly policy?: ResolvedAdminPolicy;
  readonly log: (line: Record<string, unknown>) => void;
  readonly brief: (err: unknown) => string;
}

export interface Fleet {
  readonly machines: ResilientInformer<MachineObject & k8s.KubernetesObject>;
  readonly packageVersions: ResilientInformer<PackageVersionObject & k8s.KubernetesObject>;
  readonly runner: StackRunner;
  readonly reconciler: MachineReconciler;
  stop(): Promise<void>;
}

const objectKey = (o: { metadata: { namespace: string; name: string } }) => `${o.metadata.namespace}/${o.metadata.name}`;

function informerOf<T extends k8s.KubernetesObject>(o: FleetOptions, api: k8s.CustomObjectsApi, res: { group: string; version: string; plural: string }) {
  const prefix = `/apis/${res.group}/${res.version}`;
  return new ResilientInformer<T>({
    kubeConfig: o.kubeConfig,
    path: o.namespace ? `${prefix}/namespaces/${o.namespace}/${res.plural}` : `${prefix}/${res.plural}`,
    list: () =>
      listInPages<T>((page) => (o.namespace ? api.listNamespacedCustomObject({ ...res, ...page, namespace: o.namespace }) : api.listClusterCustomObject({ ...res, ...page })) as never),
    resyncPeriodMs: o.resyncMs,
    onError: (err, restartInMs) => o.log({ level: "warn", msg: `${res.plural} watch failed; restarting`, restartInMs, error: o.brief(err) }),
  });
}

/** Wakes on what the reconciler acts on: spec, deletion, finalizers and the catalog admission. */
function machineChanged(get: (key: string) => MachineObject | undefined) {
  const seen = new Map<string, string>();
  return (key: string, type: string) => {
    const m = get(key);
    if (type === "delete" || !m) return seen.delete(key), true;
    const fp = JSON.stringify([m.metadata.generation, Boolean(m.metadata.deletionTimestamp), m.metadata.finalizers ?? [], m.metadata.annotations?.[PACKAGES_REVISION_ANNOTATION]]);
    const changed = seen.get(key) !== fp;
    seen.set(key, fp);
    return type !== "update" || changed;
  };
}

export function registerFleet(o: FleetOptions): Fleet {
  const api = o.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const core = o.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const machines = informerOf<MachineObject & k8s.KubernetesObject>(o, api, MACHINES);
  const packageVersions = informerOf<PackageVersionObject & k8s.KubernetesObject>(o, api, PACKAGE_VERSIONS);
  const fleetMetrics = new FleetMetrics(o.metrics.registry, () => machines.list());

  const runner = new StackRunner({
    projectName: "kube-on-kube-machines",
    backendUrl: o.backendUrl,
    workRoot: path.join(o.workRoot, "machines"),
    env: o.engineEnv,
    secretsProvider: o.secretsProvider,
    maxConcurrentOperations: o.concurrency,
    onOperation: (operation, result, durationMs) => o.metrics.recordStackOperation("Machine", operation, result, durationMs),
  });
  const machineWriter = new StatusWriter<MachineStatus, MachineObject & k8s.KubernetesObject>({ api, ...MACHINES, secrets: (ns) => o.knownSecrets.for(ns) });
  const cpvWriter = new StatusWriter<ClusterPackageVersionStatus, PackageVersionObject & k8s.KubernetesObject>({ api, ...PACKAGE_VERSIONS, secrets: (ns) => o.knownSecrets.for(ns) });

  const nodes = new BusinessNodeWatches({
    onChange: (clusterKey, nodeName) => {
      const [ns, cluster] = clusterKey.split("/");
      for (const m of machines.list()) {
        if (m.metadata.namespace === ns && m.spec.clusterRef.name === cluster && (m.status?.nodeName ?? m.spec.hostname) === nodeName) o.manager.enqueue("Machine", objectKey(m));
      }
    },
    onError: (clusterKey, err, restartInMs) => o.log({ level: "warn", msg: "business cluster Node watch failed; restarting", cluster: clusterKey, restartInMs, error: o.brief(err) }),
  });

  const readSecret = async (namespace: string, name: string): Promise<Record<string, string> | undefined> => {
    try {
      const secret = await core.readNamespacedSecret({ namespace, name });
      const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
      // A tenant's values are redacted only from what concerns that tenant (known-secrets.ts); a
      // namespace without Machines or Clusters is a masters' namespace, written by our stacks.
      const tenant = machines.list().some((m) => m.metadata.namespace === namespace) || o.clusters.list().some((c) => c.metadata.namespace === namespace);
      o.knownSecrets.add(tenant ? namespace : PLATFORM_SCOPE, secretValuesOf(data));
      return data;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  };
  const namespaceLabels = namespaceLabelsReader(core);
  const patchMetadata = async (res: typeof MACHINES, object: MachineObject, metadata: Record<string, unknown>) =>
    (await api.patchNamespacedCustomObject(
      { ...res, namespace: object.metadata.namespace, name: object.metadata.name, body: { metadata: { ...metadata, resourceVersion: object.metadata.resourceVersion } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    )) as MachineObject;

  const store: MachineStore = {
    async get(namespace, name, opts) {
      if (!opts?.live) return machines.get(`${namespace}/${name}`);
      try {
        return (await api.getNamespacedCustomObject({ ...MACHINES, namespace, name })) as MachineObject;
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    },
    setFinalizers: (machine, finalizers) => patchMetadata(MACHINES, machine, { finalizers }),
    async writeStatus(machine, update) {
      await machineWriter.update(objectKey(machine), (current) => update(current.status));
    },
    machinesOfCluster: (namespace, cluster) => machines.list().filter((m) => m.metadata.namespace === namespace && m.spec.clusterRef.name === cluster),
    cluster: (namespace, name) => o.clusters.get(`${namespace}/${name}`),
    packageVersion: (namespace, name) => packageVersions.get(`${namespace}/${name}`),
    secret: readSecret,
    mastersNamespace: (cluster) => mastersNamespaceFor(cluster, namespaceLabels),
  };
  const hosts = new HostProbe({ credentialsDir: o.credentialsDir, onOperation: (op, result, durationMs) => fleetMetrics.recordSsh(op, result, durationMs) });
  const reconciler = new MachineReconciler({
    store,
    events: { record: (m, type, reason, message) => o.recorder.record(m, type, reason, message) },
    stacks: runner,
    nodes,
    hosts,
    defaults: o.workerDefaults,
    healthCheckMs: o.healthCheckMs,
    probeIntervalMs: o.probeIntervalMs,
    remediation: o.remediation,
    policy: o.policy,
    onAction: (action, result) => fleetMetrics.recordAction(action, result),
  });

  const packageVersionReconciler = new PackageVersionReconciler({
    store: {
      async getPackageVersion(namespace: string, name: string) {
        try {
          return (await api.getNamespacedCustomObject({ ...PACKAGE_VERSIONS, namespace, name })) as PackageVersionObject;
        } catch (err) {
          if ((err as { code?: number }).code === 404) return undefined;
          throw err;
        }
      },
      machinesOf: (namespace: string, name: string) => machines.list().filter((m) => m.metadata.namespace === namespace && m.spec.packageVersionRef?.name === name),
      async annotateMachine(machine: MachineObject, annotations: Record<string, string | null>) {
        await api.patchNamespacedCustomObject(
          { ...MACHINES, namespace: machine.metadata.namespace, name: machine.metadata.name, body: { metadata: { annotations } } },
          k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
        );
      },
      async writeStatus(cpv: PackageVersionObject, status: ClusterPackageVersionStatus) {
        await cpvWriter.update(objectKey(cpv), () => status);
      },
    },
    events: { record: (object: PackageVersionObject, type: "Normal" | "Warning", reason: string, message: string) => o.recorder.record(object as never, type, reason, message) },
    onRolloutProgress: (key, progress) => (progress ? fleetMetrics.recordRollout(key, progress) : fleetMetrics.forgetRollout(key)),
  });

  o.manager.register({ kind: "Machine", informer: machines, reconcile: (key) => reconciler.reconcile(key), concurrency: o.machineWorkers ?? 4 * o.concurrency, filter: machineChanged((key) => machines.get(key)) });
  o.manager.register({ kind: "ClusterPackageVersion", informer: packageVersions, reconcile: (key) => packageVersionReconciler.reconcile(key), concurrency: 1 });

  const machinesWhere = (pred: (m: MachineObject) => boolean) => machines.list().filter(pred).map(objectKey);
  // Only what a Machine uses of its Cluster wakes its Machines: not every status write or resync
  // (with thousands of Machines per Cluster that would be thousands of reconciles each time).
  const clusterSeen = new Map<string, string>();
  o.clusters.onChange((key, type) => {
    const c = o.clusters.get(key);
    const fingerprint = c ? JSON.stringify([c.status?.endpoint, c.status?.phase === "Ready", Boolean(c.metadata.deletionTimestamp)]) : "gone";
    if (clusterSeen.get(key) === fingerprint && type !== "add") return;
    if (c) clusterSeen.set(key, fingerprint);
    else clusterSeen.delete(key);
    const [ns, name] = key.split("/");
    for (const k of machinesWhere((m) => m.metadata.namespace === ns && m.spec.clusterRef.name === name)) o.manager.enqueue("Machine", k);
  });
  packageVersions.onChange((key) => {
    const [ns, name] = key.split("/");
    for (const k of machinesWhere((m) => m.metadata.namespace === ns && m.spec.packageVersionRef?.name === name)) o.manager.enqueue("Machine", k);
  });
  // Remembers each Machine's catalog so a deleted Machine, or one moved to another catalog, still
  // wakes the catalog it left.
  const catalogOf = new Map<string, string>();
  machines.onChange((key) => {
    const m = machines.get(key);
    const now = m ? packageVersionKeyOf(m) : undefined;
    const before = catalogOf.get(key);
    if (now) catalogOf.set(key, now);
    else catalogOf.delete(key);
    for (const cpvKey of new Set([now, before])) if (cpvKey) o.manager.enqueue("ClusterPackageVersion", cpvKey);
  });

  return {
    machines,
    packageVersions,
    runner,
    reconciler,
    async stop() {
      await nodes.stopAll();
    },
  };
}
