/**
 * Predicates decide which informer changes wake a reconciler. Each sees the change's type and the
 * object before and after it, as controller-runtime's `pkg/predicate` does, so no filter keeps a
 * "last seen" map of its own: the informer remembers what it reported last (informer.ts).
 *
 * Conventions, shared by every predicate here:
 * - `add` and `delete` always pass: a new object needs a first look, a gone one its clean-up.
 * - `update` passes when the property the predicate names differs between old and new.
 * - `resync` (the informer re-reporting every cached object) carries the same object as old and
 *   new, so comparing predicates reject it; registrations that use resyncs for drift checks say
 *   so with `isResync`.
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import type { ChangeType } from "./informer";

/** One reported change. `old` is absent for `add`; `new` is absent for `delete`. */
export interface ObjectChange<T extends KubernetesObject = KubernetesObject> {
  readonly key: string;
  readonly type: ChangeType;
  readonly old?: T;
  readonly new?: T;
}

export type Predicate<T extends KubernetesObject = KubernetesObject> = (change: ObjectChange<T>) => boolean;

/** JSON with sorted object keys: equal values compare equal whatever their key order. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
}

/**
 * Passes adds, deletes and updates where `select(old)` and `select(new)` differ (compared as
 * stable JSON). The building block of every predicate below.
 */
export function changed<T extends KubernetesObject>(select: (obj: T) => unknown): Predicate<T> {
  return (c) => {
    if (c.type === "add" || c.type === "delete") return true;
    if (c.type === "resync" || !c.old || !c.new) return false;
    return stableJson(select(c.old)) !== stableJson(select(c.new));
  };
}

/** The informer's periodic re-report of a cached object (drift checks ride on it). */
export const isResync: Predicate = (c) => c.type === "resync";

/** `metadata.generation` moved: the spec changed (status writes leave it alone). */
export const generationChanged: Predicate = changed((o) => o.metadata?.generation);

/** Deletion began (`metadata.deletionTimestamp` set). */
export const deletionChanged: Predicate = changed((o) => Boolean(o.metadata?.deletionTimestamp));

/** `metadata.finalizers` changed (ours added or released, or someone else's). */
export const finalizersChanged: Predicate = changed((o) => o.metadata?.finalizers ?? []);

/** One annotation's value changed, or with no name any annotation. */
export function annotationChanged(name?: string): Predicate {
  return changed((o) => (name === undefined ? (o.metadata?.annotations ?? {}) : o.metadata?.annotations?.[name]));
}

/** One label's value changed, or with no name any label. */
export function labelChanged(name?: string): Predicate {
  return changed((o) => (name === undefined ? (o.metadata?.labels ?? {}) : o.metadata?.labels?.[name]));
}

/** Passes when any of `predicates` passes. */
export function or<T extends KubernetesObject>(...predicates: Predicate<T>[]): Predicate<T> {
  return (c) => predicates.some((p) => p(c));
}

/** Passes when every one of `predicates` passes. */
export function and<T extends KubernetesObject>(...predicates: Predicate<T>[]): Predicate<T> {
  return (c) => predicates.every((p) => p(c));
}

/**
 * What our reconcilers act on: spec (generation), deletion and finalizers, plus resyncs. Their own
 * status writes change none of these, so a failing object waits for its backoff instead of being
 * woken by the status write that recorded the failure.
 */
export const specOrLifecycleChanged: Predicate = or(isResync, generationChanged, deletionChanged, finalizersChanged);
