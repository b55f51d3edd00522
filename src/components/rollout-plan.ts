/**
 * The gray-release batch planner: which machines of a pool are updated together, in which order.
 * Pure and deterministic (the same pool in any order gives the same plan), so NodePool can turn
 * the batches into dependsOn chains and a preview shows the same plan every time.
 */
import { parseIntOrPercent, selectorMatches, type IntOrPercent, type RolloutSpec } from "../api/v1alpha1";

export interface PlannedMachine {
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface RolloutBatch {
  /** 0-based position in the plan. */
  readonly index: number;
  /** `canary` for the first batch when the rollout names canaries. */
  readonly kind: "canary" | "batch";
  /** Machine names, sorted. */
  readonly machines: readonly string[];
}

/** How many machines one batch may take out of service: a count, or a percentage of the pool rounded down (at least 1). */
export function resolveMaxUnavailable(value: IntOrPercent | undefined, poolSize: number): number {
  const parsed = parseIntOrPercent(value ?? 1);
  if (!parsed || parsed.value < 1) throw new Error(`maxUnavailable ${JSON.stringify(value)} must be at least 1 or 1%`);
  if (parsed.kind === "count") return parsed.value;
  return Math.max(1, Math.floor((parsed.value * poolSize) / 100));
}

const byName = (a: PlannedMachine, b: PlannedMachine) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * The batches of a rollout: the canary batch first (machines matching `canary.selector`, at most
 * `canary.count` of them; or the first `count` machines by name without a selector), then the
 * rest by name in batches of `maxUnavailable`.
 */
export function planRollout(machines: readonly PlannedMachine[], rollout: RolloutSpec = {}): RolloutBatch[] {
  const names = new Set<string>();
  for (const m of machines) {
    if (names.has(m.name)) throw new Error(`machine "${m.name}" appears twice in the pool`);
    names.add(m.name);
  }
  const sorted = [...machines].sort(byName);
  const canary = rollout.canary;
  let canaries: PlannedMachine[] = [];
  if (canary) {
    const candidates = canary.selector ? sorted.filter((m) => selectorMatches(canary.selector, m.labels)) : sorted;
    const limit = canary.count ?? (canary.selector ? candidates.length : 0);
    canaries = candidates.slice(0, limit);
  }
  const batches: RolloutBatch[] = [];
  if (canaries.length > 0) batches.push({ index: 0, kind: "canary", machines: canaries.map((m) => m.name) });
  const inCanary = new Set(canaries.map((m) => m.name));
  const rest = sorted.filter((m) => !inCanary.has(m.name));
  const size = resolveMaxUnavailable(rollout.maxUnavailable, machines.length);
  for (let i = 0; i < rest.length; i += size) {
    batches.push({ index: batches.length, kind: "batch", machines: rest.slice(i, i + size).map((m) => m.name) });
  }
  return batches;
}
