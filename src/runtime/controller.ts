/**
 * The generic controller loop: N workers pull keys from a WorkQueue and call `reconcile(key)`.
 * Retry policy lives here and nowhere else (controller-runtime's `reconcileHandler`):
 *
 * | reconcile outcome                     | queue action                          | result      |
 * |---------------------------------------|---------------------------------------|-------------|
 * | resolves, no `requeueAfter`           | `forget`                              | `success`   |
 * | resolves `{ requeueAfter: ms > 0 }`   | `forget`, `addAfter(ms)`              | `requeue`   |
 * | throws `TerminalError` (bad spec)     | `forget`, no retry                    | `terminal`  |
 * | throws anything else (or a non-Error) | `addRateLimited` (exponential, capped)| `error`     |
 *
 * A terminal error is not retried because retrying cannot fix a spec only the user can change;
 * the spec change itself is a watch event that enqueues the key again.
 */
import { realClock, type Clock } from "./clock";
import { WorkQueue } from "./work-queue";

/** What `reconcile` may resolve with. */
export interface ReconcileResult {
  /** Look at the object again after this many ms even if nothing changes (polling, drift). */
  readonly requeueAfter?: number;
}

export type Reconcile = (key: string) => Promise<ReconcileResult | void>;

/**
 * An error that retrying cannot fix, such as an invalid spec: the controller records it and
 * drops the key until the object changes again.
 */
export class TerminalError extends Error {
  /** Set on every TerminalError, so one from another copy of this module is still recognised. */
  readonly terminal = true as const;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TerminalError";
  }
}

export function isTerminalError(err: unknown): err is TerminalError {
  return err instanceof TerminalError || (err instanceof Error && (err as { terminal?: unknown }).terminal === true);
}

export const ReconcileOutcome = {
  Success: "success",
  Requeue: "requeue",
  Error: "error",
  Terminal: "terminal",
} as const;
export type ReconcileOutcome = (typeof ReconcileOutcome)[keyof typeof ReconcileOutcome];

export interface ReconcileEvent {
  readonly kind: string;
  readonly key: string;
  readonly durationMs: number;
  readonly result: ReconcileOutcome;
  /** What was thrown, for `error` and `terminal` (a non-Error is wrapped in an Error). */
  readonly error?: Error;
  /** The delay before the next attempt, for `requeue` and `error`. */
  readonly retryAfterMs?: number;
}

export interface ControllerOptions {
  /** The kind this controller reconciles, e.g. "Cluster"; labels metrics and logs. */
  readonly kind: string;
  readonly reconcile: Reconcile;
  /** Most reconciles of this kind running at once. Default 1. */
  readonly concurrency?: number;
  /** The queue to pull from. Default: a WorkQueue with the default rate limits. */
  readonly queue?: WorkQueue;
  readonly clock?: Clock;
  /** Called after every reconcile (metrics, logs). Its own exceptions are swallowed. */
  readonly onReconcile?: (event: ReconcileEvent) => void;
}

export class Controller {
  readonly kind: string;
  readonly queue: WorkQueue;
  private readonly concurrency: number;
  private readonly clock: Clock;
  private readonly options: ControllerOptions;
  private workers: Array<Promise<void>> = [];
  private started = false;

  constructor(options: ControllerOptions) {
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new Error(`controller ${options.kind}: concurrency must be a positive integer, got ${concurrency}`);
    }
    this.options = options;
    this.kind = options.kind;
    this.concurrency = concurrency;
    this.queue = options.queue ?? new WorkQueue({ clock: options.clock });
    this.clock = options.clock ?? realClock;
  }

  /** Enqueues a key; the informer's `onChange` calls this. */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  /**
   * Starts the workers. Idempotent while running; a stopped controller does not start again: a
   * new leadership term makes a new controller and queue (manager.ts), with no stale backoff or
   * delayed keys.
   */
  start(): void {
    if (this.started) return;
    if (this.queue.isShuttingDown()) throw new Error(`controller ${this.kind}: it was stopped; a new term makes a new controller`);
    this.started = true;
    for (let i = 0; i < this.concurrency; i++) this.workers.push(this.work());
  }

  /**
   * Stops handing out keys and resolves once every reconcile already running has finished
   * (a half-done `pulumi up` must end and unlock its stack before leadership is given up).
   */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.workers);
    this.workers = [];
    this.started = false;
  }

  private async work(): Promise<void> {
    const { queue } = this;
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        await this.reconcileOne(key);
      } finally {
        queue.done(key);
      }
    }
  }

  private async reconcileOne(key: string): Promise<void> {
    const { queue } = this;
    const started = this.clock.now();
    let event: Omit<ReconcileEvent, "kind" | "key" | "durationMs">;
    try {
      // Calling through a resolved promise turns a synchronous throw into a rejection.
      const result = await Promise.resolve().then(() => this.options.reconcile(key));
      queue.forget(key);
      const requeueAfter = result?.requeueAfter;
      if (requeueAfter !== undefined && requeueAfter > 0) {
        queue.addAfter(key, requeueAfter);
        event = { result: ReconcileOutcome.Requeue, retryAfterMs: requeueAfter };
      } else {
        event = { result: ReconcileOutcome.Success };
      }
    } catch (thrown) {
      const error = thrown instanceof Error ? thrown : new Error(`non-Error thrown: ${describe(thrown)}`);
      if (isTerminalError(thrown)) {
        queue.forget(key);
        event = { result: ReconcileOutcome.Terminal, error };
      } else {
        const retryAfterMs = queue.addRateLimited(key);
        event = { result: ReconcileOutcome.Error, error, retryAfterMs };
      }
    }
    const full: ReconcileEvent = { kind: this.kind, key, durationMs: this.clock.now() - started, ...event };
    try {
      this.options.onReconcile?.(full);
    } catch {
      // A broken metrics or log hook must not stop reconciling.
    }
  }
}

function describe(value: unknown): string {
  try {
    return typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
