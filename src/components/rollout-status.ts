/**
 * Whether a Deployment's or StatefulSet's rollout has finished, decided from the objects as the
 * meta-cluster's API returns them (plain JSON or @kubernetes/client-node models alike). Pure, so
 * the RolloutGate's provider can carry it (it is serialized into the state) and tests can feed
 * it recorded objects.
 *
 * "Finished" is stricter than `kubectl rollout status` and than pulumi-kubernetes' await: the
 * controller has observed the latest generation, every wanted replica runs the new template and
 * is available, and no Pod of an older revision is left at all, not even one still terminating.
 * The version-skew policy needs the last part: an old kube-apiserver keeps answering the
 * connections it holds while it shuts down.
 */

/** The annotation by which a Deployment and its ReplicaSets name their revision. */
export const DEPLOYMENT_REVISION_ANNOTATION = "deployment.kubernetes.io/revision";

export interface ObjectMeta {
  readonly name?: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly generation?: number;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly deletionTimestamp?: unknown;
  readonly ownerReferences?: readonly { readonly uid?: string; readonly controller?: boolean }[];
}

export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly { readonly key: string; readonly operator: string; readonly values?: readonly string[] }[];
}

export interface WorkloadObject {
  readonly metadata?: ObjectMeta;
  readonly spec?: { readonly replicas?: number; readonly selector?: LabelSelector };
  readonly status?: {
    readonly observedGeneration?: number;
    readonly replicas?: number;
    readonly updatedReplicas?: number;
    readonly readyReplicas?: number;
    readonly availableReplicas?: number;
    readonly currentRevision?: string;
    readonly updateRevision?: string;
    readonly conditions?: readonly { readonly type?: string; readonly status?: string; readonly reason?: string }[];
  };
}

export interface PodObject {
  readonly metadata?: ObjectMeta;
}

export interface ReplicaSetObject {
  readonly metadata?: ObjectMeta;
}

export interface RolloutVerdict {
  readonly done: boolean;
  /** What is still missing, in a few words; empty when done. */
  readonly waitingFor: string;
}

/** The selector in the `labelSelector` query form the list calls take. */
export function labelSelectorQuery(selector: LabelSelector | undefined): string {
  const terms = Object.entries(selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector?.matchExpressions ?? []) {
    const values = (e.values ?? []).join(",");
    if (e.operator === "In") terms.push(`${e.key} in (${values})`);
    else if (e.operator === "NotIn") terms.push(`${e.key} notin (${values})`);
    else if (e.operator === "Exists") terms.push(e.key);
    else if (e.operator === "DoesNotExist") terms.push(`!${e.key}`);
    else throw new Error(`label selector operator "${e.operator}" of key "${e.key}" is not one of In, NotIn, Exists, DoesNotExist`);
  }
  return terms.join(",");
}

const MAX_PODS_NAMED = 3;

/** "2 Pods of an older revision to go (a, b Terminating)", or "" when there are none. */
function oldPodsLeft(pods: readonly PodObject[], isOld: (pod: PodObject) => boolean): string {
  const old = pods.filter(isOld);
  if (old.length === 0) return "";
  const named = old
    .slice(0, MAX_PODS_NAMED)
    .map((p) => `${p.metadata?.name ?? "?"}${p.metadata?.deletionTimestamp ? " Terminating" : ""}`)
    .join(", ");
  const more = old.length > MAX_PODS_NAMED ? `, ${old.length - MAX_PODS_NAMED} more` : "";
  return `${old.length} Pod${old.length === 1 ? "" : "s"} of an older revision to go (${named}${more})`;
}

/** Counts that must all equal the wanted replicas, as "1/2 updated" for those that do not. */
function replicaShortfalls(want: number, counts: Record<string, number | undefined>): string[] {
  return Object.entries(counts)
    .filter(([, n]) => (n ?? 0) !== want)
    .map(([what, n]) => `${n ?? 0}/${want} ${what}`);
}

function verdict(missing: string[]): RolloutVerdict {
  return { done: missing.length === 0, waitingFor: missing.join(", ") };
}

function unobservedGeneration(workload: WorkloadObject): string | undefined {
  const generation = workload.metadata?.generation ?? 0;
  const observed = workload.status?.observedGeneration ?? 0;
  return observed < generation ? `the controller to observe generation ${generation} (observed ${observed})` : undefined;
}

/**
 * A Deployment has rolled out when its controller observed the latest spec, `replicas` Pods run
 * the current ReplicaSet's template and are available, and every Pod its selector matches
 * belongs to that ReplicaSet (`pod-template-hash`), terminating ones included.
 */
export function deploymentRollout(deployment: WorkloadObject, replicaSets: readonly ReplicaSetObject[], pods: readonly PodObject[]): RolloutVerdict {
  const unobserved = unobservedGeneration(deployment);
  if (unobserved) return verdict([unobserved]);
  const want = deployment.spec?.replicas ?? 1;
  const status = deployment.status ?? {};
  const missing = replicaShortfalls(want, { updated: status.updatedReplicas, available: status.availableReplicas, "counted in total": status.replicas });
  const stalled = status.conditions?.find((c) => c.type === "Progressing" && c.status === "False");
  if (stalled) missing.push(`progress (Progressing=False: ${stalled.reason ?? "no reason given"})`);

  const revision = deployment.metadata?.annotations?.[DEPLOYMENT_REVISION_ANNOTATION];
  const uid = deployment.metadata?.uid;
  const current = replicaSets.find(
    (rs) =>
      rs.metadata?.annotations?.[DEPLOYMENT_REVISION_ANNOTATION] === revision &&
      (uid === undefined || (rs.metadata?.ownerReferences ?? []).some((o) => o.controller && o.uid === uid)),
  );
  const hash = current?.metadata?.labels?.["pod-template-hash"];
  if (revision === undefined || hash === undefined) {
    missing.push(`its ReplicaSet of revision ${revision ?? "(none yet)"}`);
    return verdict(missing);
  }
  const old = oldPodsLeft(pods, (p) => p.metadata?.labels?.["pod-template-hash"] !== hash);
  if (old) missing.push(old);
  return verdict(missing);
}

/**
 * A StatefulSet (RollingUpdate, no partition) has rolled out when its controller observed the
 * latest spec, the current revision is the update revision, `replicas` Pods are updated, ready and
 * available, and every Pod its selector matches carries the update revision
 * (`controller-revision-hash`), terminating ones included.
 */
export function statefulSetRollout(statefulSet: WorkloadObject, pods: readonly PodObject[]): RolloutVerdict {
  const unobserved = unobservedGeneration(statefulSet);
  if (unobserved) return verdict([unobserved]);
  const want = statefulSet.spec?.replicas ?? 1;
  const status = statefulSet.status ?? {};
  const missing = replicaShortfalls(want, {
    updated: status.updatedReplicas,
    ready: status.readyReplicas,
    // Reported since Kubernetes 1.22 (beta) / 1.25; when absent, `ready` has to do.
    available: status.availableReplicas ?? status.readyReplicas,
    "counted in total": status.replicas,
  });
  const update = status.updateRevision;
  if (!update) {
    missing.push("the controller to compute its update revision");
    return verdict(missing);
  }
  if (status.currentRevision !== update) missing.push(`current revision ${status.currentRevision ?? "(none)"} to become ${update}`);
  const old = oldPodsLeft(pods, (p) => p.metadata?.labels?.["controller-revision-hash"] !== update);
  if (old) missing.push(old);
  return verdict(missing);
}
