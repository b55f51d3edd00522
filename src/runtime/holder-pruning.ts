/**
 * Pruning of orphan holder records (fencing.ts). A record outlives its operation when the fence
 * killed it, when it ended past the last renewal's deadline, or when its removal failed (the
 * meta-cluster did not answer); the next term's recovery of the object replaces and removes it.
 * But nothing recovers a stack that no object names any more: the record of a stack whose object
 * was deleted meanwhile (its deletion's own record not removed, or a finalizer removed by hand)
 * stayed for good, a file beside the stacks or an annotation of the holders' Lease.
 *
 * The leader prunes them once per term, after the recoveries' first pass. A record goes only when
 * every one of these holds, checked under the stack's mutex (the runner's: no operation of this
 * runner on that stack starts or runs meanwhile):
 * - it is an *ended* term's (`decideLock` says "clear"): its operation is over, killed by its fence
 *   or watchdog, or dead with its replica, so no live operation can need it. A record of the
 *   current term is never touched, even though the mutex says its operation ended: one whose
 *   removal failed is the next term's to prune. That is also why pruning waits for a term's start
 *   and is not done after each deletion: what can outlive a deletion is its own operations' record,
 *   of the term that deletes;
 * - no object names the stack (its own name or its legacy one), asked again under the mutex: an
 *   object's records are its recovery's and its operations' business;
 * - the stack does not exist in the backend: a record proves a lock stale, and a stack that is not
 *   there holds no lock. A stack that still exists without an object (a finalizer removed by hand)
 *   keeps its record: an object created later under that name would meet the lock, and only the
 *   record lets a recovery clear it. It is reported, so a person can remove that stack;
 * - this replica still leads (`mayWrite`, the write gate's test), right before the removal. The
 *   Lease variant's write passes the write gate as well.
 * The removal itself is conditional (`HolderRecords.remove` with the record read): a record written
 * since then stays.
 */
import { decideLock, FencedError, type HolderRecord, type HolderRecords } from "./fencing";
import type { Term } from "./leader-election";

/** What pruning needs of a stack runner (StackRunner.pruneHolderRecords gives its own). */
export interface PrunableStacks {
  readonly project: string;
  readonly holders: HolderRecords;
  /** Runs `fn` while no other operation of the runner holds `stack`. */
  exclusive<T>(stack: string, fn: () => Promise<T>): Promise<T>;
  /** Whether the stack exists in the backend; throws when that cannot be told (then nothing is removed). */
  exists(stack: string): Promise<boolean>;
  /** Whether this replica may still write (the fence's `mayWrite`). */
  mayWrite(): boolean;
}

export interface PruneOptions {
  /** The term this replica leads: its own records are never pruned. */
  readonly term: Term | undefined;
  /** Whether an object names `stack` now (asked before and again under the stack's mutex). */
  inUse(stack: string): boolean;
  /** Stops between stacks when the term ends. */
  readonly termEnded?: AbortSignal;
}

export type PruneOutcome =
  | { readonly stack: string; readonly action: "pruned"; readonly record: HolderRecord }
  | { readonly stack: string; readonly action: "kept"; readonly reason: string }
  | { readonly stack: string; readonly action: "failed"; readonly error: string };

/**
 * Prunes the project's orphan records, one stack at a time (each may take an engine call), and
 * tells what became of each record of a stack no object names. A stack that fails is reported and
 * left for the next term; a lost term stops the pruning.
 */
export async function pruneOrphanHolders(s: PrunableStacks, o: PruneOptions): Promise<PruneOutcome[]> {
  const held = await s.holders.held(s.project);
  const outcomes: PruneOutcome[] = [];
  for (const stack of held.keys()) {
    if (o.termEnded?.aborted) break;
    if (o.inUse(stack)) continue;
    try {
      outcomes.push(await pruneOne(s, stack, o));
    } catch (error) {
      outcomes.push({ stack, action: "failed", error: error instanceof Error ? error.message : String(error) });
      if (error instanceof FencedError) break;
    }
  }
  return outcomes;
}

async function pruneOne(s: PrunableStacks, stack: string, o: PruneOptions): Promise<PruneOutcome> {
  const kept = (reason: string): PruneOutcome => ({ stack, action: "kept", reason });
  return s.exclusive(stack, async () => {
    const record = await s.holders.read(s.project, stack);
    if (!record) return kept("no record any more");
    const lock = decideLock(record, o.term);
    if (lock.action !== "clear") return kept(`${lock.reason}: only a record of an ended term is pruned`);
    if (o.inUse(stack)) return kept("an object names the stack now: its recovery and operations take care of the record");
    if (await s.exists(stack)) {
      return kept("the stack still exists without an object: its record is what would let a recovery clear a lock it left; remove the stack (pulumi stack rm) if no object will use it again");
    }
    if (!s.mayWrite()) throw new FencedError(`pruning the holder record of stack ${stack}`, "no record is removed");
    await s.holders.remove(s.project, stack, record);
    return { stack, action: "pruned", record };
  });
}

/** The log line of one pruned or kept record (nothing secret: a replica's name, times, a pid). */
export function pruneLogLine(outcome: PruneOutcome): Record<string, unknown> {
  if (outcome.action === "pruned") {
    const { identity, acquiredAt, operation, startedAt } = outcome.record;
    return { level: "info", msg: "pruned the holder record of a stack that no longer exists", stack: outcome.stack, holder: identity, termAcquiredAt: new Date(acquiredAt).toISOString(), operation, startedAt };
  }
  if (outcome.action === "kept") return { level: "info", msg: "kept the holder record of a stack no object names", stack: outcome.stack, why: outcome.reason };
  return { level: "warn", msg: "pruning a holder record failed; the next term tries again", stack: outcome.stack, error: outcome.error };
}
