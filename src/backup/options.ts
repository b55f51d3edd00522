/**
 * The flags of `kok etcd backup` and `kok etcd restore`, checked before anything runs: every bad
 * or missing flag is named in one message (a CronJob that fails names all its mistakes in one
 * run, not one per retry). The commands run in a Pod from a spec the stack renders, so a problem
 * here is a bug or a hand edit; the message says which flag and why, never a credential.
 */
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import { parseS3Url } from "../runtime/s3/client";
import type { S3Credentials } from "../runtime/s3/client";
import { SNAPSHOT_SUFFIX } from "./keys";

/** Flags as commander hands them over: strings, absent when not given. */
export type RawFlags = Readonly<Record<string, string | undefined>>;

export class UsageError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join("; "));
    this.name = "UsageError";
  }
}

export interface StoreOptions {
  readonly endpoint: string;
  readonly region: string;
  readonly credentials: S3Credentials;
  /** AWS_CA_BUNDLE's certificates: a store whose certificate a private CA issued. */
  readonly ca?: Buffer;
}

export interface BackupOptions {
  readonly cluster: string;
  readonly endpoints: readonly string[];
  readonly cacert: string;
  readonly cert: string;
  readonly key: string;
  readonly store: StoreOptions;
  readonly bucket: string;
  readonly prefix: string;
  readonly keep: number;
  readonly maxAgeMs: number;
  readonly workDir: string;
  readonly resultFile?: string;
  readonly etcdctl: string;
  readonly etcdutl: string;
  readonly timeoutMs: number;
}

export interface RestoreOptions {
  /**
   * The member joins a cluster that exists (ETCD_INITIAL_CLUSTER_STATE=existing from the membership
   * ConfigMap, src/components/etcd.ts): a member added by scaling or a replacement takes its data
   * from the other members, never from the snapshot.
   */
  readonly joining?: boolean;
  readonly bucket: string;
  readonly key: string;
  readonly store: StoreOptions;
  readonly dataDir: string;
  readonly name: string;
  readonly initialCluster: string;
  readonly initialClusterToken: string;
  readonly initialAdvertisePeerUrls: string;
  readonly etcdutl: string;
  readonly timeoutMs: number;
}

const GO_UNITS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration (`168h`, `1h30m`, `90s`, `1.5h`) in milliseconds; undefined when it is not one. */
export function parseGoDuration(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * GO_UNITS[m[2]];
  return total;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** S3's bucket naming rules (the subset every implementation takes): 3–63 of a-z 0-9 . -, no `..`, not an IP address. */
export function bucketProblem(bucket: string): string | undefined {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) return "want 3 to 63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit";
  if (bucket.includes("..")) return "no '..' in a bucket name";
  if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return "a bucket name is not an IP address";
  return undefined;
}

/** A key prefix: `a/b` segments of printable characters, no leading or trailing `/`, no `.` or `..` segment. */
export function prefixProblem(prefix: string): string | undefined {
  if (prefix === "") return undefined;
  if (prefix.length > 512) return "at most 512 characters";
  if (/[\u0000-\u001f\u007f\\]/.test(prefix)) return "no control characters or backslashes";
  if (prefix.startsWith("/") || prefix.endsWith("/")) return "no leading or trailing '/'";
  if (prefix.split("/").some((s) => s === "" || s === "." || s === "..")) return "no empty, '.' or '..' segments";
  return undefined;
}

/** A snapshot's key: a prefix as above and a name ending in .db (a `..` segment would leave the bucket once the URL is normalised). */
function snapshotKeyProblem(key: string): string | undefined {
  if (!key.endsWith(SNAPSHOT_SUFFIX) || key.length === SNAPSHOT_SUFFIX.length) return `the key ends with ${SNAPSHOT_SUFFIX}`;
  const problem = prefixProblem(key);
  return problem ? `key: ${problem}` : undefined;
}

function endpointProblem(endpoint: string): string | undefined {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return "not a URL";
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return "want http:// or https://";
  if (url.username || url.password) return "no credentials in the URL (they come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)";
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash) return "want scheme, host and port only (path-style requests add the bucket)";
  return undefined;
}

/** A binary: an explicit path (flag, then environment variable) or the first `name` on PATH. */
export function findBinary(name: string, flag: string | undefined, envName: string, env: NodeJS.ProcessEnv): { path?: string; problem?: string } {
  const given = flag ?? env[envName];
  const candidates = given ? [given] : (env.PATH ?? "").split(delimiter).filter(Boolean).map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return { path: candidate };
    } catch {
      // not this one
    }
  }
  return { problem: given ? `${given} is not an executable file` : `${name} not found on PATH (give --${name} or ${envName})` };
}

export function readableFile(path: string): string | undefined {
  try {
    accessSync(path, constants.R_OK);
    return statSync(path).isFile() ? undefined : "not a regular file";
  } catch (error) {
    return `cannot read it (${(error as NodeJS.ErrnoException).code ?? "error"})`;
  }
}

/** Collects problems as `--flag "value": why` (the value only for non-secret flags). */
export class Checker {
  readonly problems: string[] = [];
  constructor(private readonly flags: RawFlags) {}

  /** The flag's value; a missing one is a problem. */
  required(flag: string, camel: string): string {
    const value = this.flags[camel];
    if (value === undefined || value === "") this.problems.push(`--${flag} is required`);
    return value ?? "";
  }

  check(flag: string, value: string, problem: string | undefined): void {
    if (value !== "" && problem) this.problems.push(`--${flag} ${JSON.stringify(value)}: ${problem}`);
  }
}

function storeOptions(c: Checker, env: NodeJS.ProcessEnv): StoreOptions {
  const endpoint = c.required("s3-endpoint", "s3Endpoint");
  c.check("s3-endpoint", endpoint, endpointProblem(endpoint));
  const region = c.required("region", "region");
  c.check("region", region, /^[a-z0-9-]{1,64}$/.test(region) ? undefined : "want a region name such as us-east-1");
  const accessKeyId = env.AWS_ACCESS_KEY_ID ?? "";
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY ?? "";
  if (!accessKeyId) c.problems.push("AWS_ACCESS_KEY_ID is not set (the store Secret's accessKeyId)");
  if (!secretAccessKey) c.problems.push("AWS_SECRET_ACCESS_KEY is not set (the store Secret's secretAccessKey)");
  const sessionToken = env.AWS_SESSION_TOKEN || undefined;
  // AWS_CA_BUNDLE: the variable AWS's own clients read for the same purpose.
  const bundle = env.AWS_CA_BUNDLE || undefined;
  let ca: Buffer | undefined;
  if (bundle) {
    const problem = readableFile(bundle);
    if (problem) c.problems.push(`AWS_CA_BUNDLE ${JSON.stringify(bundle)}: ${problem}`);
    else ca = readFileSync(bundle);
  }
  return { endpoint: endpoint.replace(/\/$/, ""), region, credentials: { accessKeyId, secretAccessKey, sessionToken }, ...(ca ? { ca } : {}) };
}

function timeout(c: Checker, flags: RawFlags, fallback: string): number {
  const text = flags.timeout ?? fallback;
  const ms = parseGoDuration(text);
  c.check("timeout", text, ms !== undefined && ms >= 1000 ? undefined : "want a duration of at least 1s, such as 10m");
  return ms ?? 0;
}

/** Every problem of `kok etcd backup`'s flags and environment, or the options. */
export function backupOptions(flags: RawFlags, env: NodeJS.ProcessEnv): BackupOptions {
  const c = new Checker(flags);
  const cluster = c.required("cluster", "cluster");
  const [ns, name, ...rest] = cluster.split("/");
  c.check("cluster", cluster, rest.length === 0 && DNS_LABEL.test(ns ?? "") && DNS_LABEL.test(name ?? "") ? undefined : "want <namespace>/<name>");

  const endpointsText = c.required("endpoints", "endpoints");
  const endpoints = endpointsText.split(",").map((e) => e.trim()).filter(Boolean);
  for (const endpoint of endpoints) {
    let ok = false;
    try {
      const url = new URL(endpoint);
      ok = url.protocol === "https:" && url.port !== "" && (url.pathname === "/" || url.pathname === "") && !url.username && !url.search;
    } catch {
      ok = false;
    }
    c.check("endpoints", endpoint, ok ? undefined : "want https://host:port (etcd's client port, TLS with a client certificate)");
  }

  const files = { cacert: c.required("cacert", "cacert"), cert: c.required("cert", "cert"), key: c.required("key", "key") };
  for (const [flag, path] of Object.entries(files)) c.check(flag, path, readableFile(path));

  const store = storeOptions(c, env);
  const bucket = c.required("bucket", "bucket");
  c.check("bucket", bucket, bucketProblem(bucket));
  const prefix = flags.prefix ?? "";
  c.check("prefix", prefix, prefixProblem(prefix));

  const keepText = c.required("keep", "keep");
  const keep = Number(keepText);
  c.check("keep", keepText, /^\d+$/.test(keepText) && keep >= 1 && keep <= 1000 ? undefined : "want an integer from 1 to 1000");
  const maxAgeText = c.required("max-age", "maxAge");
  const maxAgeMs = parseGoDuration(maxAgeText);
  c.check("max-age", maxAgeText, maxAgeMs !== undefined && maxAgeMs >= 60_000 ? undefined : "want a duration of at least 1m, such as 168h");

  const workDir = c.required("work-dir", "workDir");
  let workProblem: string | undefined;
  try {
    accessSync(workDir, constants.W_OK);
    if (!statSync(workDir).isDirectory()) workProblem = "not a directory";
  } catch (error) {
    workProblem = `not a writable directory (${(error as NodeJS.ErrnoException).code ?? "error"})`;
  }
  c.check("work-dir", workDir, workProblem);
  const resultFile = flags.resultFile;
  if (resultFile !== undefined) c.check("result-file", resultFile, isAbsolute(resultFile) ? undefined : "want an absolute path");

  const etcdctl = findBinary("etcdctl", flags.etcdctl, "KOK_ETCDCTL", env);
  if (etcdctl.problem) c.problems.push(`etcdctl: ${etcdctl.problem}`);
  const etcdutl = findBinary("etcdutl", flags.etcdutl, "KOK_ETCDUTL", env);
  if (etcdutl.problem) c.problems.push(`etcdutl: ${etcdutl.problem}`);
  const timeoutMs = timeout(c, flags, "10m");

  if (c.problems.length) throw new UsageError(c.problems);
  return {
    cluster,
    endpoints,
    ...files,
    store,
    bucket,
    prefix,
    keep,
    maxAgeMs: maxAgeMs!,
    workDir,
    resultFile,
    etcdctl: etcdctl.path!,
    etcdutl: etcdutl.path!,
    timeoutMs,
  };
}

/** Every problem of `kok etcd restore`'s flags and environment, or the options. */
export function restoreOptions(flags: RawFlags, env: NodeJS.ProcessEnv): RestoreOptions {
  const c = new Checker(flags);
  const snapshot = c.required("snapshot", "snapshot");
  const location = parseS3Url(snapshot);
  c.check("snapshot", snapshot, !location ? "want s3://<bucket>/<key>" : (bucketProblem(location.bucket) ?? snapshotKeyProblem(location.key)));
  const store = storeOptions(c, env);
  const dataDir = c.required("data-dir", "dataDir");
  c.check("data-dir", dataDir, isAbsolute(dataDir) ? undefined : "want an absolute path");
  const name = c.required("name", "name");
  c.check("name", name, /^[A-Za-z0-9][-A-Za-z0-9_.]{0,252}$/.test(name) ? undefined : "want the member's name (letters, digits, '-', '_', '.')");
  const initialCluster = c.required("initial-cluster", "initialCluster");
  const members = initialCluster.split(",").map((m) => m.split("="));
  const malformed = members.some((m) => m.length !== 2 || !m[0] || !/^https?:\/\//.test(m[1]));
  c.check("initial-cluster", initialCluster, malformed ? "want name=https://peer:2380,... (one entry per member)" : members.some((m) => m[0] === name) ? undefined : `no entry for --name ${name}`);
  const initialClusterToken = c.required("initial-cluster-token", "initialClusterToken");
  const initialAdvertisePeerUrls = c.required("initial-advertise-peer-urls", "initialAdvertisePeerUrls");
  c.check("initial-advertise-peer-urls", initialAdvertisePeerUrls, initialAdvertisePeerUrls.split(",").every((u) => /^https?:\/\/[^/]+$/.test(u)) ? undefined : "want peer URLs such as https://host:2380");
  const etcdutl = findBinary("etcdutl", flags.etcdutl, "KOK_ETCDUTL", env);
  if (etcdutl.problem) c.problems.push(`etcdutl: ${etcdutl.problem}`);
  const timeoutMs = timeout(c, flags, "10m");

  if (c.problems.length) throw new UsageError(c.problems);
  return { joining: env.ETCD_INITIAL_CLUSTER_STATE === "existing", bucket: location!.bucket, key: location!.key, store, dataDir, name, initialCluster, initialClusterToken, initialAdvertisePeerUrls, etcdutl: etcdutl.path!, timeoutMs };
}
