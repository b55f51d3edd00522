/**
 * One container of a Pod as a local process: started with `ip netns exec` in the Pod's network
 * namespace (and, through it, a private mount namespace where the volumes are bind-mounted) and
 * its own UTS namespace carrying the Pod's hostname,
 * restarted with capped exponential backoff when it exits (restartPolicy Always, as Deployments
 * and StatefulSets require), probed, and stopped with SIGTERM then SIGKILL to its process group.
 * An exec probe enters the running process's mount, network and UTS namespaces with `nsenter`, so
 * it sees the container's volumes where the container does and reaches its loopback.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type * as k8s from "@kubernetes/client-node";
import { runProbe, type ProbeResult } from "./probes";

export interface ContainerLaunch {
  readonly container: k8s.V1Container;
  readonly netns: string;
  readonly podIP: string;
  /** argv with argv[0] already the local binary's path. */
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Shell run before the binary: hostname and bind mounts (see containerPrelude). */
  readonly prelude: string;
  /** An exec probe's command with its first word replaced by the local binary; throws when the image has none. */
  readonly resolveCommand: (command: readonly string[]) => string[];
  readonly logFile: string;
  readonly pidFile: string;
}

export type ContainerState =
  | { readonly kind: "waiting"; readonly reason: string; readonly message?: string }
  | { readonly kind: "running"; readonly startedAt: Date }
  | { readonly kind: "terminated"; readonly exitCode: number; readonly reason: string; readonly startedAt: Date; readonly finishedAt: Date };

const BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MAX_BACKOFF_MS = 30_000;
/** How much of a failing exec probe's output goes into its message (a kubelet keeps a little too). */
const PROBE_OUTPUT_CHARS = 512;

/**
 * Runs `argv` in the namespaces of process `pid` with the container's environment; exit 0 is
 * success. Killed (its whole group) after `timeoutMs`, as a kubelet ends a probe that overruns.
 */
export function execInNamespacesOf(pid: number, argv: readonly string[], env: Readonly<Record<string, string>>, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const child = spawn("nsenter", [`--target=${pid}`, "--mount", "--net", "--uts", "--", ...argv], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: BASE_PATH, ...env },
    });
    let output = "";
    const collect = (chunk: Buffer) => {
      if (output.length < PROBE_OUTPUT_CHARS) output = (output + chunk.toString()).slice(0, PROBE_OUTPUT_CHARS);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve({ ok: false, message: `exec ${argv[0]}: ${error.message}` });
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      if (timedOut) resolve({ ok: false, message: `command timed out after ${timeoutMs} ms` });
      else if (code === 0) resolve({ ok: true });
      else resolve({ ok: false, message: `command exited with ${code}: ${output.trim()}` });
    });
  });
}

export class ContainerRunner {
  state: ContainerState = { kind: "waiting", reason: "ContainerCreating" };
  lastTerminated?: Extract<ContainerState, { kind: "terminated" }>;
  restartCount = 0;
  started = false;
  ready = false;
  private child?: ChildProcess;
  private stopping = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private exited?: Promise<void>;

  constructor(
    private readonly launch: ContainerLaunch,
    private readonly onChange: () => void,
    private readonly log: (line: string) => void,
  ) {}

  get name(): string {
    return this.launch.container.name;
  }

  start(): void {
    if (this.stopping) return;
    const { argv, netns, logFile } = this.launch;
    mkdirSync(dirname(logFile), { recursive: true });
    const fd = openSync(logFile, "a");
    writeSync(fd, `--- ${new Date().toISOString()} kok dev node: starting ${this.name} (restart ${this.restartCount}) in netns ${netns}\n`);
    // Own network namespace (and, through `ip netns exec`, a private mount namespace), own hostname.
    const child = spawn("ip", ["netns", "exec", netns, "unshare", "--uts", "/bin/sh", "-c", this.launch.prelude, ...argv], {
      detached: true,
      stdio: ["ignore", fd, fd],
      // Only the Pod's environment, as in a container; PATH so the mount prelude finds its tools.
      env: { PATH: BASE_PATH, ...this.launch.env },
    });
    closeSync(fd);
    this.child = child;
    const startedAt = new Date();
    if (child.pid) {
      mkdirSync(dirname(this.launch.pidFile), { recursive: true });
      writeFileSync(this.launch.pidFile, JSON.stringify({ pid: child.pid, marker: argv[0], startedAt: startedAt.toISOString() }));
    }
    this.state = { kind: "running", startedAt };
    this.started = !this.launch.container.startupProbe;
    this.ready = false;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.onExit(code, signal, startedAt);
        resolve();
      });
      child.once("error", (error) => {
        this.log(`${this.name}: ${error.message}`);
        // A process that never started emits no "exit": count it as a failed start.
        if (child.pid === undefined) {
          this.onExit(127, null, startedAt);
          resolve();
        }
      });
    });
    this.startProbes(child);
    this.onChange();
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null, startedAt: Date): void {
    this.clearTimers();
    this.child = undefined;
    const exitCode = code ?? 128 + (signal === "SIGKILL" ? 9 : 15);
    this.lastTerminated = { kind: "terminated", exitCode, reason: exitCode === 0 ? "Completed" : "Error", startedAt, finishedAt: new Date() };
    this.started = false;
    this.ready = false;
    if (this.stopping) {
      this.state = this.lastTerminated;
      this.onChange();
      return;
    }
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(this.restartCount, 5));
    this.log(`${this.name}: exited with ${signal ?? `code ${code}`}; restarting in ${delay} ms (log ${this.launch.logFile})`);
    this.state = { kind: "waiting", reason: "CrashLoopBackOff", message: `back-off ${delay / 1000}s restarting failed container ${this.name}` };
    this.onChange();
    this.after(delay, () => {
      this.restartCount++;
      this.start();
    });
  }

  private after(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  private clearTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  /** Startup probe first; readiness and liveness only once it succeeded, as a kubelet does. */
  private startProbes(child: ChildProcess): void {
    const c = this.launch.container;
    const alive = () => this.child === child && !this.stopping;
    const loop = (probe: k8s.V1Probe, onResult: (ok: boolean, failures: number, successes: number) => boolean) => {
      let failures = 0;
      let successes = 0;
      const tick = async () => {
        if (!alive()) return;
        const result = await runProbe(probe, this.launch.podIP, c, (command, timeoutMs) => this.execProbe(child, command, timeoutMs));
        if (!alive()) return;
        if (result.ok) {
          successes++;
          failures = 0;
        } else {
          failures++;
          successes = 0;
        }
        if (onResult(result.ok, failures, successes)) this.after((probe.periodSeconds ?? 10) * 1000, () => void tick());
      };
      this.after((probe.initialDelaySeconds ?? 0) * 1000, () => void tick());
    };
    const steadyProbes = () => {
      if (c.readinessProbe) {
        loop(c.readinessProbe, (ok, failures, successes) => {
          const ready = ok ? successes >= (c.readinessProbe?.successThreshold ?? 1) || this.ready : failures < (c.readinessProbe?.failureThreshold ?? 3) && this.ready;
          if (ready !== this.ready) {
            this.ready = ready;
            this.onChange();
          }
          return true;
        });
      } else {
        this.ready = true;
        this.onChange();
      }
      if (c.livenessProbe) {
        loop(c.livenessProbe, (ok, failures) => {
          if (ok || failures < (c.livenessProbe?.failureThreshold ?? 3)) return true;
          this.log(`${this.name}: liveness probe failed ${failures} times; killing it`);
          this.kill("SIGKILL");
          return false;
        });
      }
    };
    if (c.startupProbe) {
      loop(c.startupProbe, (ok, failures) => {
        if (ok) {
          this.started = true;
          this.onChange();
          steadyProbes();
          return false;
        }
        if (failures >= (c.startupProbe?.failureThreshold ?? 3)) {
          this.log(`${this.name}: startup probe failed ${failures} times; killing it`);
          this.kill("SIGKILL");
          return false;
        }
        return true;
      });
    } else {
      steadyProbes();
    }
  }

  private async execProbe(child: ChildProcess, command: readonly string[], timeoutMs: number): Promise<ProbeResult> {
    if (!child.pid) return { ok: false, message: "container process has not started" };
    let argv: string[];
    try {
      argv = this.launch.resolveCommand(command);
    } catch (error) {
      return { ok: false, message: (error as Error).message };
    }
    return execInNamespacesOf(child.pid, argv, this.launch.env, timeoutMs);
  }

  private kill(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (!pid) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.clearTimers();
    if (this.child && this.exited) {
      this.kill("SIGTERM");
      const killTimer = setTimeout(() => this.kill("SIGKILL"), graceMs);
      await this.exited;
      clearTimeout(killTimer);
    }
    rmSync(this.launch.pidFile, { force: true });
  }
}
