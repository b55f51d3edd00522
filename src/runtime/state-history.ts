/**
 * Keeps a file:// state backend's history from filling its volume. Every update of a stack leaves
 * in `.pulumi/history/<project>/<stack>/` a full checkpoint and an update record
 * (`<stack>-<ns>.checkpoint.json`, `<stack>-<ns>.history.json`), and in
 * `.pulumi/backups/<project>/<stack>/` a copy of the previous state (`<stack>.<ns>.json`), each
 * with a `.attrs` sidecar. Each checkpoint is the stack's whole state and an operator updates its
 * stacks again and again: on the operator's state volume (install-manifests.ts) this is what grows
 * without end. The engine never deletes them.
 *
 * What is kept: per stack, the newest `keep` updates' history and the newest `keep` backups. The
 * stack's state itself (`.pulumi/stacks/...`, and its `.bak`) is never touched, nor is anything
 * of a stack another process holds the lock of (`.pulumi/locks/...`): pruning waits for the
 * next sweep. Deleting old files while an update writes new ones is harmless (only files older
 * than the newest `keep` are deleted, and a running update's files are the newest).
 *
 * Object stores have lifecycle rules for this (docs/operations.md "State backends").
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import * as path from "node:path";

/** Checkpoints and backups kept per stack by default: a few days of a busy stack's updates. */
export const DEFAULT_HISTORY_KEEP = 20;

/** `<stack>-<ns>.checkpoint.json` / `.history.json`, gzipped or not, and their sidecars. */
const HISTORY_FILE = /-(\d+)\.(?:checkpoint|history)\.json(?:\.gz)?(?:\.attrs)?$/;
/** `<stack>.<ns>.json`, gzipped or not, and its sidecar. */
const BACKUP_FILE = /\.(\d+)\.json(?:\.gz)?(?:\.attrs)?$/;

export interface StackPruneResult {
  /** `<project>/<stack>`. */
  readonly stack: string;
  readonly removedFiles: number;
  readonly removedBytes: number;
}

export interface PruneResult {
  readonly pruned: StackPruneResult[];
  /** Stacks left alone because an update holds their lock. */
  readonly locked: string[];
}

/**
 * The backend's layout version (`meta.yaml`): 1 is the per-project layout the operator's engine
 * writes, `history/<project>/<stack>` and `locks/organization/<project>/<stack>`. An older,
 * unscoped backend is not pruned (where its locks live was not checked against the engine):
 * `pulumi state upgrade` converts it. No meta.yaml yet: no stack either.
 */
function layoutVersion(root: string): number | undefined {
  const meta = path.join(root, "meta.yaml");
  if (!existsSync(meta)) return undefined;
  const version = /^version:\s*(\d+)/m.exec(readFileSync(meta, "utf8"))?.[1];
  return version === undefined ? 0 : Number(version);
}

function directories(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
}

/** The stacks that have history or backups, as `<project>/<stack>` paths under history/ and backups/. */
function stacksOf(root: string): string[] {
  const found = new Set<string>();
  for (const area of ["history", "backups"]) {
    const base = path.join(root, area);
    for (const project of directories(base)) for (const stack of directories(path.join(base, project))) found.add(`${project}/${stack}`);
  }
  return [...found].sort();
}

/** An update (or any other operation) holds the stack: the engine's lock file is there. */
function isLocked(root: string, stack: string): boolean {
  const dir = path.join(root, "locks", "organization", stack);
  return existsSync(dir) && readdirSync(dir).some((f) => f.endsWith(".json"));
}

/** Deletes the files of `dir` whose update time is older than the newest `keep`; returns what went. */
function pruneDir(dir: string, pattern: RegExp, keep: number): { files: number; bytes: number } {
  if (!existsSync(dir)) return { files: 0, bytes: 0 };
  const byTime = new Map<bigint, string[]>();
  for (const name of readdirSync(dir)) {
    const time = pattern.exec(name)?.[1];
    if (time === undefined) continue;
    const key = BigInt(time);
    byTime.set(key, [...(byTime.get(key) ?? []), name]);
  }
  const old = [...byTime.keys()].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0)).slice(keep);
  let files = 0;
  let bytes = 0;
  for (const time of old) {
    for (const name of byTime.get(time) ?? []) {
      const file = path.join(dir, name);
      try {
        bytes += statSync(file).size;
        rmSync(file);
        files++;
      } catch (error) {
        // Gone already (another sweep, a stack removal): nothing left to free.
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
  }
  return { files, bytes };
}

/**
 * Prunes every stack of the file backend in `backendDir` (the directory of a `file://` URL) to its
 * newest `keep` updates. `keep` must be at least 1: the newest history is what `pulumi stack
 * history` and a manual roll-back start from.
 */
export function pruneStateHistory(backendDir: string, keep: number): PruneResult {
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`state history: keep must be a positive integer, got ${keep}`);
  const root = path.join(backendDir, ".pulumi");
  const version = layoutVersion(root);
  if (version === undefined) return { pruned: [], locked: [] };
  if (version !== 1) throw new Error(`${path.join(root, "meta.yaml")}: state layout version ${version} is not pruned; \`pulumi state upgrade\` converts it to version 1`);
  const pruned: StackPruneResult[] = [];
  const locked: string[] = [];
  for (const stack of stacksOf(root)) {
    if (isLocked(root, stack)) {
      locked.push(stack);
      continue;
    }
    const history = pruneDir(path.join(root, "history", stack), HISTORY_FILE, keep);
    const backups = pruneDir(path.join(root, "backups", stack), BACKUP_FILE, keep);
    if (history.files + backups.files > 0) pruned.push({ stack, removedFiles: history.files + backups.files, removedBytes: history.bytes + backups.bytes });
  }
  return { pruned, locked };
}

export interface HistoryPrunerOptions {
  readonly backendDir: string;
  readonly keep: number;
  /** Time between sweeps: an update's history is pruned at most this long after it ends. */
  readonly intervalMs: number;
  readonly onResult?: (result: PruneResult) => void;
  readonly onError?: (error: Error) => void;
}

/**
 * Sweeps the backend now and every `intervalMs`. A sweep reads a few directories per stack, so a
 * short interval costs little; one sweep never overlaps another.
 */
export class HistoryPruner {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: HistoryPrunerOptions) {}

  start(): void {
    this.sweep();
    this.timer = setInterval(() => this.sweep(), this.o.intervalMs);
    // A sweep is housekeeping: it never keeps the process alive.
    this.timer.unref();
  }

  sweep(): PruneResult | undefined {
    try {
      const result = pruneStateHistory(this.o.backendDir, this.o.keep);
      this.o.onResult?.(result);
      return result;
    } catch (error) {
      this.o.onError?.(error as Error);
      return undefined;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
