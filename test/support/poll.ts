/**
 * The one poll every test and the bench wait with: `check` until it yields a value. Waits in tests
 * are bounded polls of a condition; the deadline only bounds a broken run, and no assertion is ever
 * about how long anything took.
 */

export interface PollOptions {
  /** Gives up after this long, naming `what` (default 60 s). */
  readonly timeoutMs?: number;
  /** Between checks (default 50 ms). */
  readonly everyMs?: number;
  /**
   * A check that throws is tried again, and its last error is named when the wait gives up — for
   * checks against servers that are still starting. Off by default: a test's own bug fails at once.
   */
  readonly retryErrors?: boolean;
}

/** Not yet: `undefined`, `null` and `false`; anything else ends the wait and is returned. */
type Pending = undefined | null | false;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function eventually<T>(what: string, check: () => T | Pending | Promise<T | Pending>, opts: PollOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== null && value !== false) return value as T;
    } catch (error) {
      if (!opts.retryErrors) throw error;
      last = error;
    }
    if (Date.now() > end) {
      const cause = last === undefined ? "" : ` (last error: ${last instanceof Error ? last.message : String(last)})`;
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${cause}`);
    }
    await sleep(opts.everyMs ?? 50);
  }
}
