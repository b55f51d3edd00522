/**
 * Short SSH operations on a worker host outside Pulumi: the cheap drift check (a short SSH
 * probe, not a full refresh: docs/architecture.md, "Machines: one stack each, checked without
 * the engine") and the first step of a repair. A Pulumi refresh of a
 * machine costs a CLI process and a state round trip; a probe is one `ssh` run of a read-only
 * script that prints one JSON line.
 *
 * It runs the OpenSSH client exactly as SshStep does (src/host/ssh-client.ts): the host key
 * pinned in a private known_hosts with StrictHostKeyChecking=yes, credentials in 0600 files of a
 * private directory removed afterwards, a password through SSH_ASKPASS, the user in `-l` and the
 * host after `--`, and an environment without the operator's secrets. The scripts are built
 * from the same pieces as the WorkerNode's verify step, so a probe and a verify read the same
 * versions, and a restart starts the daemons the same way an install does.
 */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { performance } from "node:perf_hooks";
import type { ObservedVersions } from "../api/v1alpha1";
import { childEnv, privateRunDir, scrubCredentials, sshDestination, sshFailureReason, sshInvocation, type SshConnection } from "./ssh-client";
import { JOINED_FUNCTION, observedVersionLines } from "./scripts/node";
import { stopKubeletAndPodsLines } from "./scripts/node";
import { lockedLines, restartLines, runningCheckLines, runningStatusLines, serviceFunctions, ServiceManager } from "./scripts/services";
import { bashCommand, preamble } from "./scripts/shell";
import { asRoot } from "./scripts/sudo";

/** How to reach the host: a Machine's `spec.ip` and `spec.ssh` with the credentials from its Secret. */
export type HostConnection = SshConnection;

/** Where kube-on-kube put its files on the host and how its daemons are run (the WorkerNode's layout). */
export interface HostLayoutLike {
  readonly installRoot: string;
  readonly serviceManager: "systemd" | "process" | "none";
}

export interface ProbeResult {
  /** Versions read back from the host's package stamps, as the verify step reports them. */
  readonly observedVersions: ObservedVersions;
  /** Whether each daemon runs now. Always false with serviceManager `none` (nothing is managed). */
  readonly services: { readonly containerd: boolean; readonly kubelet: boolean };
  /** The whole operation, connection included. */
  readonly durationMs: number;
}

export type HostOperation = "probe" | "restart";

export interface HostProbeOptions {
  /** Kill an operation (connection included) after this many seconds. Default 60. */
  readonly timeoutSeconds?: number;
  /** Told about every operation (metrics). Must not throw; a throw is ignored. */
  readonly onOperation?: (op: HostOperation, result: "success" | "error", durationMs: number) => void;
  /**
   * Connect to hosts without `hostKey` (their identity is then not checked), for Machines admitted
   * with `allowUnknownHostKey`. Default false: such a connection is refused before ssh runs.
   */
  readonly allowUnknownHostKey?: boolean;
  /**
   * Where the per-operation credential directories (0700, removed afterwards) are made. Default
   * `$KOK_SSH_DIR`, else the OS temp directory. The operator gives the directory on its work
   * volume that it empties at start (credentials-dir.ts), so a killed operator leaves no key for long.
   */
  readonly credentialsDir?: string;
}

/** The probe's script: the verify step's version read-back, plus which daemons run; never fails on a stopped one. */
export function probeScript(layout: HostLayoutLike): string {
  return bashCommand(`${preamble("probe", layout.installRoot)}${serviceFunctions(layout.serviceManager)}${observedVersionLines()}${runningStatusLines(layout.serviceManager)}${JOINED_FUNCTION}printf '{"observedVersions":{%s},"services":{"containerd":%s,"kubelet":%s}}\\n' "$(joined "\${versions[@]}")" "$running_containerd" "$running_kubelet"
`);
}

/**
 * Restarts containerd, then the kubelet (which needs the runtime), and fails unless both run
 * afterwards. With `stopPods` (the machine's Node was deleted) the kubelet is stopped first and the
 * Pods' containers ended, as the Machine's cleanup does, so the kubelet registers a clean host.
 */
export function restartScript(layout: HostLayoutLike, opts: { stopPods?: boolean } = {}): string {
  const m = layout.serviceManager;
  const pods = opts.stopPods ? stopKubeletAndPodsLines(m) : "";
  return bashCommand(`${preamble("restart", layout.installRoot)}${serviceFunctions(m)}changed=1
${lockedLines(m, `${pods}${restartLines(m, "containerd", "changed", { locked: false })}${restartLines(m, "kubelet", "changed", { locked: false })}${runningCheckLines(m)}`)}`);
}

/** The probe's result line; throws naming what was wrong (the caller adds the host). */
export function parseProbeOutput(stdout: string): Pick<ProbeResult, "observedVersions" | "services"> {
  const last = stdout.trim().split("\n").pop() ?? "";
  let parsed: unknown;
  try {
    parsed = JSON.parse(last);
  } catch {
    throw new Error(`the probe printed no result line (last line: ${JSON.stringify(last.slice(0, 200))})`);
  }
  const result = parsed as { observedVersions?: Record<string, unknown>; services?: Record<string, unknown> };
  const versions = result.observedVersions;
  const services = result.services;
  if (!versions || typeof versions !== "object" || !services || typeof services.containerd !== "boolean" || typeof services.kubelet !== "boolean") {
    throw new Error(`the probe's result line has an unexpected shape: ${JSON.stringify(last.slice(0, 200))}`);
  }
  const observedVersions: ObservedVersions = {};
  for (const name of ["containerd", "kubelet", "cni", "runc"] as const) {
    if (typeof versions[name] === "string") observedVersions[name] = versions[name];
  }
  return { observedVersions, services: { containerd: services.containerd, kubelet: services.kubelet } };
}

export class HostProbe {
  private readonly timeoutSeconds: number;

  constructor(private readonly opts: HostProbeOptions = {}) {
    this.timeoutSeconds = opts.timeoutSeconds ?? 60;
    if (!(this.timeoutSeconds > 0)) throw new Error(`HostProbe: timeoutSeconds must be positive, got ${opts.timeoutSeconds}`);
  }

  /** One ssh round trip: the installed versions and whether containerd and the kubelet run. */
  async probe(conn: HostConnection, layout: HostLayoutLike): Promise<ProbeResult> {
    return this.measure("probe", conn, async () => {
      const stdout = await this.run("probe", conn, probeScript(layout));
      try {
        return parseProbeOutput(stdout);
      } catch (err) {
        throw new Error(`host probe of ${sshDestination(conn)} failed: ${(err as Error).message}`);
      }
    });
  }

  /**
   * (Re)starts containerd, then the kubelet, with the layout's service manager: `systemctl restart`
   * with systemd, the pid-file functions of the install scripts with `process`. With `none`
   * kube-on-kube starts nothing, so this refuses.
   */
  async restartServices(conn: HostConnection, layout: HostLayoutLike, opts: { stopPods?: boolean } = {}): Promise<void> {
    await this.measure("restart", conn, async () => {
      if (layout.serviceManager === ServiceManager.None) {
        throw new Error(`cannot restart services on ${sshDestination(conn)}: its serviceManager is none, so kube-on-kube does not run containerd or the kubelet there`);
      }
      await this.run("restart", conn, restartScript(layout, opts));
    });
  }

  private async measure<T>(op: HostOperation, conn: HostConnection, body: () => Promise<T>): Promise<T & { durationMs: number }> {
    const started = performance.now();
    let outcome: "success" | "error" = "error";
    try {
      const value = await body();
      outcome = "success";
      return { ...value, durationMs: performance.now() - started };
    } catch (err) {
      // Whatever produced the message, this connection's credentials do not leave it (the
      // operator's status and Event writers redact everything else they know of on top).
      throw new Error(scrubCredentials((err as Error).message, [conn.privateKey, conn.password]).replace(/\s*\n\s*/g, " | "));
    } finally {
      try {
        this.opts.onOperation?.(op, outcome, performance.now() - started);
      } catch {
        // A broken metrics hook must not turn a probe into a failure.
      }
    }
  }

  private async run(op: HostOperation, conn: HostConnection, script: string): Promise<string> {
    const where = sshDestination(conn);
    if (!conn.hostKey && !this.opts.allowUnknownHostKey) {
      throw new Error(`host ${op} of ${where} refused: no ssh.hostKey is pinned, so the host cannot be authenticated`);
    }
    if (!conn.privateKey && !conn.password) {
      throw new Error(`host ${op} of ${where} refused: neither a private key nor a password was given`);
    }
    const dir = privateRunDir(this.opts.credentialsDir);
    try {
      // One attempt with a short connect timeout: a probe that cannot connect is news, not something to wait out.
      // The probe reads root's files and a restart starts daemons: a user other than root goes through `sudo -n`.
      const ssh = sshInvocation(conn, dir, asRoot(conn.user, script), { connectTimeoutSeconds: Math.min(10, this.timeoutSeconds), connectionAttempts: 1 });
      return await new Promise<string>((resolve, reject) => {
        const child = spawn("ssh", ssh.args, { env: childEnv(ssh.env), stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill("SIGKILL");
        }, this.timeoutSeconds * 1000);
        child.once("error", (e) => {
          clearTimeout(timer);
          reject(new Error(`host ${op} of ${where} failed: cannot run ssh: ${e.message}`));
        });
        child.once("close", (code) => {
          clearTimeout(timer);
          if (code === 0) return resolve(stdout);
          const why = timedOut ? `timed out after ${this.timeoutSeconds}s and was killed` : sshFailureReason(conn, code, stderr, stdout);
          reject(new Error(`host ${op} of ${where} failed (exit ${code}): ${why}`));
        });
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
