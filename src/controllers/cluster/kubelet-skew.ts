/**
 * A masters upgrade held back by its own workers: the version-skew policy lets a kubelet be at
 * most three minors older than kube-apiserver, so moving the masters to a minor that leaves a
 * Machine's kubelet further behind would strand that Node. The Cluster then waits, with
 * `Progressing=False` reason VersionSkew naming each Machine, and is looked at again on a short
 * period: upgrading those Machines (their catalog) lets it go on, without a change of the Cluster.
 *
 * The other direction (a catalog's kubelet newer than the masters) is the Machine's own gate
 * (src/controllers/machine/context.ts, kubeletSkewWait): nothing is installed there.
 */
import { kubeletSkewProblems, type ClusterObject } from "../../api/v1alpha1";

/** A Machine of the Cluster and the kubelet its host reported (status.observedVersions.kubelet). */
export interface MachineKubelet {
  readonly name: string;
  readonly kubelet?: string;
}

/** How long a held upgrade waits before it looks at the Machines again. */
export const KUBELET_SKEW_RECHECK_MS = 30_000;

/** At most this many Machines are named in the condition; the rest are counted. */
const NAMED = 5;

/**
 * Why the masters may not move to spec.kubernetesVersion yet because of these Machines' kubelets,
 * or undefined. Only an upgrade pending (status.version differs from the spec) is held: a Cluster
 * at its version is never blocked by the hosts it already serves. A kubelet not yet reported (a
 * Machine still installing) is not counted; its own gate checks it against both versions.
 */
export function upgradeHeldByKubelets(cluster: Pick<ClusterObject, "spec" | "status">, machines: readonly MachineKubelet[]): string | undefined {
  const running = cluster.status?.version;
  const target = cluster.spec.kubernetesVersion;
  if (!running || running === target) return undefined;
  const behind = machines.flatMap((m) => {
    if (!m.kubelet) return [];
    const problems = kubeletSkewProblems(m.kubelet, { target });
    return problems.length ? [`Machine ${m.name} (${problems[0]})`] : [];
  });
  if (behind.length === 0) return undefined;
  const named = behind.slice(0, NAMED).join(", ");
  const more = behind.length > NAMED ? ` and ${behind.length - NAMED} more` : "";
  return `the masters stay at ${running}: ${target} would leave ${behind.length} Machine kubelet(s) outside the version-skew policy: ${named}${more}; upgrade those Machines' packages first`;
}
