/**
 * The operator as users run it (`kok operator`, the compiled `dist/cli/main.js` the package's bin
 * points at), in its own process so its memory and CPU are its own: the build is made once per
 * bench run from the working tree (`tsc -p tsconfig.build.json`), then spawned as
 * `node dist/cli/main.js operator …`, so the pid measured is the operator's. Its JSON log lines are parsed as they come:
 * "operator started" marks caches synced, and every "reconciled" line gives when that reconcile
 * started (its log time minus its duration).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { writeDevAdminPolicy } from "../src/dev/dev-policy";

const REPO = path.resolve(__dirname, "..");

export interface ReconcileLine {
  readonly kind: string;
  readonly key: string;
  readonly result: string;
  /** Epoch ms at which the reconcile started. */
  readonly startedAt: number;
  readonly durationMs: number;
}

export interface OperatorProcess {
  readonly pid: number;
  /** Epoch ms of the spawn. */
  readonly spawnedAt: number;
  /** Epoch ms of the "operator started" line (informers listed and synced), once seen. */
  startedAt(): number | undefined;
  /** The exit code or signal once the process ended (it should not before stop()). */
  exited(): string | undefined;
  readonly reconciles: ReconcileLine[];
  /** Lines at level warn/error, for the report when something goes wrong. */
  readonly problems: string[];
  /** Calls `fn` on every reconcile line from now on. */
  onReconcile(fn: (line: ReconcileLine) => void): void;
  usage(): ProcessUsage;
  stop(): Promise<void>;
}

export interface ProcessUsage {
  /** Peak resident set (VmHWM), MB. */
  readonly peakRssMb: number;
  /** User + system CPU of the process and of its children it has waited for (engine processes), s. */
  readonly cpuSeconds: number;
}

const CLOCK_TICKS = 100;

/** Peak RSS and CPU of a live process, from /proc. */
export function processUsage(pid: number): ProcessUsage {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  // Fields after the parenthesised command name: utime stime cutime cstime are 14..17 (1-based).
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  return { peakRssMb: hwm / 1024, cpuSeconds: ticks / CLOCK_TICKS };
}

let built = false;

/** Compiles src/ into dist/ once per bench run, so the operator measured is the current code. */
function buildOperator(): string {
  if (!built) {
    execFileSync(process.execPath, [path.join(REPO, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(REPO, "tsconfig.build.json")], { cwd: REPO, stdio: "inherit" });
    built = true;
  }
  return path.join(REPO, "dist", "cli", "main.js");
}

export function spawnOperator(args: readonly string[], env: Record<string, string>): OperatorProcess {
  const main = buildOperator();
  const spawnedAt = Date.now();
  // The benchmarks' hosts are the local environment's loopback sshd hosts: its admin policy allows them.
  const policy = writeDevAdminPolicy(mkdtempSync(path.join(tmpdir(), "kok-bench-policy-")));
  const child: ChildProcess = spawn(process.execPath, [main, "operator", "--policy", policy, ...args], {
    cwd: REPO,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let started: number | undefined;
  const reconciles: ReconcileLine[] = [];
  const problems: string[] = [];
  const listeners: ((line: ReconcileLine) => void)[] = [];
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  createInterface({ input: child.stdout! }).on("line", (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    const at = Date.parse(String(line.time));
    if (line.msg === "operator started") started = at;
    if (line.level === "warn" || line.level === "error") problems.push(text.slice(0, 400));
    if (line.msg === "reconciled") {
      const durationMs = Number(line.durationMs);
      const r: ReconcileLine = { kind: String(line.controller), key: String(line.key), result: String(line.result), durationMs, startedAt: at - durationMs };
      reconciles.push(r);
      for (const fn of listeners) fn(r);
    }
  });
  createInterface({ input: child.stderr! }).on("line", (text) => problems.push(text.slice(0, 400)));
  return {
    pid: child.pid!,
    spawnedAt,
    startedAt: () => started,
    exited: () => (child.exitCode !== null ? `exit ${child.exitCode}` : child.signalCode ?? undefined),
    reconciles,
    problems,
    onReconcile: (fn) => void listeners.push(fn),
    usage: () => processUsage(child.pid!),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
