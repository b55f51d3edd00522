/**
 * Pure helpers for `status.conditions` (the metav1.Condition shape), so every reconciler writes
 * them the same way: `lastTransitionTime` moves only when the status flips, which is what lets
 * users and alerts ask "how long has this been not Ready?".
 */

export const ConditionStatus = { True: "True", False: "False", Unknown: "Unknown" } as const;
export type ConditionStatus = (typeof ConditionStatus)[keyof typeof ConditionStatus];

export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  /** CamelCase, machine-readable: why the status is what it is. */
  readonly reason: string;
  /** For humans; never a secret (status writes pass through `redact`). */
  readonly message: string;
  /** The `metadata.generation` this condition was computed from. */
  readonly observedGeneration?: number;
  /** RFC 3339, seconds precision, as the apiserver stores it. */
  readonly lastTransitionTime: string;
}

export type ConditionUpdate = Omit<Condition, "lastTransitionTime">;

/** RFC 3339 with seconds precision (metav1.Time has no fractions). */
export function formatTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * Returns a new list with `update` set: replaced in place if its type exists, appended if not.
 * `lastTransitionTime` is kept unless the status changed (or the condition is new).
 */
export function setCondition(conditions: readonly Condition[] | undefined, update: ConditionUpdate, now: number): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === update.type);
  const existing = index >= 0 ? list[index] : undefined;
  const lastTransitionTime = existing && existing.status === update.status ? existing.lastTransitionTime : formatTime(now);
  const next: Condition = { ...update, lastTransitionTime };
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

export function getCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return getCondition(conditions, type)?.status === ConditionStatus.True;
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

/** A condition as a reconciler states it: the time and generation are filled in when written. */
export type ConditionInput = Omit<Condition, "lastTransitionTime" | "observedGeneration">;

/**
 * The status patch every reconciler writes: `fields` over the stored status and each condition
 * set at `generation`. It is a function of the stored status, not of the reconciler's copy, so a
 * write applied to a newer copy (after a conflict) never puts older values back over fields this
 * change does not set.
 */
export function statusPatch<S extends { conditions?: readonly Condition[] }>(
  fields: Partial<S>,
  conditions: readonly ConditionInput[],
  generation: number | undefined,
  now: number,
): (base: S | undefined) => S {
  return (base) => {
    let list = [...(base?.conditions ?? [])];
    for (const c of conditions) list = setCondition(list, { ...c, observedGeneration: generation }, now);
    // Every S is a status with conditions; the spread of a partial over it is one again.
    return { ...(base ?? {}), ...fields, conditions: list } as unknown as S;
  };
}
