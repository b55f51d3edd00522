/**
 * Fencing: a replica that lost its lease must have no engine running before another replica may
 * lead, and a new leader may clear only stack locks that provably belong to an ended term.
 *
 * - Every engine process (the Pulumi CLI, its language host, its providers, their SSH clients)
 *   inherits `KOK_ENGINE_OWNER=<marker>` from the StackRunner's environment. The marker is unique
 *   per operator process, so "our engines" is a scan of /proc, whoever their parent is now (a
 *   provider whose CLI died is re-parented to init, and still ours).
 * - `EngineFence.close()` (the term ended) refuses new operations, aborts the running ones and
 *   SIGKILLs every process with the marker: stopped first (SIGSTOP), so that none forks a child we
 *   would miss, then killed. No graceful SIGINT: a cancelled `pulumi up` finishes its in-flight
 *   resource steps first, for as long as they take; the lock and pending operations it leaves are
 *   what the next leader's recovery is for.
 * - A watchdog process (`FenceWatchdog`, detached, so a signal to our process group does not
 *   reach it) does the same kill when no renewal re-armed it in time: it covers an operator that
 *   is frozen (SIGSTOP, a long GC pause, a hung event loop) or killed, whose engines would
 *   otherwise run on while a new leader clears their locks.
 * - Each engine operation that may take a stack's lock first writes a holder record (the term's
 *   identity and acquire time); it is removed when the operation ends by itself and kept when the
 *   operation was killed. `decideLock` reads it at recovery (below). An engine killed from outside
 *   while the term is live is this term's own to clear (killed-engine.ts). The records live beside a
 *   `file://` backend's stacks (holder-files.ts), and in a Lease of the operator's namespace for
 *   an object store (holder-leases.ts), so a new leader can prove a lock stale with any backend.
 *   Records of stacks that no longer exist are pruned by a new leader (holder-pruning.ts).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { realClock, type Clock } from "./clock";
import type { Term } from "./leader-election";

/** Set in every engine process's environment; its value is the owning fence's marker. */
export const ENGINE_OWNER_VARIABLE = "KOK_ENGINE_OWNER";

/** An operation refused or aborted because this replica no longer leads. */
export class FencedError extends Error {
  constructor(what: string, consequence = "no engine may run") {
    super(`${what}: this replica does not lead (its lease was lost or it is stopping); ${consequence}`);
    this.name = "FencedError";
  }
}

/** Pids (not ours, not zombies) whose environment holds `KOK_ENGINE_OWNER=<marker>`. */
export function engineProcesses(marker: string, procRoot = "/proc"): number[] {
  return processesWith(ENGINE_OWNER_VARIABLE, marker, procRoot);
}

/** Pids (not ours, not zombies) whose environment holds `<variable>=<value>`. */
export function processesWith(variable: string, value: string, procRoot = "/proc"): number[] {
  const needle = Buffer.from(`\0${variable}=${value}\0`);
  const first = Buffer.from(`${variable}=${value}\0`);
  const pids: number[] = [];
  for (const entry of readdirSync(procRoot)) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const stat = readFileSync(path.join(procRoot, entry, "stat"), "utf8");
      // The state follows the command name in parentheses, which may itself hold ") ".
      if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") continue;
      const environ = readFileSync(path.join(procRoot, entry, "environ"));
      if (environ.includes(needle) || environ.subarray(0, first.length).equals(first)) pids.push(pid);
    } catch {
      // Gone meanwhile, or not ours to read: not one of our engines either way.
    }
  }
  return pids;
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/**
 * Stops then kills every process with the marker, until none is left or `rounds` scans pass.
 * Returns the pids that are still alive (empty: every engine is gone).
 */
export async function killEngines(marker: string, rounds = 50): Promise<number[]> {
  return killProcessesWith(ENGINE_OWNER_VARIABLE, marker, rounds);
}

/** `killEngines` for the processes whose environment holds `<variable>=<value>`. */
export async function killProcessesWith(variable: string, value: string, rounds = 50): Promise<number[]> {
  let left: number[] = [];
  for (let round = 0; round < rounds; round++) {
    left = processesWith(variable, value);
    if (left.length === 0) return [];
    signalAll(left, "SIGSTOP");
    // A process may have forked between the scan and its stop: stop those too before killing.
    const more = processesWith(variable, value).filter((p) => !left.includes(p));
    signalAll(more, "SIGSTOP");
    signalAll([...left, ...more], "SIGKILL");
    // Killed processes turn into zombies until reaped; the scan skips zombies, so a short pause
    // is all the kernel needs before the next scan sees them gone.
    await new Promise((resolve) => setTimeout(resolve, round === 0 ? 5 : 20));
  }
  return processesWith(variable, value);
}

/** A running engine operation, as the fence knows it. */
export interface AdmittedOperation {
  /** Aborts when the fence closes; passed to the Automation API (which interrupts the CLI). */
  readonly signal: AbortSignal;
  /** The term this operation runs in (for the holder record). */
  readonly term: Term | undefined;
  /** The operation ended (either way). */
  done(): void;
}

/**
 * The gate between a replica's leadership and its engines. Closed until a term opens it; a term
 * that ends closes it, which aborts and kills whatever runs.
 */
export class EngineFence {
  /** Unique per process and fence: set in the engines' environment. */
  readonly marker: string;
  private term: Term | undefined;
  private isOpen: boolean;
  /** No operation may start at or after this (the lease may have passed on); unset: no limit. */
  private startBefore: number | undefined;
  private readonly running = new Set<AbortController>();
  private readonly clock: Clock;
  /** The last close()'s kill, until it ends (settled()). */
  private closing: Promise<unknown> = Promise.resolve();
  /**
   * Where this replica's operations record who holds each stack, for a backend that has no place
   * of its own for them (holder-leases.ts); the runners default to it. The records are the fence's
   * evidence: a new leader clears a lock only on their word.
   */
  readonly holders: HolderRecords | undefined;

  constructor(options: { identity: string; open?: boolean; clock?: Clock; holders?: HolderRecords }) {
    this.marker = `${options.identity}/${randomUUID()}`;
    this.holders = options.holders;
    this.isOpen = options.open ?? false;
    this.clock = options.clock ?? realClock;
  }

  /** The environment entries every engine process must carry. */
  env(): Record<string, string> {
    return { [ENGINE_OWNER_VARIABLE]: this.marker };
  }

  /** A term began: operations may run, recorded as this term's. */
  open(term: Term | undefined): void {
    this.term = term;
    this.isOpen = true;
    this.startBefore = undefined;
  }

  /**
   * A renewal succeeded: operations may start until `startBefore` (our clock). A replica that was
   * frozen past its lease and wakes up still believing it leads starts nothing new: its elector
   * has not noticed the loss yet, but this check has.
   */
  renewed(startBefore: number): void {
    this.startBefore = startBefore;
  }

  /**
   * No renewal came in time: the watchdog (armed for the same moment) may have killed engines
   * that this process never aborted. Their operations must keep their holder records.
   */
  isExpired(): boolean {
    return this.startBefore !== undefined && this.clock.now() >= this.startBefore;
  }

  isOpened(): boolean {
    return this.isOpen;
  }

  /**
   * Whether this replica may still write to the meta-cluster (write-gate.ts): the same test as an
   * engine's admission, so a term that ended, or a frozen replica past its renewal deadline, writes
   * no status, Event or finalizer beside the next leader.
   */
  mayWrite(): boolean {
    return this.isOpen && !this.isExpired();
  }

  /** Engine operations running now. */
  runningCount(): number {
    return this.running.size;
  }

  /** Lets one operation run, or throws FencedError when no term is open. */
  admit(what: string): AdmittedOperation {
    if (!this.mayWrite()) throw new FencedError(what);
    const controller = new AbortController();
    this.running.add(controller);
    return { signal: controller.signal, term: this.term, done: () => void this.running.delete(controller) };
  }

  /**
   * The term ended: refuse new operations, abort the running ones and kill every engine process.
   * Resolves with the pids still alive after the kill (empty when every engine is gone).
   */
  async close(): Promise<number[]> {
    this.isOpen = false;
    this.term = undefined;
    for (const op of this.running) op.abort(new FencedError("engine operation"));
    const kill = killEngines(this.marker);
    this.closing = kill.catch(() => undefined);
    return kill;
  }

  /**
   * Resolves once the last close()'s kill is over. The marker outlives a term: the next term's
   * engines must not start while that kill still scans, or it kills them too.
   */
  async settled(): Promise<void> {
    await this.closing;
  }
}

/** Who runs (or ran, until it was killed) an engine operation on a stack. */
export interface HolderRecord {
  readonly identity: string;
  /** The term's acquire time (ms), with `identity` its fencing token. */
  readonly acquiredAt: number;
  readonly operation: string;
  /** Operator process that ran it, and when it started (ISO); for people reading the record. */
  readonly pid: number;
  readonly startedAt: string;
}

/**
 * Where holder records are kept, where every replica sees the same ones: beside a `file://`
 * backend's stacks (holder-files.ts), or annotations of one Lease in the operator's namespace for
 * the other backends (holder-leases.ts). Asynchronous: a record is an API call away. `held` lists
 * the stacks of a project that have one, in one call, so a failover does not read a record per
 * object. `remove` with `expected` removes the record only while it is still that one: a record
 * another operation wrote since it was read stays (the pruning of orphans, holder-pruning.ts).
 */
export interface HolderRecords {
  read(project: string, stack: string): Promise<HolderRecord | undefined>;
  write(project: string, stack: string, record: HolderRecord): Promise<void>;
  remove(project: string, stack: string, expected?: HolderRecord): Promise<void>;
  held(project: string): Promise<ReadonlyMap<string, HolderRecord>>;
}

/** Whether two records are the same operation's: every field equal. */
export function sameHolderRecord(a: HolderRecord | undefined, b: HolderRecord | undefined): boolean {
  if (!a || !b) return a === b;
  return a.identity === b.identity && a.acquiredAt === b.acquiredAt && a.operation === b.operation && a.pid === b.pid && a.startedAt === b.startedAt;
}

/**
 * A record as read back, or undefined when it is not one (edited by hand, written by another
 * version): an unreadable record proves nothing, so the lock it would speak for is kept.
 */
export function parseHolderRecord(text: string | undefined): HolderRecord | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const r = value as Record<string, unknown>;
  const ok =
    typeof r.identity === "string" &&
    r.identity.length > 0 &&
    typeof r.acquiredAt === "number" &&
    Number.isFinite(r.acquiredAt) &&
    typeof r.operation === "string" &&
    typeof r.pid === "number" &&
    typeof r.startedAt === "string";
  return ok ? { identity: r.identity as string, acquiredAt: r.acquiredAt as number, operation: r.operation as string, pid: r.pid as number, startedAt: r.startedAt as string } : undefined;
}

export type LockDecision =
  /** No record: no operation of ours was cut short here; leave any lock alone. */
  | { readonly action: "keep"; readonly reason: string }
  /** The record is the current term's own: its operation may be running. Never cleared. */
  | { readonly action: "live"; readonly reason: string }
  /** The record is an ended term's: its engines were fenced; the lock is stale. */
  | { readonly action: "clear"; readonly reason: string };

/**
 * Whether a stack's lock may be cleared by the leader of `current`. Only a record of another term
 * proves it: that term ended, and its replica killed its engines before the lease could pass on
 * (or was killed by its watchdog). Without a record the lock is someone else's (a person running
 * `pulumi`, an operator without fencing): kept, and the stack's recovery reports it.
 */
export function decideLock(record: HolderRecord | undefined, current: Term | undefined): LockDecision {
  if (!record) return { action: "keep", reason: "no holder record: no update of this operator was interrupted here" };
  const who = `${record.identity} (term acquired ${new Date(record.acquiredAt).toISOString()}, ${record.operation} started ${record.startedAt})`;
  if (current && record.identity === current.identity && record.acquiredAt === current.acquiredAt) {
    return { action: "live", reason: `held by the current term, ${who}` };
  }
  return { action: "clear", reason: `held by an ended term, ${who}` };
}

/**
 * The watchdog's code, run by `node -e` so it needs no build step: it reads `arm <ms>` lines
 * (engines may run that much longer), `kill` and `exit`; at the deadline, on `kill`, or when its
 * stdin closes (the operator died), it kills every process with the marker.
 */
export const WATCHDOG_SOURCE = String.raw`
const fs = require("node:fs");
const marker = process.argv[1];
const needle = Buffer.from("\0" + ${JSON.stringify(ENGINE_OWNER_VARIABLE)} + "=" + marker + "\0");
const first = Buffer.from(${JSON.stringify(ENGINE_OWNER_VARIABLE)} + "=" + marker + "\0");
function scan() {
  const pids = [];
  for (const e of fs.readdirSync("/proc")) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const stat = fs.readFileSync("/proc/" + e + "/stat", "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") continue;
      const env = fs.readFileSync("/proc/" + e + "/environ");
      if (env.includes(needle) || env.subarray(0, first.length).equals(first)) pids.push(pid);
    } catch {}
  }
  return pids;
}
function sig(pids, s) { for (const p of pids) { try { process.kill(p, s); } catch {} } }
function killAll() {
  for (let i = 0; i < 50; i++) {
    const pids = scan();
    if (pids.length === 0) return;
    sig(pids, "SIGSTOP");
    sig(scan(), "SIGSTOP");
    sig(scan(), "SIGKILL");
    const until = Date.now() + 20;
    while (Date.now() < until) {}
  }
}
let timer;
let buffered = "";
// The operator may be gone when we answer: a closed pipe must not end us before the kill.
process.stdout.on("error", () => {});
process.stdin.on("data", (chunk) => {
  buffered += chunk;
  let nl;
  while ((nl = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, nl).trim();
    buffered = buffered.slice(nl + 1);
    // killAll runs synchronously: by the time a "sync" is read, every kill before it is over.
    if (line === "sync") { process.stdout.write("ok\n"); continue; }
    clearTimeout(timer);
    if (line.startsWith("arm ")) timer = setTimeout(killAll, Math.max(0, Number(line.slice(4))));
    else if (line === "kill") killAll();
    else if (line === "exit") process.exit(0);
  }
});
process.stdin.on("end", () => { killAll(); process.exit(0); });
`;

/**
 * The out-of-process half of the fence. `arm(ms)` after each renewal: if no later `arm` comes
 * within `ms`, the watchdog kills the engines itself. It runs detached (own process group) and
 * exits when told or when the operator's end of its stdin closes (after killing the engines).
 */
export class FenceWatchdog {
  private readonly child: ChildProcess;
  /** settled() calls waiting for the watchdog's "ok", oldest first. */
  private readonly waiting: Array<() => void> = [];

  constructor(marker: string, nodePath = process.execPath) {
    this.child = spawn(nodePath, ["-e", WATCHDOG_SOURCE, marker], { detached: true, stdio: ["pipe", "pipe", "ignore"] });
    // Its death must not take the operator down, nor keep the event loop alive.
    this.child.on("error", () => undefined);
    this.child.stdin?.on("error", () => undefined);
    this.child.stdout?.on("data", (chunk: Buffer) => {
      for (const c of chunk.toString()) if (c === "\n") this.waiting.shift()?.();
    });
    // A watchdog that is gone has nothing left to finish.
    this.child.once("exit", () => {
      for (const resolve of this.waiting.splice(0)) resolve();
    });
    this.child.unref();
    (this.child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    (this.child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  arm(ms: number): void {
    this.child.stdin?.write(`arm ${Math.max(0, Math.floor(ms))}\n`);
  }

  kill(): void {
    this.child.stdin?.write("kill\n");
  }

  /**
   * Resolves once the watchdog has handled everything sent before, a kill in progress included.
   * The marker outlives a term: a new term's engines must not start while the last term's kill
   * still scans, or it kills them too (a new term is armed first, so no old timer fires later).
   */
  settled(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null || !this.child.stdin?.writable) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin?.write("sync\n");
    });
  }

  /** Stops the watchdog without killing anything (a clean shutdown: no engine runs). */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.stdin?.end("exit\n");
    await exited;
  }
}
