/**
 * What every kind's registration receives from the composition root (src/operator/operator.ts):
 * the meta-cluster connection, the manager to register with, the shared informers (each kind's
 * own, and the others' for declared watches), and the operator's settings. A fourth kind adds
 * its informer here and one `register.ts` beside its reconciler.
 */
import * as k8s from "@kubernetes/client-node";
import { API_GROUP, API_VERSION, type ClusterObject, type MachineObject, type PackageVersionObject, type ResolvedAdminPolicy } from "../api/v1alpha1";
import type { EventRecorder } from "../runtime/events";
import { listInPages, ResilientInformer } from "../runtime/informer";
import type { KnownSecrets } from "../runtime/known-secrets";
import type { Term } from "../runtime/leader-election";
import type { Manager } from "../runtime/manager";
import type { OperatorMetrics } from "../runtime/metrics";
import type { CustomResource } from "../runtime/object-store";
import type { StackRecoveries } from "../runtime/recovery";

export const CLUSTERS = { group: API_GROUP, version: API_VERSION, plural: "clusters" } as const satisfies CustomResource;
export const MACHINES = { group: API_GROUP, version: API_VERSION, plural: "machines" } as const satisfies CustomResource;
export const PACKAGE_VERSIONS = { group: API_GROUP, version: API_VERSION, plural: "clusterpackageversions" } as const satisfies CustomResource;

export type Cached<T> = T & k8s.KubernetesObject;

/** One informer per kind, shared: a kind's own and every watch of it read the same cache. */
export interface KindInformers {
  readonly clusters: ResilientInformer<Cached<ClusterObject>>;
  readonly machines: ResilientInformer<Cached<MachineObject>>;
  readonly packageVersions: ResilientInformer<Cached<PackageVersionObject>>;
}

export type LogLine = Record<string, unknown>;

export interface ControllerContext {
  readonly kubeConfig: k8s.KubeConfig;
  readonly customObjects: k8s.CustomObjectsApi;
  readonly core: k8s.CoreV1Api;
  readonly manager: Manager;
  readonly informers: KindInformers;
  readonly metrics: OperatorMetrics;
  readonly recorder: EventRecorder;
  /** Every Secret value read is added here, so that Events, status and logs never show it. */
  readonly knownSecrets: KnownSecrets;
  readonly log: (line: LogLine) => void;
  /** client-node errors carry the whole HTTP exchange: their gist for logs. */
  readonly brief: (err: unknown) => string;
  readonly backendUrl: string;
  /** Per-stack work directories live under `<workRoot>/<project>`. */
  readonly workRoot: string;
  /** Environment of the engine: PATH with the CLI, PULUMI_HOME, the passphrase, the SSH directory. */
  readonly engineEnv: Record<string, string>;
  readonly secretsProvider?: string;
  /** Most engine operations at once, per stack project (`--concurrency`). */
  readonly concurrency: number;
  /** The admin policy (admin-policy.ts); default the built-in one. */
  readonly policy?: ResolvedAdminPolicy;
}

/** What a registration hands back to the composition root. */
export interface Registered {
  /**
   * Crash-safety at the start of a leadership term, one recovery per object (runtime/recovery.ts):
   * clear what a killed predecessor left on its stacks before the object is reconciled.
   */
  recoveries?: StackRecoveries["recoveries"];
  /**
   * Once per term, after the recoveries' first pass: removes the holder records of stacks that
   * no object names and the backend no longer has (runtime/holder-pruning.ts), and logs each.
   */
  pruneHolders?(term: Term | undefined, termEnded: AbortSignal): Promise<void>;
  /** Releases what the registration holds beyond the manager (watches of business clusters). */
  stop?(): Promise<void>;
}

/** The informer of one custom resource, all namespaces or one, resynced every `resyncMs`. */
export function customObjectInformer<T extends k8s.KubernetesObject>(
  o: { kubeConfig: k8s.KubeConfig; customObjects: k8s.CustomObjectsApi; namespace?: string; resyncMs: number; log: (line: LogLine) => void; brief: (err: unknown) => string },
  res: CustomResource,
): ResilientInformer<T> {
  const prefix = `/apis/${res.group}/${res.version}`;
  const api = o.customObjects;
  return new ResilientInformer<T>({
    kubeConfig: o.kubeConfig,
    path: o.namespace ? `${prefix}/namespaces/${o.namespace}/${res.plural}` : `${prefix}/${res.plural}`,
    list: () =>
      listInPages<T>((page) => (o.namespace ? api.listNamespacedCustomObject({ ...res, ...page, namespace: o.namespace }) : api.listClusterCustomObject({ ...res, ...page })) as never),
    resyncPeriodMs: o.resyncMs,
    onError: (err, restartInMs) => o.log({ level: "warn", msg: `${res.plural} watch failed; restarting`, restartInMs, error: o.brief(err) }),
  });
}
