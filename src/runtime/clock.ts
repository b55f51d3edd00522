/**
 * Time as the operator machinery sees it. Every queue delay, backoff, resync and lease renewal
 * goes through a Clock so that unit tests advance time by hand instead of sleeping, and so that
 * no test has to assert on wall-clock durations.
 */

/** Cancels a timer; calling it after the timer fired is harmless. */
export type CancelTimer = () => void;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds (0 or less: on the next macrotask). */
  setTimer(fn: () => void, ms: number): CancelTimer;
}

/** The process clock: Date.now and setTimeout. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const handle = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(handle);
  },
};

/**
 * Waits `ms` on `clock`, or resolves early (with false) when `signal` aborts, so a stopped
 * component never wakes up later to act on a world it no longer owns.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      cancel();
      resolve(false);
    };
    const cancel = clock.setTimer(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
