/**
 * An engine killed from outside while this replica still leads: an OOM kill of the Pulumi CLI in
 * the operator's Pod, a `kill -9` of it. The CLI is the only process that writes the stack's
 * checkpoint and lock, and it died without releasing the lock; the operation failed by itself, so
 * the holder record would go (fencing.ts) and no later leader could prove the lock stale. Every
 * later operation on the stack would fail with `concurrent-update` until a person ran
 * `pulumi cancel`.
 *
 * Within the same term the StackRunner knows the lock is its own and stale: it holds the stack's
 * mutex, the fence admitted the operation, and the CLI that took the lock is dead. So it kills what
 * is left of that operation (its language host, its providers: every process marked with the
 * operation's `KOK_ENGINE_OPERATION`) and then cancels the lock, before the stack is released. The
 * kill comes first for the same reason a new leader clears a lock only after the old term's
 * engines were killed: an orphaned provider still applying a step must not race the next
 * operation's engine.
 */
import type { StackOperation } from "./engine-errors";
import { killProcessesWith } from "./fencing";
import type { Term } from "./leader-election";

/**
 * Set in every engine process of one operation, beside the fence's `KOK_ENGINE_OWNER` (which all
 * operations of the process share): its value is unique per operation, so the leftovers of one
 * killed CLI can be killed without touching the engines of other stacks.
 */
export const ENGINE_OPERATION_VARIABLE = "KOK_ENGINE_OPERATION";

/** The exit status of a process killed by SIGKILL, as a shell or a container runtime reports it. */
const SIGKILL_EXIT_CODE = 128 + 9;

/**
 * How the CLI died, when it did not end on its own terms: the signal that killed it ("SIGKILL"),
 * or undefined for any other failure. The Automation API runs the CLI with execa, which rejects for
 * a process killed by a signal with `signal` set (`exitCode` undefined); `exec` wraps that in a
 * `CommandError` whose `commandResult` has code -2 and the execa error as `err`. Exit code 137
 * counts too: what a wrapper shell reports when the CLI under it was SIGKILLed. The CLI itself
 * never exits with it (it uses 0, 1, 2 and 255), nor dies of SIGINT (it handles it: a cancel).
 */
export function engineKillSignal(error: unknown): string | undefined {
  const result = (error as { commandResult?: { err?: unknown } } | undefined)?.commandResult;
  const child = result?.err as { signal?: unknown; exitCode?: unknown } | undefined;
  if (typeof child?.signal === "string" && child.signal !== "") return child.signal;
  if (child?.exitCode === SIGKILL_EXIT_CODE) return "SIGKILL";
  return undefined;
}

export type KilledEngineDecision =
  /** Our own engine died and left its lock in a live term: kill its leftovers, cancel the lock. */
  | { readonly action: "clear"; readonly cause: string }
  /** Nothing for the runner to do here; `reason` says why. */
  | { readonly action: "none"; readonly reason: string };

/**
 * Whether a failed operation's lock is this runner's to clear now. Not when the fence killed the
 * engine (`aborted`: the term ended) nor when the term's renewal deadline passed (`termLive`
 * false: the watchdog may have killed it, and the lease may be passing on): then the holder record
 * stays and the next leader's recovery clears the lock (fencing.ts `decideLock`). An `export`
 * takes no lock.
 */
export function decideKilledEngine(o: { readonly error: unknown; readonly operation: StackOperation; readonly aborted: boolean; readonly termLive: boolean }): KilledEngineDecision {
  if (o.operation === "export") return { action: "none", reason: "an export takes no lock" };
  const cause = engineKillSignal(o.error);
  if (!cause) return { action: "none", reason: "the engine ended by itself (it released its lock)" };
  if (o.aborted) return { action: "none", reason: `the engine was killed (${cause}) by the fence: the term ended, the next leader's recovery clears the lock` };
  if (!o.termLive) return { action: "none", reason: `the engine was killed (${cause}) after the term's renewal deadline: the next leader's recovery clears the lock` };
  return { action: "clear", cause };
}

/** What the runner did about a killed engine's lock. No engine output beyond a summarized reason. */
export interface KilledEngineCleanup {
  readonly stack: string;
  readonly operation: StackOperation;
  /** The signal that killed the CLI. */
  readonly cause: string;
  readonly lockCleared: boolean;
  /** Why the lock was not cleared (processes that survived SIGKILL, the cancel's failure). */
  readonly reason?: string;
}

/**
 * Kills the operation's leftover processes, then cancels the lock (`cancel`: `pulumi cancel` on
 * the stack). A process that survives SIGKILL (stuck in the kernel) may still act for the dead
 * CLI: the lock is then not cancelled.
 */
export async function clearKilledEngineLock(o: {
  readonly stack: string;
  readonly operation: StackOperation;
  readonly cause: string;
  readonly operationMark: string;
  readonly cancel: () => Promise<void>;
  readonly summarize: (error: unknown) => string;
}): Promise<KilledEngineCleanup> {
  const { stack, operation, cause } = o;
  const survivors = await killProcessesWith(ENGINE_OPERATION_VARIABLE, o.operationMark);
  if (survivors.length > 0) return { stack, operation, cause, lockCleared: false, reason: `${survivors.length} process(es) of the killed engine survived SIGKILL (pids ${survivors.join(", ")})` };
  try {
    await o.cancel();
    return { stack, operation, cause, lockCleared: true };
  } catch (error) {
    return { stack, operation, cause, lockCleared: false, reason: `pulumi cancel failed: ${o.summarize(error)}` };
  }
}

/** The sentence a failed operation's error gains. */
export function killedEngineMessage(c: KilledEngineCleanup): string {
  const killed = `the engine was killed (${c.cause}) while this replica led`;
  return c.lockCleared
    ? `${killed}; its stack lock was cleared (pulumi cancel), so the next operation can run`
    : `${killed}; its stack lock could not be cleared (${c.reason ?? "unknown"}): the lock and its holder record stay, and the next operation on the stack in this term retries first`;
}

/** One log line for the operator's log (no secrets: a signal, a stack, a summarized reason). */
export function killedEngineLogLine(c: KilledEngineCleanup): Record<string, unknown> {
  return c.lockCleared
    ? { level: "warn", msg: "cleared the stack lock of a killed engine", stack: c.stack, operation: c.operation, signal: c.cause }
    : { level: "error", msg: "could not clear the stack lock of a killed engine", stack: c.stack, operation: c.operation, signal: c.cause, error: c.reason };
}

/** Whether two terms are the same one (identity and acquire time); no term (no election) equals no term. */
export function sameTerm(a: Term | undefined, b: Term | undefined): boolean {
  if (!a || !b) return a === b;
  return a.identity === b.identity && a.acquiredAt === b.acquiredAt;
}

/** A killed engine's lock that could not be cleared, to retry within its term. */
interface UnclearedLock {
  readonly term: Term | undefined;
  readonly operation: StackOperation;
  readonly cause: string;
  readonly operationMark: string;
}

/**
 * The StackRunner's handling of killed engines: after a failed operation, and before the next one
 * on the same stack. Called with the stack's mutex held and the operation admitted by the fence.
 *
 * The stacks whose killed engine's lock could not be cleared are kept in this process's memory,
 * and only for the term the engine died in. Why memory and not the holder record: a record of the
 * current term on a stack whose mutex we hold proves that no operation of ours runs there, but not
 * that a lock of ours is left: a record also stays when its removal failed (the meta-cluster
 * unreachable for a Lease) after an operation that released its own lock, and a `pulumi cancel`
 * then could remove someone else's lock (a person's `pulumi up`). Only this process saw its CLI
 * die. A process that restarts (its memory lost) runs in a new term: leader-election.ts gives a
 * new process a new acquire time even for a lease its identity still holds, so the kept record
 * names an ended term and the recovery clears the lock (`decideLock`). Another term of this same
 * process likewise: the entry is dropped and the recovery decides.
 */
export class KilledEngines {
  private readonly uncleared = new Map<string, UnclearedLock>();

  constructor(
    private readonly o: {
      /** `pulumi cancel` on the stack, its processes marked with `operationMark`. */
      readonly cancel: (stack: string, operationMark: string) => Promise<void>;
      readonly summarize: (error: unknown) => string;
      readonly onCleanup?: (cleanup: KilledEngineCleanup) => void;
    },
  ) {}

  /**
   * After a failed operation: when its CLI was killed within a live term (`decideKilledEngine`),
   * kills what is left of it and cancels the lock; a lock that stays is remembered for the next
   * operation of the term. Undefined when there was nothing to do.
   */
  async afterFailure(stack: string, operation: StackOperation, o: { readonly error: unknown; readonly aborted: boolean; readonly termLive: boolean; readonly term: Term | undefined; readonly operationMark: string }): Promise<KilledEngineCleanup | undefined> {
    const decision = decideKilledEngine({ error: o.error, operation, aborted: o.aborted, termLive: o.termLive });
    if (decision.action !== "clear") return undefined;
    const cleanup = await this.clear(stack, operation, decision.cause, o.operationMark);
    if (!cleanup.lockCleared) this.uncleared.set(stack, { term: o.term, operation, cause: decision.cause, operationMark: o.operationMark });
    return cleanup;
  }

  /**
   * Before an operation of `term` that may take the stack's lock: a lock an earlier operation's
   * killed engine left in this term is cleared now. Returns the cleanup when it still failed (the
   * operation must not start), else undefined.
   */
  async beforeOperation(stack: string, term: Term | undefined): Promise<KilledEngineCleanup | undefined> {
    const due = this.uncleared.get(stack);
    if (!due) return undefined;
    if (!sameTerm(due.term, term)) {
      this.uncleared.delete(stack);
      return undefined;
    }
    const cleanup = await this.clear(stack, due.operation, due.cause, due.operationMark);
    if (!cleanup.lockCleared) return cleanup;
    this.uncleared.delete(stack);
    return undefined;
  }

  private async clear(stack: string, operation: StackOperation, cause: string, operationMark: string): Promise<KilledEngineCleanup> {
    const cleanup = await clearKilledEngineLock({ stack, operation, cause, operationMark, summarize: this.o.summarize, cancel: () => this.o.cancel(stack, operationMark) });
    this.o.onCleanup?.(cleanup);
    return cleanup;
  }
}
