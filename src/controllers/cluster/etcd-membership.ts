/**
 * The operator's decisions about a Cluster's etcd membership (docs/operations.md, "Scaling etcd"),
 * pure: from what was observed — the members as the last membership Job listed them
 * (status.etcd.memberList), what the stack renders now (the StatefulSet's replicas, the membership
 * ConfigMap), the members' data volumes — to the one next step. Level-based: the same observation
 * gives the same step, so an operator killed at any point resumes where the cluster is.
 *
 *   observe   list the members (a Job): nothing known yet, or a learner still starting, or a
 *             member unhealthy (look again before anything else)
 *   apply     an `up` of the stack: the StatefulSet runs members 0..n-1 and the ConfigMap lists
 *             them (`existing`), n = the highest member's ordinal + 1
 *   promote   the started learner (etcd refuses one not caught up: the next reconcile asks again)
 *   remove    a member whose data volume was lost (every other member healthy), or the highest
 *             one while there are more voters than spec.etcd.replicas
 *   add       the lowest ordinal below spec.etcd.replicas that is not a member, as a learner
 *   incident  more than one member unhealthy or lost, or the only member lost: a human's call
 *   stable    spec.etcd.replicas voting members, all healthy
 *
 * Members are always the StatefulSet's Pods `<cluster>-etcd-<ordinal>`; one learner at a time
 * (etcd's default); a removal is one member at a time and `kok etcd member remove` itself refuses
 * when another voter is unhealthy, so quorum is never given away on a stale observation.
 */
import type { EtcdMemberRecord } from "../../api/v1alpha1";
import type { EtcdMembershipRender } from "../../components/etcd";
import { objectNames } from "../../components/cluster-context";

export type MembershipReason = "Stable" | "Observing" | "Scaling" | "Replacing" | "QuorumAtRisk";

export type MembershipStep =
  | { readonly kind: "observe"; readonly reason: MembershipReason; readonly message: string }
  | { readonly kind: "apply"; readonly render: EtcdMembershipRender; readonly reason: MembershipReason; readonly message: string }
  | { readonly kind: "add" | "promote" | "remove"; readonly member: string; readonly reason: MembershipReason; readonly message: string }
  | { readonly kind: "incident"; readonly reason: "QuorumAtRisk"; readonly message: string }
  | { readonly kind: "stable"; readonly reason: "Stable"; readonly message: string };

export interface MembershipInput {
  readonly cluster: string;
  /** spec.etcd.replicas. */
  readonly desired: number;
  /** status.etcd.memberList; undefined before the first observation. */
  readonly members: readonly EtcdMemberRecord[] | undefined;
  /** What the stack renders now (the live StatefulSet's replicas and the ConfigMap), if readable. */
  readonly rendered: { readonly replicas: number; readonly configMembers: number; readonly state: string } | undefined;
  /** Each member Pod's data volume uid now (PVC uid, or Pod uid for an emptyDir), by member name. */
  readonly volumes: Readonly<Record<string, string | undefined>>;
}

/** The ordinal of `<cluster>-etcd-<n>`, or undefined for a name that is not one of ours. */
export function memberOrdinal(cluster: string, name: string): number | undefined {
  const prefix = `${objectNames(cluster).etcd}-`;
  if (!name.startsWith(prefix)) return undefined;
  const rest = name.slice(prefix.length);
  return /^(0|[1-9]\d?)$/.test(rest) ? Number(rest) : undefined;
}

export const memberName = (cluster: string, ordinal: number): string => `${objectNames(cluster).etcd}-${ordinal}`;

/** What the stack should render for these members: 0..highest, joining an existing cluster. */
export function renderOf(cluster: string, members: readonly Pick<EtcdMemberRecord, "name">[]): EtcdMembershipRender {
  const highest = Math.max(-1, ...members.map((m) => memberOrdinal(cluster, m.name) ?? -1));
  return { members: highest + 1, state: "existing" };
}

/** Members whose data volume is no longer the one they were healthy on. */
export function lostMembers(members: readonly EtcdMemberRecord[], volumes: MembershipInput["volumes"]): EtcdMemberRecord[] {
  return members.filter((m) => m.volumeUid !== undefined && volumes[m.name] !== undefined && volumes[m.name] !== m.volumeUid);
}

const names = (members: readonly EtcdMemberRecord[]) => members.map((m) => m.name).join(", ");

export function nextMembershipStep(i: MembershipInput): MembershipStep {
  if (!i.members) return { kind: "observe", reason: "Observing", message: "reading the etcd membership" };
  const members = i.members;
  const render = renderOf(i.cluster, members);
  const r = i.rendered;
  if (!r || r.replicas !== render.members || r.configMembers !== render.members || r.state !== render.state) {
    const what = render.members > (r?.replicas ?? 0) ? "Scaling" : render.members < (r?.replicas ?? 0) ? "Scaling" : "Observing";
    return { kind: "apply", render, reason: what, message: `the StatefulSet and the membership ConfigMap follow the members: ${render.members} Pod(s), joining an existing cluster` };
  }
  const voters = members.filter((m) => !m.learner);
  const learner = members.find((m) => m.learner);
  const lost = lostMembers(members, i.volumes);
  const unhealthy = voters.filter((m) => !m.healthy);

  if (learner) {
    if (!learner.started) return { kind: "observe", reason: lost.length ? "Replacing" : "Scaling", message: `waiting for learner ${learner.name} to start` };
    return { kind: "promote", member: learner.name, reason: "Scaling", message: `promoting learner ${learner.name} to a voting member` };
  }
  if (lost.length) {
    const others = unhealthy.filter((m) => !lost.includes(m));
    if (lost.length > 1 || others.length > 0) {
      return { kind: "incident", reason: "QuorumAtRisk", message: `${lost.length} member(s) lost their data (${names(lost)}) and ${others.length} other(s) are unhealthy (${names(others)}): no automatic action, a quorum incident for a human` };
    }
    if (voters.length < 3) return { kind: "incident", reason: "QuorumAtRisk", message: `member ${lost[0].name} lost its data and there is no other member to copy it from: restore from a backup` };
    return { kind: "remove", member: lost[0].name, reason: "Replacing", message: `member ${lost[0].name} lost its data volume: removing it to add it back as a learner` };
  }
  if (unhealthy.length > 1) return { kind: "incident", reason: "QuorumAtRisk", message: `${unhealthy.length} members are unhealthy (${names(unhealthy)}): no automatic action, a quorum incident for a human` };
  if (unhealthy.length === 1) return { kind: "observe", reason: "Observing", message: `member ${unhealthy[0].name} is unhealthy: looking again before any change` };

  const present = new Set(members.map((m) => memberOrdinal(i.cluster, m.name)));
  for (let ordinal = 0; ordinal < i.desired; ordinal++) {
    if (!present.has(ordinal)) {
      const replacing = ordinal < render.members;
      return { kind: "add", member: memberName(i.cluster, ordinal), reason: replacing ? "Replacing" : "Scaling", message: `adding ${memberName(i.cluster, ordinal)} as a learner (${voters.length} → ${i.desired} voting members)` };
    }
  }
  if (voters.length > i.desired) {
    const highest = [...voters].sort((a, b) => (memberOrdinal(i.cluster, b.name) ?? 0) - (memberOrdinal(i.cluster, a.name) ?? 0))[0];
    return { kind: "remove", member: highest.name, reason: "Scaling", message: `removing ${highest.name} (${voters.length} → ${i.desired} voting members)` };
  }
  return { kind: "stable", reason: "Stable", message: `${voters.length} voting member(s), all healthy: ${names(voters)}` };
}

/**
 * The member list to record from a Job's observation: each member keeps its recorded volume uid
 * while its etcd ID is the same; a new ID (re-added) starts without one; a healthy voter without one
 * records the volume it runs on now.
 */
export function recordMembers(
  observed: readonly { name: string; id: string; learner: boolean; started: boolean; healthy: boolean }[],
  previous: readonly EtcdMemberRecord[] | undefined,
  volumes: MembershipInput["volumes"],
): EtcdMemberRecord[] {
  return observed.map((m) => {
    const before = previous?.find((p) => p.name === m.name && p.id === m.id);
    const volumeUid = before?.volumeUid ?? (m.started && m.healthy && !m.learner ? volumes[m.name] : undefined);
    return { name: m.name, id: m.id, learner: m.learner, started: m.started, healthy: m.healthy, ...(volumeUid ? { volumeUid } : {}) };
  });
}
