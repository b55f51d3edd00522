/**
 * When and how to repair a Machine whose node is unhealthy: a pure policy, in the manner of
 * Cluster API's MachineHealthCheck and its remediation strategy, so that every case is a unit
 * test and the Machine reconciler only carries the decision out.
 *
 * The ladder: a node NotReady (or missing) for `notReadyTimeoutMs` gets its services restarted;
 * if it is still unhealthy at the next chance (repairs are at least `minHealthyPeriodMs` apart),
 * the machine is reinstalled; after `maxRemediations` repairs of one incident the operator gives
 * up and leaves it to a person. When too many machines of a cluster are unhealthy at once, that
 * is an outage (network, apiserver, a bad rollout), not bad nodes, and repairing them all would
 * only add load: nothing is repaired ("short-circuit").
 *
 * Incidents. As Cluster API's `minHealthyPeriod`, a failure that begins `minHealthyPeriodMs` or
 * more after the last repair is a new incident: it starts again with a restart and its own count.
 * One that begins earlier (or never ended) belongs to that repair, which therefore did not help.
 * The Ready condition's transition time alone cannot say this — a restarted kubelet turns
 * Unknown into False, a new transition with no Ready in between — which is why time decides.
 */
import type { NodeView } from "./node-health";

export interface RemediationPolicy {
  /** How long a node may be NotReady (or missing) before it is repaired. Default 5 minutes. */
  readonly notReadyTimeoutMs: number;
  /** Repairs of one incident before giving up; 0 turns repair off. Default 3. */
  readonly maxRemediations: number;
  /** Least time between two repairs; also how long after a repair a new failure counts as a new incident. Default 10 minutes. */
  readonly minHealthyPeriodMs: number;
  /** More unhealthy machines than this share of the cluster's (and at least two): short-circuit. Default 0.4. */
  readonly maxUnhealthyShare: number;
}

export const DEFAULT_REMEDIATION_POLICY: RemediationPolicy = Object.freeze({
  notReadyTimeoutMs: 5 * 60_000,
  maxRemediations: 3,
  minHealthyPeriodMs: 10 * 60_000,
  maxUnhealthyShare: 0.4,
});

/**
 * What to do now. Repairs carry `remediationCount`: the value for `status.remediationCount` once
 * the repair starts (1 for the first repair of a new incident, else one more than before).
 */
export type RemediationDecision =
  | { action: "healthy" }
  | { action: "wait"; recheckAfterMs: number; reason: string }
  | {
      action: "restart-services";
      reason: string;
      remediationCount: number;
      /**
       * The Node is gone (deleted): the host's Pods belong to no Node any more. They are ended before
       * the kubelet starts again, so that it registers with a clean host: a CNI configuration left by
       * the old network Pod would make the new Node Ready at once with the old Pod range.
       */
      stopPods: boolean;
    }
  | { action: "reinstall"; reason: string; remediationCount: number }
  | { action: "short-circuit"; reason: string }
  | { action: "give-up"; reason: string };

export interface RemediationInput {
  /** The machine's Node as the business cluster reports it; undefined: no such Node. */
  readonly node: NodeView | undefined;
  /** The machine has been installed, so a Node should exist. Before that nothing is judged. */
  readonly nodeExpected: boolean;
  /** From the last host probe, if any: only used to say what is wrong. */
  readonly services?: { readonly containerd: boolean; readonly kubelet: boolean };
  readonly status: {
    readonly remediationCount?: number;
    readonly lastRemediation?: { readonly at: string; readonly reason: string; readonly result: "running" | "succeeded" | "failed" };
  };
  /**
   * The cluster's Machines that are expected to have a Node (`total`) and those of them whose
   * Node is NotReady or missing (`unhealthy`, this one included), whatever how long.
   */
  readonly cluster: { readonly unhealthy: number; readonly total: number };
  readonly now: Date;
  readonly policy: RemediationPolicy;
  /** When the machine was first seen unhealthy; used when the Node gives no time (missing, or no Ready condition). */
  readonly unhealthySince?: Date;
  /** The node's expected name (the Machine's hostname), for the reasons when the Node is missing. */
  readonly nodeName?: string;
}

export function decideRemediation(input: RemediationInput): RemediationDecision {
  const { node, policy, status } = input;
  if (!input.nodeExpected || node?.ready) return { action: "healthy" };

  const now = input.now.getTime();
  const name = `node ${node?.name ?? input.nodeName ?? "of this machine"}`;
  const since = (node?.readySince ?? input.unhealthySince)?.getTime();
  // Not knowing since when means it was just noticed: the whole timeout is still ahead.
  const start = since !== undefined && Number.isFinite(since) ? Math.min(since, now) : now;
  const what = describe(name, node, now - start, input.services);

  const last = status.lastRemediation;
  const lastAt = last ? Date.parse(last.at) : Number.NaN;
  const hasLast = Number.isFinite(lastAt);
  const sinceLast = now - lastAt;

  // A repair older than minHealthyPeriodMs still marked running was interrupted (operator restart).
  if (hasLast && last?.result === "running" && sinceLast < policy.minHealthyPeriodMs) {
    return wait(lastAt + policy.minHealthyPeriodMs - now, `${what}; a repair started ${duration(sinceLast)} ago is still running`);
  }
  if (now - start < policy.notReadyTimeoutMs) {
    return wait(start + policy.notReadyTimeoutMs - now, `${what}; it is repaired once unhealthy for ${duration(policy.notReadyTimeoutMs)}`);
  }

  const related = hasLast && start < lastAt + policy.minHealthyPeriodMs;
  const count = related ? Math.max(0, status.remediationCount ?? 0) : 0;
  const unhealthy = Math.max(1, input.cluster.unhealthy);
  const total = Math.max(unhealthy, input.cluster.total);
  // One unhealthy machine is always repaired: alone it cannot be told from a bad node, and one
  // repair cannot overload anything. So a one-machine cluster is repaired too.
  if (unhealthy > 1 && unhealthy / total > policy.maxUnhealthyShare) {
    return {
      action: "short-circuit",
      reason: `${what}, but ${unhealthy} of ${total} machines of the cluster are unhealthy (more than ${percent(policy.maxUnhealthyShare)}): that looks like an outage rather than a bad node, so nothing is repaired until fewer are`,
    };
  }
  if (count >= policy.maxRemediations) {
    const why = policy.maxRemediations === 0 ? "automatic repair is off (maxRemediations is 0)" : `${count} repairs did not bring it back (the limit is ${policy.maxRemediations})`;
    return { action: "give-up", reason: `${what}, and ${why}; it needs a person: check the host, then reset status.remediationCount or replace the machine` };
  }
  if (hasLast && sinceLast < policy.minHealthyPeriodMs) {
    return wait(lastAt + policy.minHealthyPeriodMs - now, `${what}; the last repair was ${duration(sinceLast)} ago and repairs are at least ${duration(policy.minHealthyPeriodMs)} apart`);
  }
  const remediationCount = count + 1;
  const attempt = `repair ${remediationCount} of ${policy.maxRemediations}`;
  if (related) {
    return {
      action: "reinstall",
      reason: `${what}, and the repair ${duration(sinceLast)} ago (${last!.result}) did not help: reinstalling the machine (${attempt})`,
      remediationCount,
    };
  }
  const stopPods = node === undefined;
  const restarting = stopPods ? "ending its Pods' containers and restarting containerd and the kubelet" : "restarting containerd and the kubelet";
  return { action: "restart-services", reason: `${what}: ${restarting} (${attempt})`, remediationCount, stopPods };
}

function describe(name: string, node: NodeView | undefined, elapsedMs: number, services: RemediationInput["services"]): string {
  let text: string;
  if (!node) text = `${name} has been missing from the business cluster for ${duration(elapsedMs)}`;
  else if (!node.readySince && !node.reason) text = `${name} has reported no Ready condition for ${duration(elapsedMs)}`;
  else text = `${name} has been NotReady${node.reason ? ` (${node.reason})` : ""} for ${duration(elapsedMs)}`;
  const stopped = services ? (["containerd", "kubelet"] as const).filter((s) => !services[s]) : [];
  if (stopped.length) text += `; ${stopped.join(" and ")} ${stopped.length > 1 ? "are" : "is"} not running on the host`;
  return text;
}

function wait(ms: number, reason: string): RemediationDecision {
  // At least 1 ms, so a caller never requeues for "now" in a loop.
  return { action: "wait", recheckAfterMs: Math.max(1, Math.ceil(ms)), reason };
}

function percent(share: number): string {
  return `${Math.round(share * 1000) / 10}%`;
}

/** Go-style durations for people: 450ms, 45s, 4m30s, 1h5m. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const total = Math.round(ms / 1000);
  const [h, m, s] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s || (!h && !m) ? `${s}s` : ""}`;
}

const POLICY_FIELDS: Record<keyof RemediationPolicy, { check: (v: number) => boolean; must: string }> = {
  notReadyTimeoutMs: { check: (v) => v > 0, must: "a positive number of milliseconds" },
  maxRemediations: { check: (v) => Number.isInteger(v) && v >= 0, must: "a whole number, 0 or more (0 turns repair off)" },
  minHealthyPeriodMs: { check: (v) => v >= 0, must: "a number of milliseconds, 0 or more" },
  maxUnhealthyShare: { check: (v) => v >= 0 && v <= 1, must: "a share between 0 and 1 (0.4 = 40%)" },
};

/** Every problem of a (partial) policy, each naming its field; empty when it is usable. */
export function validateRemediationPolicy(p: Partial<RemediationPolicy>): string[] {
  const problems: string[] = [];
  for (const [field, rule] of Object.entries(POLICY_FIELDS)) {
    const value: unknown = (p as Record<string, unknown>)[field];
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isFinite(value) || !rule.check(value)) problems.push(`${field}: must be ${rule.must}, got ${JSON.stringify(value)}`);
  }
  for (const field of Object.keys(p)) {
    if (!(field in POLICY_FIELDS)) problems.push(`${field}: unknown field; the policy has ${Object.keys(POLICY_FIELDS).join(", ")}`);
  }
  return problems;
}

/** The defaults overridden by `p`; throws one error listing every problem. */
export function remediationPolicy(p: Partial<RemediationPolicy> = {}): RemediationPolicy {
  const problems = validateRemediationPolicy(p);
  if (problems.length) throw new Error(`invalid remediation policy: ${problems.join("; ")}`);
  const defined = Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
  return { ...DEFAULT_REMEDIATION_POLICY, ...defined };
}
