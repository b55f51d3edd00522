/**
 * A counting semaphore: at most `limit` holders at once, the rest wait in arrival order. The
 * operator uses it to cap engine processes (CPU-bound: a CLI, a language host, providers) apart
 * from how many reconciles run, so cheap work (probes, status, health) is not queued behind them.
 */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`Semaphore: limit must be a positive integer, got ${limit}`);
  }

  /** Holders now, and callers waiting for a slot. */
  get state(): { readonly active: number; readonly waiting: number } {
    return { active: this.active, waiting: this.waiting.length };
  }

  /** Runs `fn` once a slot is free, and frees it when `fn` settles (resolved or rejected). */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter (active stays the same), or give it back.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/**
 * One holder per key at a time, the rest in arrival order (the StackRunner's per-stack mutex).
 * A holder that fails does not stop the next one.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    this.tails.set(key, next);
    // The caller handles `next`'s rejection; this bookkeeping branch must not re-raise it.
    next
      .finally(() => {
        if (this.tails.get(key) === next) this.tails.delete(key);
      })
      .catch(() => undefined);
    return next;
  }
}
