/**
 * Which backups to delete after a new one was uploaded: a pure decision over the bucket's
 * listing, so every rule is unit-tested without a store.
 *
 * - The newest `count` complete backups (snapshot and sidecar both present) are kept...
 * - ...except those older than `maxAge` (measured from the new backup's time): age wins, so a
 *   cluster whose schedule was slowed does not keep month-old snapshots because there are few.
 * - The backup just taken is never deleted, whatever the rules say (a clock set back would make
 *   it look old; `count` is at least 1 anyway).
 * - A half-written backup (only one of its two objects: an upload cut short) is not counted and
 *   is deleted only once older than `maxAge`: it may be a run still uploading (an on-demand Job
 *   runs beside the scheduled one), and nothing restores from it.
 * - Backups newer than the one just taken are never touched (another run's, or a skewed clock).
 */
import type { StoredBackup } from "./keys";

export interface RetentionPolicy {
  /** Complete backups kept, newest first; at least 1. */
  readonly count: number;
  /** Backups older than this (ms before the new backup's time) go, whatever the count. */
  readonly maxAgeMs: number;
}

/** The keys to delete, each backup's sidecar before its snapshot (a lone snapshot is restorable by hand; a lone sidecar points at nothing). */
export function keysToPrune(backups: readonly StoredBackup[], justTaken: Date, policy: RetentionPolicy): string[] {
  if (!Number.isInteger(policy.count) || policy.count < 1) throw new Error(`retention count ${policy.count}: want an integer of at least 1`);
  if (!(policy.maxAgeMs > 0)) throw new Error(`retention maxAge ${policy.maxAgeMs} ms: want more than 0`);
  const taken = justTaken.getTime();
  const oldest = taken - policy.maxAgeMs;
  const doomed: StoredBackup[] = [];
  // The new one counts as kept whether or not the listing shows it yet.
  let kept = 1;
  for (const backup of [...backups].sort((a, b) => b.time.getTime() - a.time.getTime())) {
    const time = backup.time.getTime();
    if (time >= taken) continue;
    const complete = Boolean(backup.snapshot && backup.sidecar);
    if (time < oldest) doomed.push(backup);
    else if (complete && kept < policy.count) kept++;
    else if (complete) doomed.push(backup);
  }
  return doomed.flatMap((b) => [b.sidecar, b.snapshot].filter((k): k is string => k !== undefined));
}
