/**
 * A real etcd for the integration tests (the toolchain's), TLS on the client port with client
 * certificates required, on loopback, with its log in a throwaway directory; and the ways a test
 * talks to it: etcd's JSON gateway with a client certificate, and the io of `kok etcd` commands
 * called in-process.
 *
 * Members that name their peers (https://<member>.<peer service>...:2380, as the product's
 * StatefulSet does) need those names to resolve to loopback addresses for etcd alone: each such
 * member runs in a mount namespace of its own (`unshare`) where the test's hosts file is bind-
 * mounted over /etc/hosts, so nothing of the machine changes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { Agent, request } from "node:https";
import * as path from "node:path";
import type { EtcdCommandIo } from "../../src/cli/etcd";
import { isPortFree } from "../../src/dev/ports";
import { toolchainBinary } from "../../src/dev/toolchain";
import { eventually } from "./poll";

export interface Etcd {
  readonly url: string;
  readonly process: ChildProcess;
  readonly log: string;
}

export interface EtcdProcessOptions {
  /** Where its log goes (`<name>.log`). */
  readonly dir: string;
  readonly name: string;
  /** etcd's flags, without the leading dashes. */
  readonly flags: Readonly<Record<string, string>>;
  /** The client URL the test talks to. */
  readonly url: string;
  /** Environment added to etcd's (ETCD_INITIAL_CLUSTER...). */
  readonly env?: Readonly<Record<string, string>>;
  /** A hosts file etcd alone resolves names with (see the file's comment). */
  readonly hostsFile?: string;
}

/** Starts one etcd process with exactly these flags; its output goes to `<dir>/<name>.log`. */
export function spawnEtcd(o: EtcdProcessOptions): Etcd {
  const log = path.join(o.dir, `${o.name}.log`);
  const fd = openSync(log, "a");
  const args = Object.entries(o.flags).map(([flag, value]) => `--${flag}=${value}`);
  const env = { ...process.env, ...o.env };
  const child = o.hostsFile
    ? // unshare execs (no fork, no PID namespace), so the child's PID ends up etcd's and signals reach it.
      spawn(
        "unshare",
        [...(process.getuid?.() === 0 ? [] : ["--user", "--map-root-user"]), "--mount", "--", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', o.hostsFile, toolchainBinary("etcd"), ...args],
        { stdio: ["ignore", fd, fd], env },
      )
    : spawn(toolchainBinary("etcd"), args, { stdio: ["ignore", fd, fd], env });
  closeSync(fd);
  return { url: o.url, process: child, log };
}

/** One member on 127.0.0.1 with plain-HTTP peers, its own cluster unless `initial` says which. */
export function startEtcd(dir: string, name: string, dataDir: string, clientPort: number, peerPort: number, pki: string, initial?: { cluster: string; token: string }): Etcd {
  const url = `https://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return spawnEtcd({
    dir,
    name,
    url,
    flags: {
      name,
      "data-dir": dataDir,
      "listen-client-urls": url,
      "advertise-client-urls": url,
      "listen-peer-urls": peer,
      "initial-advertise-peer-urls": peer,
      "initial-cluster": initial?.cluster ?? `${name}=${peer}`,
      "initial-cluster-token": initial?.token ?? `${name}-token`,
      "client-cert-auth": "true",
      "trusted-ca-file": `${pki}/ca.crt`,
      "cert-file": `${pki}/etcd-server.crt`,
      "key-file": `${pki}/etcd-server.key`,
      "listen-metrics-urls": "",
    },
  });
}

/** The last lines of an etcd's log, for a failure message. */
export function logTail(etcd: Etcd, lines = 5): string {
  return readFileSync(etcd.log, "utf8").split("\n").slice(-lines).join("\n");
}

/** Polls until etcd serves; an etcd that exited fails at once with its log. */
export function serving(etcd: Etcd, agent: Agent) {
  return eventually(
    `etcd ${etcd.url} answers over TLS`,
    async () => {
      if (etcd.process.exitCode !== null) throw new Error(`etcd exited with ${etcd.process.exitCode}: ${logTail(etcd)}`);
      return countKeys(etcd, agent).catch(() => undefined);
    },
    { timeoutMs: 30_000 },
  );
}

export async function stopEtcd(etcd: Etcd | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!etcd || etcd.process.exitCode !== null || etcd.process.signalCode !== null) return;
  const exited = new Promise((resolve) => etcd.process.once("exit", resolve));
  etcd.process.kill(signal);
  await exited;
}

/** etcd's JSON gateway (/v3/...) with the backup client's certificate: what an etcd client reads. */
export function gateway(etcd: Etcd, api: string, body: unknown, agent: Agent): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request(`${etcd.url}/v3/${api}`, { method: "POST", agent, headers: { "content-type": "application/json" }, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode !== 200) reject(new Error(`${api}: HTTP ${res.statusCode} ${text}`));
        else resolve(JSON.parse(text) as Record<string, unknown>);
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${api}: timed out`)));
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

export const b64 = (text: string) => Buffer.from(text).toString("base64");

export function agentFor(pki: string, client = "backup-client"): Agent {
  return new Agent({ ca: readFileSync(`${pki}/ca.crt`), cert: readFileSync(`${pki}/${client}.crt`), key: readFileSync(`${pki}/${client}.key`), keepAlive: true, maxSockets: 16 });
}

/** The number of keys under `k/`, the cluster ID and the revision of the member that answered. */
export async function countKeys(etcd: Etcd, agent: Agent): Promise<{ count: number; clusterId: string; revision: number }> {
  const answer = await gateway(etcd, "kv/range", { key: b64("k/"), range_end: b64("k0"), count_only: true }, agent);
  const header = answer.header as Record<string, unknown>;
  return { count: Number(answer.count ?? 0), clusterId: String(header.cluster_id), revision: Number(header.revision) };
}

/** `n` distinct free ports below the kernel's ephemeral range (see freePortBase). */
export async function freePorts(n: number): Promise<number[]> {
  const found = new Set<number>();
  while (found.size < n) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    if (!found.has(port) && (await isPortFree(port))) found.add(port);
  }
  return [...found];
}

export interface Captured {
  readonly io: EtcdCommandIo;
  readonly out: string[];
  readonly err: string[];
}

/** The io of a `kok etcd` command called in-process: what it prints, kept. */
export function capture(env: NodeJS.ProcessEnv, now: Date = new Date()): Captured {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { env, stdout: (t) => void out.push(t), stderr: (t) => void err.push(t), now: () => now }, out, err };
}
