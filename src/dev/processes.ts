/**
 * Background processes that outlive the `kok` command that started them. Each gets its own
 * process group (so a stop reaches its children), a log file, and a pid file that also records
 * what the process must look like, so a reused pid is never mistaken for ours.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

export interface PidRecord {
  readonly pid: number;
  /** A string that is part of the process's /proc/<pid>/cmdline while it is ours. */
  readonly marker: string;
  readonly startedAt: string;
}

export interface StartOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly pidFile: string;
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Defaults to the command path. */
  readonly marker?: string;
}

function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
  } catch {
    return undefined;
  }
}

function isZombie(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

export function readPidFile(pidFile: string): PidRecord | undefined {
  if (!existsSync(pidFile)) return undefined;
  try {
    return JSON.parse(readFileSync(pidFile, "utf8")) as PidRecord;
  } catch {
    return undefined;
  }
}

/** True while the recorded process is alive and is still the one we started. */
export function isAlive(record: PidRecord | undefined): record is PidRecord {
  if (!record) return false;
  const line = cmdline(record.pid);
  return line !== undefined && line.includes(record.marker) && !isZombie(record.pid);
}

/**
 * True once the process a pid file names has exited (or is a zombie). Unlike `isAlive` it does not
 * read the command line, which is briefly empty while a process execs (nsenter → containerd): a
 * wait that asks "did what we just started die?" must not take that moment for an exit (seen once
 * in CI: "containerd exited" with an empty log, 0.2 s after the start).
 */
export function hasExited(pidFile: string): boolean {
  const record = readPidFile(pidFile);
  if (!record) return true;
  try {
    process.kill(record.pid, 0);
  } catch {
    return true;
  }
  return isZombie(record.pid);
}

export function runningFromPidFile(pidFile: string): PidRecord | undefined {
  const record = readPidFile(pidFile);
  return isAlive(record) ? record : undefined;
}

/** Starts a detached process writing to `logFile` (appended) and records it in `pidFile`. */
export function startBackground(opts: StartOptions): PidRecord {
  mkdirSync(dirname(opts.pidFile), { recursive: true });
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const log = openSync(opts.logFile, "a");
  try {
    const child = spawn(opts.command, opts.args, {
      detached: true,
      stdio: ["ignore", log, log],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    if (child.pid === undefined) throw new Error(`could not start ${opts.command}`);
    child.unref();
    const record: PidRecord = { pid: child.pid, marker: opts.marker ?? opts.command, startedAt: new Date().toISOString() };
    writeFileSync(opts.pidFile, JSON.stringify(record) + "\n");
    return record;
  } finally {
    closeSync(log);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * SIGTERM to the process group, then SIGKILL after `graceMs`; resolves once the process is gone.
 * Returns false when there was nothing of ours to stop.
 */
export async function stopProcess(record: PidRecord | undefined, graceMs = 10_000): Promise<boolean> {
  if (!isAlive(record)) return false;
  signalGroup(record.pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (isAlive(record) && Date.now() < deadline) await sleep(100);
  if (isAlive(record)) {
    signalGroup(record.pid, "SIGKILL");
    while (isAlive(record)) await sleep(50);
  }
  return true;
}

export async function stopFromPidFile(pidFile: string, graceMs?: number): Promise<boolean> {
  const stopped = await stopProcess(readPidFile(pidFile), graceMs);
  rmSync(pidFile, { force: true });
  return stopped;
}

/**
 * Stops the process a daemon recorded itself in `pidFile` (just the number, as sshd and the
 * worker scripts write it), if it still runs and its command line holds `marker`; removes the file.
 */
export async function stopFromPlainPidFile(pidFile: string, marker: string, graceMs?: number): Promise<boolean> {
  if (!existsSync(pidFile)) return false;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  const stopped = Number.isInteger(pid) && pid > 0 ? await stopProcess({ pid, marker, startedAt: "" }, graceMs) : false;
  rmSync(pidFile, { force: true });
  return stopped;
}
