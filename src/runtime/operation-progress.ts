/**
 * What a long engine operation is doing, told to users while it runs: an `up` of a new Cluster
 * takes minutes (the masters start one after another), and one that cannot finish — a master Pod
 * the meta-cluster cannot schedule, say — otherwise shows only "pulumi up of stack …" until the
 * engine gives up ten minutes later. The reporter turns the StackRunner's progress into the
 * message of the object's `Progressing` condition: queued for an engine slot, how many resources
 * are done, the latest thing a provider said, and what is stuck on the Pods it waits for (an
 * unschedulable master Pod and why: master-pods.ts).
 *
 * Status writes are throttled: one as soon as the phase changes (queued → running), then at most
 * one per `minIntervalMs` however many events the engine sends (a report held back is written
 * when its time comes, even if the engine says nothing more). Writes never overlap, and `stop()`
 * waits for the last one before the caller writes the outcome, so a late progress write cannot
 * overwrite "Ready".
 */
import type { OperationProgress } from "./stack-runner";

/** The `Progressing` message for one progress report: "pulumi up of stack fleet-dev: 12 done (…); …". */
export function describeProgress(p: OperationProgress): string {
  const what = `pulumi ${p.operation} of stack ${p.stack}`;
  if (p.phase === "queued") {
    const slots = p.slots ? ` (${p.slots.active} of ${p.slots.limit} in use, --concurrency ${p.slots.limit})` : "";
    return `waiting for an engine slot${slots}, then ${what}`;
  }
  const done = Object.values(p.counts).reduce((a, b) => a + b, 0);
  if (done === 0 && !p.message) return `${what}: started`;
  const counts = Object.entries(p.counts)
    .map(([op, n]) => `${op} ${n}`)
    .join(", ");
  const parts = [`${what}: ${done} resource${done === 1 ? "" : "s"} done${counts ? ` (${counts})` : ""}`];
  if (p.message) parts.push(`latest: ${p.message}`);
  return parts.join("; ");
}

export interface ProgressReporterOptions {
  /** Writes the message (the caller puts it in a condition). A failed write is dropped: progress is best effort. */
  readonly write: (message: string) => Promise<void>;
  /** Milliseconds, as Date.now. */
  readonly now: () => number;
  /** Least time between two writes within one phase. Default 10 s. */
  readonly minIntervalMs?: number;
}

export class ProgressReporter {
  private chain: Promise<void> = Promise.resolve();
  private lastWrite = Number.NEGATIVE_INFINITY;
  private current: OperationProgress | undefined;
  private troubles: string[] = [];
  private lastMessage: string | undefined;
  private pending: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: ProgressReporterOptions) {}

  private get intervalMs(): number {
    return this.o.minIntervalMs ?? 10_000;
  }

  /** Pass as the StackRunner's `onProgress`. */
  readonly onProgress = (p: OperationProgress): void => {
    const phaseChanged = p.phase !== this.current?.phase;
    this.current = p;
    this.offer(phaseChanged);
  };

  /**
   * What is stuck on the workloads the operation waits for (master-pods.ts), appended to the
   * message; a change is written at once (the caller polls, which bounds the rate).
   */
  setTroubles(troubles: readonly string[]): void {
    if (troubles.join("\n") === this.troubles.join("\n")) return;
    this.troubles = [...troubles];
    this.offer(true);
  }

  private render(): string | undefined {
    if (!this.current) return undefined;
    const message = describeProgress(this.current);
    return this.troubles.length ? `${message}; stuck: ${this.troubles.join("; ")}` : message;
  }

  private offer(urgent: boolean): void {
    const message = this.render();
    if (this.stopped || message === undefined || message === this.lastMessage) return;
    if (urgent || this.o.now() - this.lastWrite >= this.intervalMs) return this.enqueue(message);
    // Held for the next write that is due (the latest report wins): a provider's one warning
    // followed by minutes of silence must still reach the status.
    this.pending = message;
    this.timer ??= setTimeout(
      () => {
        this.timer = undefined;
        if (this.pending && !this.stopped) this.enqueue(this.pending);
      },
      Math.max(0, this.lastWrite + this.intervalMs - this.o.now()),
    );
    this.timer.unref?.();
  }

  /** No more writes (the operation ended); resolves once the last one begun has finished. */
  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    return this.chain;
  }

  private enqueue(message: string): void {
    this.pending = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.lastMessage = message;
    this.lastWrite = this.o.now();
    this.chain = this.chain.then(() => this.o.write(message).catch(() => undefined));
  }
}

export interface OperationTracker {
  /** Pass as the StackRunner's `onProgress`. */
  readonly onProgress: (p: OperationProgress) => void;
  /** Ends the polling and the writes; resolves once the last write has finished. */
  stop(): Promise<void>;
}

/**
 * A ProgressReporter plus, when `troubles` is given, a poll of it every `troublesCheckMs`
 * (default 15 s) for what is stuck on the workloads the operation waits for.
 */
export function trackOperation(o: ProgressReporterOptions & { troubles?: () => Promise<string[]>; troublesCheckMs?: number }): OperationTracker {
  const reporter = new ProgressReporter(o);
  const troubles = o.troubles;
  let poll: NodeJS.Timeout | undefined;
  let polling: Promise<void> = Promise.resolve();
  if (troubles) {
    poll = setInterval(() => {
      // One read at a time; a failed read says nothing new (the engine's own error will).
      polling = polling.then(() => troubles().then((t) => reporter.setTroubles(t), () => undefined));
    }, o.troublesCheckMs ?? 15_000);
    poll.unref?.();
  }
  return {
    onProgress: reporter.onProgress,
    async stop() {
      clearInterval(poll);
      await polling;
      await reporter.stop();
    },
  };
}
