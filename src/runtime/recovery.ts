/**
 * Recovery at the start of a leadership term, one stack (one object) at a time: what a killed or
 * fenced predecessor left on an object's stacks is cleared before that object is reconciled, and
 * only that object waits for it. A stack that cannot be recovered (an unreachable backend, a lock
 * nobody can prove stale) is reported on its object and retried with backoff; every other object
 * is reconciled meanwhile. A corrupt checkpoint is not a recovery failure (retrying would not mend
 * it): the recovery says so and the object's reconcile reports it (stack-runner.ts `recover`).
 *
 * - Every object with a recovery is *held* from the term's start: its reconciles are skipped until
 *   its recovery succeeds, and then its key is enqueued.
 * - Controllers start once every recovery had its first try, or after `firstPassMs` at the
 *   latest: a hung recovery (an engine call that never returns) holds its own object only.
 * - Retries back off exponentially (1 s doubling to 5 min) and stop when the term ends.
 */
import { realClock, sleep, type Clock } from "./clock";
import type { Term } from "./leader-election";
import { exponentialDelay } from "./rate-limiter";
import type { RecoveryOutcome } from "./stack-runner";

/** One object's recovery: the stacks of `key` (of the registration `kind`). */
export interface StackRecovery {
  readonly kind: string;
  readonly key: string;
  /** Clears what an ended term left on the object's stacks; throws when it cannot. */
  run(termEnded: AbortSignal): Promise<void>;
}

export interface RecoveryFailure {
  readonly recovery: StackRecovery;
  readonly error: unknown;
  /** 1 for the first try. */
  readonly attempt: number;
  readonly retryInMs: number;
}

export interface TermRecoveryOptions {
  readonly recoveries: readonly StackRecovery[];
  readonly termEnded: AbortSignal;
  readonly clock?: Clock;
  /** Recoveries at once; default 4 (each may be an engine call). */
  readonly concurrency?: number;
  /** Controllers start after this even if some first tries still run; default 60 s. */
  readonly firstPassMs?: number;
  readonly onFailure?: (failure: RecoveryFailure) => void;
  /** The object's recovery succeeded (after `attempt` tries): reconcile it now. */
  readonly onRecovered?: (recovery: StackRecovery, attempt: number) => void;
}

const heldKey = (kind: string, key: string) => `${kind}\u0000${key}`;

/** The recoveries of one term: which objects are held, and the retry loops. */
export class TermRecovery {
  private readonly held = new Map<string, { readonly recovery: StackRecovery; attempts: number; lastError?: string }>();
  private readonly options: TermRecoveryOptions;
  private readonly clock: Clock;
  /** Resolves once every first try settled or `firstPassMs` passed (or the term ended). */
  readonly firstPass: Promise<void>;
  /** Resolves once every recovery succeeded or the term ended. */
  readonly done: Promise<void>;

  constructor(options: TermRecoveryOptions) {
    this.options = options;
    this.clock = options.clock ?? realClock;
    for (const r of options.recoveries) this.held.set(heldKey(r.kind, r.key), { recovery: r, attempts: 0 });
    const queue = [...options.recoveries];
    const retries: Promise<void>[] = [];
    // A small pool makes the first tries; an object whose first try fails is retried by a loop of
    // its own, so failing objects never keep a worker from the others' first tries.
    const worker = async () => {
      for (let next = queue.shift(); next && !options.termEnded.aborted; next = queue.shift()) {
        if (!(await this.attempt(next))) retries.push(this.retry(next));
      }
    };
    const workers: Promise<void>[] = [];
    for (let i = 0; i < Math.min(Math.max(1, options.concurrency ?? 4), queue.length); i++) workers.push(worker());
    const ended = new Promise<void>((resolve) => {
      if (options.termEnded.aborted) resolve();
      options.termEnded.addEventListener("abort", () => resolve(), { once: true });
    });
    const firstTries = Promise.all(workers).then(() => undefined);
    this.firstPass = Promise.race([firstTries, sleep(this.clock, options.firstPassMs ?? 60_000, options.termEnded).then(() => undefined), ended]);
    this.done = Promise.race([firstTries.then(() => Promise.all(retries)).then(() => undefined), ended]);
  }

  /** Whether `key` of `kind` still waits for its recovery (its reconciles are skipped). */
  isHeld(kind: string, key: string): boolean {
    return this.held.has(heldKey(kind, key));
  }

  /** Objects still waiting, with their tries and last error (for /readyz and logs). */
  waiting(): { kind: string; key: string; attempts: number; lastError?: string }[] {
    return [...this.held.values()].map((h) => ({ kind: h.recovery.kind, key: h.recovery.key, attempts: h.attempts, lastError: h.lastError }));
  }

  /** One try; true when the object is recovered (or the term ended: nothing more to do). */
  private async attempt(recovery: StackRecovery): Promise<boolean> {
    const { termEnded } = this.options;
    const entry = this.held.get(heldKey(recovery.kind, recovery.key))!;
    if (termEnded.aborted) return true;
    entry.attempts++;
    try {
      await recovery.run(termEnded);
      if (termEnded.aborted) return true;
      this.held.delete(heldKey(recovery.kind, recovery.key));
      this.call(() => this.options.onRecovered?.(recovery, entry.attempts));
      return true;
    } catch (error) {
      entry.lastError = error instanceof Error ? error.message : String(error);
      if (termEnded.aborted) return true;
      this.call(() => this.options.onFailure?.({ recovery, error, attempt: entry.attempts, retryInMs: this.delay(entry.attempts) }));
      return false;
    }
  }

  private delay(attempts: number): number {
    return exponentialDelay(attempts - 1, 1000, 300_000);
  }

  private async retry(recovery: StackRecovery): Promise<void> {
    const entry = this.held.get(heldKey(recovery.kind, recovery.key))!;
    while (await sleep(this.clock, this.delay(entry.attempts), this.options.termEnded)) {
      if (await this.attempt(recovery)) return;
    }
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch {
      // Reporting must not stop recovery.
    }
  }
}

/** What a kind's registration hands the operator: one recovery per object, asked at each term's start. */
export interface StackRecoveries {
  recoveries(term: Term | undefined): StackRecovery[] | Promise<StackRecovery[]>;
}

/** The log line of one recovered stack: what was found and done (debug when nothing was). */
export function recoveryLogLine(stack: string, outcome: RecoveryOutcome): Record<string, unknown> {
  const { lock, clearedPending, stateUnreadable } = outcome;
  if (stateUnreadable) return { level: "warn", msg: "stack state unreadable: its object reports it and is not updated until it is restored", stack, lock: lock.action, why: lock.reason, error: stateUnreadable };
  const acted = lock.action === "clear" || clearedPending;
  return { level: acted ? "warn" : "debug", msg: acted ? "recovered an interrupted update" : "no interrupted update to clear", stack, lock: lock.action, why: lock.reason, clearedPending };
}
