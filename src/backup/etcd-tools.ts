/**
 * etcd's own tools, run as processes: `etcdctl snapshot save` (the client API's snapshot of one
 * member, over TLS with the backup's client certificate), `etcdutl snapshot status` (opens the
 * file as etcd would and reads its revision, key count and storage version) and `etcdutl snapshot
 * restore` (a new data dir with a new cluster ID). Their formats are theirs: we do not parse bbolt.
 */
import { spawn } from "node:child_process";

export interface ToolResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The last non-empty line of a tool's stderr, shortened: what goes into a one-line failure. */
export function lastLine(text: string, max = 300): string {
  const line =
    text
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)
      .pop() ?? "";
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/**
 * What went wrong, from an etcd tool's stderr: the line a Go program dies with (`Error: …`,
 * `panic: …`), and the cause gRPC buried in its retry logs (`connect: connection refused`,
 * `tls: bad certificate`, `x509: …`), which `context deadline exceeded` alone does not say.
 */
export function toolFailure(stderr: string, fallback: string): string {
  const lines = stderr.split("\n").map((l) => l.trim());
  const fatal = lines.find((l) => /^(Error|panic): /.test(l)) ?? lastLine(stderr);
  const cause = [...stderr.matchAll(/(connect: [a-z ]+|tls: [a-z ]+|x509: [^"\\]+|no such host|i\/o timeout)/g)].pop()?.[1];
  const text = [fatal.replace(/^Error: /, ""), cause && !fatal.includes(cause) ? `(${cause.trim()})` : ""].filter(Boolean).join(" ");
  return (text || fallback).slice(0, 400);
}

/** Runs a binary with a deadline (SIGKILL when it passes); output kept up to 1 MiB each. */
export function runTool(binary: string, args: readonly string[], timeoutMs: number): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    // No shell, and an environment without the store's credentials: etcd's tools need neither.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AWS_")));
    const child = spawn(binary, [...args], { stdio: ["ignore", "pipe", "pipe"], env });
    let stdout = "";
    let stderr = "";
    const cap = (text: string, more: Buffer) => (text.length < 1 << 20 ? text + more.toString("utf8") : text);
    child.stdout.on("data", (d: Buffer) => (stdout = cap(stdout, d)));
    child.stderr.on("data", (d: Buffer) => (stderr = cap(stderr, d)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`${binary}: ${error.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (timedOut) stderr += `\nkilled after ${Math.round(timeoutMs / 1000)} s (--timeout)`;
      resolve({ code, stdout, stderr });
    });
  });
}

export interface TlsFiles {
  readonly cacert: string;
  readonly cert: string;
  readonly key: string;
}

const clientFlags = (endpoint: string, tls: TlsFiles) => [`--endpoints=${endpoint}`, `--cacert=${tls.cacert}`, `--cert=${tls.cert}`, `--key=${tls.key}`, "--dial-timeout=5s"];

/** `etcdctl snapshot save` from one endpoint into `file`; throws with etcdctl's own words. */
export async function snapshotSave(etcdctl: string, endpoint: string, tls: TlsFiles, file: string, timeoutMs: number): Promise<void> {
  const result = await runTool(etcdctl, [...clientFlags(endpoint, tls), "snapshot", "save", file], timeoutMs);
  if (result.code !== 0) throw new Error(`etcdctl snapshot save from ${endpoint}: ${toolFailure(result.stderr || result.stdout, `exit ${result.code}`)}`);
}

export interface SnapshotStatus {
  readonly hash: number;
  readonly revision: number;
  readonly totalKey: number;
  readonly totalSize: number;
  /** The storage version etcd wrote (`3.6.0`); "" from a 3.4 snapshot, which records none. */
  readonly version: string;
}

/** Checks etcdutl's JSON strictly: a number where a number is meant, nothing else trusted. */
export function parseSnapshotStatus(text: string): SnapshotStatus {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.trim());
  } catch {
    throw new Error(`etcdutl snapshot status: not JSON: ${lastLine(text, 200)}`);
  }
  const o = (parsed ?? {}) as Record<string, unknown>;
  for (const field of ["hash", "revision", "totalKey", "totalSize"]) {
    if (!Number.isSafeInteger(o[field]) || (o[field] as number) < 0) throw new Error(`etcdutl snapshot status: ${field} is not a non-negative integer`);
  }
  return { hash: o.hash as number, revision: o.revision as number, totalKey: o.totalKey as number, totalSize: o.totalSize as number, version: typeof o.version === "string" ? o.version : "" };
}

/** `etcdutl snapshot status -w json`: fails on a file etcd could not open. */
export async function snapshotStatus(etcdutl: string, file: string, timeoutMs: number): Promise<SnapshotStatus> {
  const result = await runTool(etcdutl, ["snapshot", "status", file, "-w", "json"], timeoutMs);
  if (result.code !== 0) throw new Error(`etcdutl snapshot status: ${toolFailure(result.stderr || result.stdout, `exit ${result.code}`)}`);
  return parseSnapshotStatus(result.stdout);
}

/**
 * How far a restore moves the revision forward (etcdutl's --bump-revision, with --mark-compacted):
 * clients that survived the loss (a worker's kubelet, kube-proxy, flannel) hold watches at revisions of the old etcd; past
 * them, and with everything before compacted, their watches fail and they list again instead of
 * waiting for revisions that will never mean the same thing.
 */
export const RESTORE_BUMP_REVISION = 1_000_000_000;

export interface RestoreMember {
  readonly name: string;
  readonly initialCluster: string;
  readonly initialClusterToken: string;
  readonly initialAdvertisePeerUrls: string;
}

/**
 * `etcdutl snapshot restore` into `dataDir` (which must not exist). etcdutl checks the hash etcd
 * appended to the snapshot, and writes a new cluster ID and member IDs from the flags: every
 * member restored with the same flags agrees on them. The revision moves RESTORE_BUMP_REVISION on.
 */
export async function snapshotRestore(etcdutl: string, file: string, dataDir: string, member: RestoreMember, timeoutMs: number): Promise<void> {
  const args = [
    "snapshot",
    "restore",
    file,
    `--data-dir=${dataDir}`,
    `--name=${member.name}`,
    `--initial-cluster=${member.initialCluster}`,
    `--initial-cluster-token=${member.initialClusterToken}`,
    `--initial-advertise-peer-urls=${member.initialAdvertisePeerUrls}`,
    `--bump-revision=${RESTORE_BUMP_REVISION}`,
    "--mark-compacted",
  ];
  const result = await runTool(etcdutl, args, timeoutMs);
  if (result.code !== 0) throw new Error(`etcdutl snapshot restore: ${toolFailure(result.stderr || result.stdout, `exit ${result.code}`)}`);
}
