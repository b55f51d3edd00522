/**
 * What every benchmark shares: its shape (a size, a run that returns figures), the figures'
 * samples with their same-run baselines, and the small statistics the table shows. Timings are
 * only ever printed and recorded; nothing here asserts on them.
 */
import { eventually } from "../test/support/poll";

export type Size = Record<string, number>;

export interface Figure {
  /** e.g. "one Cluster → Ready (operator)" */
  readonly name: string;
  readonly unit: "ms" | "s" | "MB" | "per min" | "ms/object" | "count";
  readonly samples: number[];
  /** What the figure is compared with, measured in the same run. */
  readonly baseline?: { readonly name: string; readonly samples: number[] };
  /** The target, as text, e.g. "≤ 1.15× baseline". */
  readonly target?: string;
  /** Whether the target is met, when it can be judged from the figures. */
  readonly met?: boolean;
  readonly note?: string;
}

export interface BenchmarkContext {
  /** Repetitions of each measured operation. */
  readonly runs: number;
  readonly log: (message: string) => void;
}

export interface Benchmark {
  /** Short id used on the command line: `--only scale`, `scale.machines=10000`. */
  readonly id: string;
  readonly title: string;
  readonly sizes: { readonly quick: Size; readonly full: Size };
  /** Repetitions per size, unless `--runs` says otherwise. */
  readonly runs: { readonly quick: number; readonly full: number };
  run(size: Size, ctx: BenchmarkContext): Promise<Figure[]>;
}

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length };
}

/** Figure median ÷ baseline median, or undefined without a baseline. */
export function ratioOf(figure: Figure): number | undefined {
  if (!figure.baseline) return undefined;
  const base = summarize(figure.baseline.samples).median;
  const value = summarize(figure.samples).median;
  return base > 0 ? value / base : undefined;
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { ms: performance.now() - start, value };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `fn` over `items` with at most `limit` at once, in order of start. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Polls through errors until `check` yields a value; the deadline only bounds a broken run. */
export function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, deadlineMs: number, everyMs = 200): Promise<T> {
  return eventually(what, check, { timeoutMs: deadlineMs, everyMs, retryErrors: true });
}
