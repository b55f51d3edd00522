/**
 * The Machine kind: worker hosts installed, checked and repaired over SSH, one stack each in the
 * project `kube-on-kube-machines`. A Machine is woken by
 * - its own spec, deletion, finalizers and catalog admission (the revision annotation), and resyncs;
 * - its Cluster turning Ready, changing endpoint, changing status.certificates (a CA rotation) or
 *   being deleted (not every Cluster status write: with thousands of Machines per Cluster that
 *   would be thousands of reconciles each time);
 * - any change of the catalog (ClusterPackageVersion) it installs;
 * - a change of its Node in the business cluster (a watch per business cluster, node-health.ts).
 */
import * as path from "node:path";
import { legacyStackNameOf, stackNameOf, type ClusterObject, type MachineObject, type MachineStatus, type PackageVersionObject } from "../../api/v1alpha1";
import { HostProbe } from "../../host/host-probe";
import { PLATFORM_SCOPE, secretValuesOf } from "../../runtime/known-secrets";
import { watch } from "../../runtime/manager";
import { CustomObjectStore } from "../../runtime/object-store";
import { annotationChanged, changed, or, specOrLifecycleChanged } from "../../runtime/predicates";
import type { EngineFence } from "../../runtime/fencing";
import { recoveryLogLine, type StackRecoveries } from "../../runtime/recovery";
import { killedEngineLogLine } from "../../runtime/killed-engine";
import { pruneLogLine } from "../../runtime/holder-pruning";
import { StackRunner } from "../../runtime/stack-runner";
import type { WorkerDefaults } from "../../program/machine-program";
import { mastersNamespaceFor, namespaceLabelsReader } from "../cluster/masters-namespace";
import { MACHINES, type Cached, type ControllerContext, type Registered } from "../context";
import { PACKAGES_REVISION_ANNOTATION } from "../packageversion/revision";
import type { FleetMetrics } from "./metrics";
import { BusinessNodeWatches } from "./node-health";
import { clusterCertificatesMark } from "./certificate-care";
import { MachineReconciler, type MachineStore } from "./reconciler";
import type { RemediationPolicy } from "./remediation";
import { isNotFound } from "../../runtime/api-errors";

export interface MachineControllerOptions {
  /** The replica's engine fence (fencing.ts): the stacks' operations run only while it leads. */
  readonly fence?: EngineFence;
  readonly fleetMetrics: FleetMetrics;
  /** Reconciles at once (`--machine-workers`); default 4 × concurrency. Probes, health and status need no engine slot. */
  readonly workers?: number;
  readonly workerDefaults?: WorkerDefaults;
  readonly probeIntervalMs?: number;
  readonly healthCheckMs?: number;
  readonly remediation?: RemediationPolicy;
  /** Where the HostProbe puts a run's credentials (credentials-dir.ts); default `$KOK_SSH_DIR`. */
  readonly credentialsDir?: string;
}

const keyOf = (o: { metadata: { namespace: string; name: string } }) => `${o.metadata.namespace}/${o.metadata.name}`;

/** What a Machine uses of its Cluster: only these changing wakes the Cluster's Machines. */
export const clusterChangedForMachines = changed<Cached<ClusterObject>>((c) => [
  c.status?.endpoint,
  c.status?.phase === "Ready",
  Boolean(c.metadata.deletionTimestamp),
  // A CA rotation moving on (rare): each Machine compares its certificates with the CA Secret (certificate-care.ts).
  clusterCertificatesMark(c),
]);

/** What the Machine reconciler acts on: spec, lifecycle, the catalog's admission of this Machine. */
export const machineChanged = or(specOrLifecycleChanged, annotationChanged(PACKAGES_REVISION_ANNOTATION));

export function registerMachineController(ctx: ControllerContext, o: MachineControllerOptions): Registered & StackRecoveries {
  const { informers } = ctx;
  const machines = informers.machines;
  const runner = new StackRunner({
    projectName: "kube-on-kube-machines",
    backendUrl: ctx.backendUrl,
    workRoot: path.join(ctx.workRoot, "machines"),
    env: ctx.engineEnv,
    secretsProvider: ctx.secretsProvider,
    maxConcurrentOperations: ctx.concurrency,
    fence: o.fence,
    onKilledEngine: (cleanup) => ctx.log(killedEngineLogLine(cleanup)),
    onOperation: (operation, result, durationMs) => ctx.metrics.recordStackOperation("Machine", operation, result, durationMs),
  });
  const objects = new CustomObjectStore<Cached<MachineObject>, MachineStatus>({ api: ctx.customObjects, resource: MACHINES, informer: machines, secrets: (ns) => ctx.knownSecrets.for(ns) });
  const machinesWhere = (pred: (m: MachineObject) => boolean) => machines.list().filter(pred);

  const nodes = new BusinessNodeWatches({
    onChange: (clusterKey, nodeName) => {
      const [ns, cluster] = clusterKey.split("/");
      for (const m of machinesWhere((m) => m.metadata.namespace === ns && m.spec.clusterRef.name === cluster && (m.status?.nodeName ?? m.spec.hostname) === nodeName)) {
        ctx.manager.enqueue("Machine", keyOf(m));
      }
    },
    onError: (clusterKey, err, restartInMs) => ctx.log({ level: "warn", msg: "business cluster Node watch failed; restarting", cluster: clusterKey, restartInMs, error: ctx.brief(err) }),
  });

  const readSecret = async (namespace: string, name: string): Promise<Record<string, string> | undefined> => {
    try {
      const secret = await ctx.core.readNamespacedSecret({ namespace, name });
      const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
      // A tenant's values are redacted only from what concerns that tenant (known-secrets.ts); a
      // namespace without Machines or Clusters is a masters' namespace, written by our stacks.
      const tenant = machines.list().some((m) => m.metadata.namespace === namespace) || informers.clusters.list().some((c) => c.metadata.namespace === namespace);
      ctx.knownSecrets.add(tenant ? namespace : PLATFORM_SCOPE, secretValuesOf(data));
      return data;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  const namespaceLabels = namespaceLabelsReader(ctx.core);
  const store: MachineStore = {
    get: async (namespace, name) => objects.get(namespace, name),
    getLive: (namespace, name) => objects.getLive(namespace, name),
    setFinalizers: (machine, finalizers) => objects.setFinalizers(machine as Cached<MachineObject>, finalizers),
    writeStatus: (machine, compute) => objects.writeStatus(machine as Cached<MachineObject>, compute),
    machinesOfCluster: (namespace, cluster) => machinesWhere((m) => m.metadata.namespace === namespace && m.spec.clusterRef.name === cluster),
    cluster: (namespace, name) => informers.clusters.get(`${namespace}/${name}`),
    packageVersion: (namespace, name) => informers.packageVersions.get(`${namespace}/${name}`),
    secret: readSecret,
    mastersNamespace: (cluster) => mastersNamespaceFor(cluster, namespaceLabels),
  };
  const hosts = new HostProbe({ credentialsDir: o.credentialsDir, onOperation: (op, result, durationMs) => o.fleetMetrics.recordSsh(op, result, durationMs) });
  const reconciler = new MachineReconciler({
    store,
    events: { record: (m, type, reason, message) => ctx.recorder.record(m, type, reason, message) },
    stacks: runner,
    nodes,
    hosts,
    defaults: o.workerDefaults,
    healthCheckMs: o.healthCheckMs,
    probeIntervalMs: o.probeIntervalMs,
    remediation: o.remediation,
    policy: ctx.policy,
    onAction: (action, result) => o.fleetMetrics.recordAction(action, result),
  });

  ctx.manager.register({
    kind: "Machine",
    informer: machines,
    reconcile: (key) => reconciler.reconcile(key),
    concurrency: o.workers ?? 4 * ctx.concurrency,
    predicate: machineChanged,
    watches: [
      watch<Cached<ClusterObject>>({
        informer: informers.clusters,
        predicate: clusterChangedForMachines,
        map: ({ key }) => machinesOfClusterKey(machines.list(), key),
      }),
      watch<Cached<PackageVersionObject>>({
        informer: informers.packageVersions,
        map: ({ key }) => machinesOfCatalogKey(machines.list(), key),
      }),
    ],
  });

  return {
    // Only Machines whose status says an update was running, or whose stacks hold a holder record
    // (an update cut short before its status said so), can hold a lock or pending operations: a
    // fleet of thousands is not a thousand engine calls at every failover.
    recoveries: async (term) => {
      const held = await runner.heldStacks();
      return machines
        .list()
        .filter((m) => m.status?.lastOperation?.result === "running" || [stackNameOf(m), legacyStackNameOf(m)].some((s) => held.has(s)))
        .map((machine) => ({
          kind: "Machine",
          key: keyOf(machine),
          run: async (termEnded) => {
            for (const stack of [stackNameOf(machine), legacyStackNameOf(machine)]) {
              if (termEnded.aborted) return;
              ctx.log(recoveryLogLine(stack, await runner.recover(stack, async () => ({}), term)));
            }
          },
        }));
    },
    // The stacks a Machine may name: its own and its legacy one (until the rename), as recovered above.
    pruneHolders: async (term, termEnded) => {
      const inUse = (stack: string) => machines.list().some((m) => stackNameOf(m) === stack || legacyStackNameOf(m) === stack);
      for (const outcome of await runner.pruneHolderRecords(inUse, term, termEnded)) ctx.log(pruneLogLine(outcome));
    },
    stop: () => nodes.stopAll(),
  };
}

/** Keys of the Machines of the Cluster `namespace/name`. */
export function machinesOfClusterKey(machines: readonly MachineObject[], clusterKey: string): string[] {
  const [ns, name] = clusterKey.split("/");
  return machines.filter((m) => m.metadata.namespace === ns && m.spec.clusterRef.name === name).map(keyOf);
}

/** Keys of the Machines that install the catalog `namespace/name`. */
export function machinesOfCatalogKey(machines: readonly MachineObject[], catalogKey: string): string[] {
  const [ns, name] = catalogKey.split("/");
  return machines.filter((m) => m.metadata.namespace === ns && m.spec.packageVersionRef?.name === name).map(keyOf);
}

