/**
 * A rate-limited work queue of object keys (`namespace/name`), with client-go's semantics
 * (`util/workqueue/queue.go`, `delaying_queue.go`, `rate_limiting_queue.go`):
 *
 * - **De-duplication.** A key added while it is already waiting is not added again: events are
 *   level triggers ("look at this object"), and ten events for one object need one reconcile.
 * - **One worker per key.** A key handed out by `get()` stays "processing" until `done(key)`.
 *   Adding it meanwhile marks it dirty; `done` puts it back, so the change is not lost and two
 *   workers never reconcile the same object at once (two `pulumi up` on one stack would fail).
 * - **Delays.** `addAfter` keeps one timer per key, the earliest wins.
 * - **Retries.** `addRateLimited` waits max(per-key exponential backoff, global token bucket);
 *   `forget` resets the key's backoff after a success. As in client-go, the global bucket limits
 *   retries only: plain `add` (a watch event, a resync) is never throttled.
 */
import { realClock, type CancelTimer, type Clock } from "./clock";
import { PerKeyBackoff, TokenBucket, type BackoffOptions, type TokenBucketOptions } from "./rate-limiter";

export interface WorkQueueOptions {
  readonly clock?: Clock;
  /** Per-key retry backoff. Default 1s doubling to 5 minutes. */
  readonly backoff?: BackoffOptions;
  /** Global limit on retries. Default 10 per second, burst 100. */
  readonly rateLimit?: TokenBucketOptions;
  /** Called whenever the number of ready keys changes (for the workqueue_depth gauge). */
  readonly onDepth?: (depth: number) => void;
  /** Called on every `addRateLimited` (for the workqueue_retries_total counter). */
  readonly onRetry?: (key: string) => void;
  /** Called when a key is added that was not waiting already (workqueue_adds_total). */
  readonly onAdd?: (key: string) => void;
  /** Called when a key is handed to a worker, with how long it waited since it was added (workqueue_queue_duration_seconds). */
  readonly onGet?: (key: string, queuedMs: number) => void;
  /** Called when a worker is done with a key, with how long it held it (workqueue_work_duration_seconds). */
  readonly onDone?: (key: string, workedMs: number) => void;
}

export class WorkQueue {
  private readonly clock: Clock;
  private readonly backoff: PerKeyBackoff;
  private readonly bucket: TokenBucket;
  private readonly options: WorkQueueOptions;

  /** Keys ready to be handed out, in order. */
  private readonly ready: string[] = [];
  /** Keys that need processing: waiting in `ready`, or re-added while processing. */
  private readonly dirty = new Set<string>();
  /** Keys handed out by `get()` and not yet `done()`. */
  private readonly processing = new Set<string>();
  /** Delayed keys: when they become ready, and the timer that will add them. */
  private readonly delayed = new Map<string, { readyAt: number; cancel: CancelTimer }>();
  /** When each dirty key was added, for the time it waits (client-go's addTimes). */
  private readonly addedAt = new Map<string, number>();
  /** When each processing key was handed out, for the time it is worked on. */
  private readonly startedAt = new Map<string, number>();
  /** `get()` callers waiting for a key, oldest first. */
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.options = options;
    this.clock = options.clock ?? realClock;
    this.backoff = new PerKeyBackoff(options.backoff);
    this.bucket = new TokenBucket(this.clock, options.rateLimit);
  }

  /** Marks `key` as needing a reconcile. No-op after shutdown. */
  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    this.addedAt.set(key, this.clock.now());
    this.options.onAdd?.(key);
    // Processing now: `done` re-queues it, so it is never handed to a second worker.
    if (this.processing.has(key)) return;
    this.pushReady(key);
  }

  /** Adds `key` after `ms`; if it is already waiting for a later time, the earlier time wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.clock.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.readyAt <= readyAt) return;
    existing?.cancel();
    const cancel = this.clock.setTimer(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { readyAt, cancel });
  }

  /** Re-adds `key` after its backoff (or the global limit, whichever is longer); returns the delay. */
  addRateLimited(key: string): number {
    if (this.shuttingDown) return 0;
    const delay = Math.max(this.backoff.when(key), this.bucket.reserve());
    this.options.onRetry?.(key);
    this.addAfter(key, delay);
    return delay;
  }

  /** Resets `key`'s backoff: its next failure waits the base delay again. */
  forget(key: string): void {
    this.backoff.forget(key);
  }

  /** How many times `key` was retried since it was last forgotten. */
  numRequeues(key: string): number {
    return this.backoff.retries(key);
  }

  /**
   * The next key to process; waits while none is ready. Resolves `undefined` once the queue is
   * shut down: keys still waiting are then dropped (they are level triggers, and the next leader
   * or process start re-lists everything).
   */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.ready.shift();
    if (key !== undefined) return Promise.resolve(this.handOut(key));
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Ends processing of `key`; if it was added meanwhile, it becomes ready again. */
  done(key: string): void {
    if (!this.processing.delete(key)) return;
    const started = this.startedAt.get(key);
    this.startedAt.delete(key);
    if (started !== undefined) this.options.onDone?.(key, this.clock.now() - started);
    if (this.dirty.has(key) && !this.shuttingDown) this.pushReady(key);
  }

  /** Stops handing out keys: waiting and future `get()` calls resolve `undefined`. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { cancel } of this.delayed.values()) cancel();
    this.delayed.clear();
    this.ready.length = 0;
    this.dirty.clear();
    this.addedAt.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
    this.options.onDepth?.(0);
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Keys ready to be handed out (not counting delayed or processing ones). */
  len(): number {
    return this.ready.length;
  }

  /** Keys waiting for a delay or backoff to pass. */
  delayedLen(): number {
    return this.delayed.size;
  }

  /** Keys handed out and not yet done. */
  processingLen(): number {
    return this.processing.size;
  }

  private pushReady(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter(this.handOut(key));
      return;
    }
    this.ready.push(key);
    this.options.onDepth?.(this.ready.length);
  }

  private handOut(key: string): string {
    this.processing.add(key);
    this.dirty.delete(key);
    const now = this.clock.now();
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    this.startedAt.set(key, now);
    // Every key handed out was added; 0 only guards the pairing of onGet with onDone.
    this.options.onGet?.(key, added === undefined ? 0 : now - added);
    this.options.onDepth?.(this.ready.length);
    return key;
  }
}
