/**
 * `etcdBackupProblems`: every problem of `spec.etcd.backup` and `spec.etcd.restore` the schema
 * cannot see, each with its field path: the cron schedule (read by croner, as the operator reads
 * it for lateness, and limited to what the Kubernetes CronJob controller parses), the retention's
 * Go duration, the bucket, prefix and endpoint syntax, and a restore's ties to the store. Where a
 * tenant's endpoint may point (the SSRF gate) is the admin policy's: backup-endpoints.ts.
 */
import { Cron } from "croner";
import { isIP } from "./cidr";
import type { EtcdSpec } from "./cluster";
import { S3_BUCKET_PATTERN } from "./etcd-backup";
import { isDns1123Subdomain, quoteShort, type Problem } from "./validation";

/** Backups closer together than this are refused: each one reads the whole keyspace from a member. */
export const MIN_BACKUP_INTERVAL_MINUTES = 10;
/** The longest retention maxAge (ten years). */
export const MAX_BACKUP_MAX_AGE_HOURS = 87_600;

const CRON_MACROS = new Set(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]);
/** One cron field as the CronJob controller (robfig/cron's standard parser) reads it: numbers, `*`, `?`, ranges, steps, lists, 3-letter names. */
const CRON_FIELD = /^[0-9A-Za-z*?,/-]+$/;

/** A fixed instant the schedule's runs are enumerated from: the check must not depend on the clock. */
const CRON_PROBE_FROM = new Date("2027-01-01T00:00:00Z");
const CRON_PROBE_RUNS = 100;

/** Why `schedule` is not a UTC cron schedule the backup CronJob can run, or undefined. */
export function cronScheduleProblem(schedule: string): string | undefined {
  const text = schedule.trim();
  if (/^(CRON_)?TZ=/i.test(text)) return `${quoteShort(schedule)} must not name a time zone: schedules are UTC (the CronJob sets timeZone Etc/UTC)`;
  if (!CRON_MACROS.has(text)) {
    const fields = text.split(/\s+/);
    if (fields.length !== 5) return `${quoteShort(schedule)} must have 5 fields (minute hour day-of-month month day-of-week) or be a macro like @daily; got ${fields.length}`;
    const odd = fields.find((f) => !CRON_FIELD.test(f) || (f.match(/[A-Za-z]+/g) ?? []).some((word) => word.length !== 3));
    if (odd !== undefined) return `${quoteShort(schedule)}: field ${quoteShort(odd)} is not understood by the CronJob controller (no L, W or #)`;
  }
  let runs: Date[];
  try {
    runs = new Cron(text, { paused: true, timezone: "Etc/UTC" }).nextRuns(CRON_PROBE_RUNS, CRON_PROBE_FROM);
  } catch (error) {
    return `${quoteShort(schedule)} is not a cron schedule: ${(error as Error).message}`;
  }
  if (runs.length < 2) return `${quoteShort(schedule)} runs less than twice in the years ahead: use a recurring schedule`;
  for (let i = 1; i < runs.length; i++) {
    const gap = (runs[i].getTime() - runs[i - 1].getTime()) / 60_000;
    if (gap < MIN_BACKUP_INTERVAL_MINUTES) {
      return `${quoteShort(schedule)} runs ${gap} minute${gap === 1 ? "" : "s"} apart; backups must be at least ${MIN_BACKUP_INTERVAL_MINUTES} minutes apart`;
    }
  }
  return undefined;
}

const DURATION_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds of a Go duration (`168h`, `1h30m`, `90m`), or undefined when it is not one. */
export function parseGoDuration(text: string): number | undefined {
  if (!/^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)/g)) total += Number(amount) * DURATION_UNIT_MS[unit];
  return total;
}

/** Why `bucket` is not an S3 bucket name (AWS's rules), or undefined. */
export function bucketProblem(bucket: string): string | undefined {
  if (!new RegExp(S3_BUCKET_PATTERN).test(bucket)) {
    return `${quoteShort(bucket)} must be 3 to 63 lowercase letters, digits, "." and "-", starting and ending with a letter or digit`;
  }
  if (/\.\.|\.-|-\./.test(bucket)) return `${quoteShort(bucket)} must not contain "..", ".-" or "-."`;
  if (isIP(bucket)) return `${quoteShort(bucket)} must not be an IP address`;
  if (/^(xn--|sthree-)/.test(bucket) || /(-s3alias|--ol-s3)$/.test(bucket)) return `${quoteShort(bucket)} uses a prefix or suffix S3 reserves`;
  return undefined;
}

/** Why an object key (or prefix) has a segment S3 clients and file systems treat specially, or undefined. */
function keySegmentsProblem(key: string): string | undefined {
  const bad = key.split("/").find((segment) => segment === "." || segment === "..");
  return bad === undefined ? undefined : `${quoteShort(key)} must not have "." or ".." segments`;
}

/** The parts of an endpoint the checks need, or a reason it is not an http(s) URL with a host. */
export function parseBackupEndpoint(endpoint: string): { scheme: "http" | "https"; host: string; port: number; written: string } | { problem: string } {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return { problem: `${quoteShort(endpoint)} is not a URL like https://s3.eu-west-1.amazonaws.com` };
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return { problem: `${quoteShort(endpoint)} must be an https:// (or allowed http://) URL` };
  if (url.username || url.password) return { problem: `${quoteShort(endpoint)} must not carry credentials; they come from credentialsSecretRef` };
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash) return { problem: `${quoteShort(endpoint)} must have no path, query or fragment (requests are path-style)` };
  const written = /^https?:\/\/(\[[^\]]*\]|[^:/]*)/.exec(endpoint)?.[1] ?? "";
  const host = url.hostname.replace(/^\[|\]$/g, "");
  // WHATWG URL reads 127.1, 0x7f.0.0.1 and 2130706433 as 127.0.0.1; a host written in any form
  // but its canonical one is refused, so the checks and the client can never disagree on it.
  if (written.replace(/^\[|\]$/g, "").toLowerCase() !== host) {
    return { problem: `${quoteShort(endpoint)}: the host ${quoteShort(written)} reads as ${host}; write the address in its usual form` };
  }
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  if (port < 1 || port > 65535) return { problem: `${quoteShort(endpoint)}: port ${port} is outside 1-65535` };
  return { scheme: url.protocol === "https:" ? "https" : "http", host, port, written };
}

/** Every problem of spec.etcd.backup and spec.etcd.restore; `path` is `spec.etcd`. */
export function etcdBackupProblems(etcd: Partial<EtcdSpec>, path: string): Problem[] {
  const problems: Problem[] = [];
  const add = (suffix: string, message: string) => problems.push({ path: `${path}.${suffix}`, message });
  const backup = etcd.backup && typeof etcd.backup === "object" ? etcd.backup : undefined;
  if (backup) {
    if (typeof backup.schedule === "string") {
      const problem = cronScheduleProblem(backup.schedule);
      if (problem) add("backup.schedule", problem);
    }
    const maxAge = backup.retention && typeof backup.retention === "object" ? backup.retention.maxAge : undefined;
    if (typeof maxAge === "string") {
      const ms = parseGoDuration(maxAge);
      if (ms === undefined) add("backup.retention.maxAge", `${quoteShort(maxAge)} is not a Go duration like 168h or 90m (no days: write 7 days as 168h)`);
      else if (ms < 3_600_000) add("backup.retention.maxAge", `${quoteShort(maxAge)} is under an hour: every snapshot but the newest would be deleted as soon as it is taken`);
      else if (ms > MAX_BACKUP_MAX_AGE_HOURS * 3_600_000) add("backup.retention.maxAge", `${quoteShort(maxAge)} is over ${MAX_BACKUP_MAX_AGE_HOURS}h (ten years)`);
    }
    const s3 = backup.store && typeof backup.store === "object" && backup.store.s3 && typeof backup.store.s3 === "object" ? backup.store.s3 : undefined;
    if (s3) {
      if (typeof s3.bucket === "string") {
        const problem = bucketProblem(s3.bucket);
        if (problem) add("backup.store.s3.bucket", problem);
      }
      if (typeof s3.prefix === "string") {
        const problem = keySegmentsProblem(s3.prefix);
        if (problem) add("backup.store.s3.prefix", problem);
      }
      if (typeof s3.endpoint === "string") {
        const parsed = parseBackupEndpoint(s3.endpoint);
        if ("problem" in parsed) add("backup.store.s3.endpoint", parsed.problem);
      }
      const secret = s3.credentialsSecretRef;
      if (secret && typeof secret === "object" && typeof secret.name === "string" && !isDns1123Subdomain(secret.name)) {
        add("backup.store.s3.credentialsSecretRef.name", `${quoteShort(secret.name)} is not a Secret name (a lowercase DNS subdomain)`);
      }
    }
  }
  const restore = etcd.restore && typeof etcd.restore === "object" ? etcd.restore : undefined;
  if (restore) {
    if (!backup) add("restore", "needs spec.etcd.backup.store: the snapshot is read from that store with its credentials");
    if (typeof restore.snapshot === "string") {
      const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(restore.snapshot);
      if (!match) {
        add("restore.snapshot", `${quoteShort(restore.snapshot)} must be s3://<bucket>/<key>.db`);
      } else {
        const [, bucket, key] = match;
        const storeBucket = backup?.store?.s3?.bucket;
        const problem = bucketProblem(bucket) ?? keySegmentsProblem(key);
        if (problem) add("restore.snapshot", problem);
        else if (typeof storeBucket === "string" && bucket !== storeBucket) {
          add("restore.snapshot", `is in bucket ${quoteShort(bucket)}, not in spec.etcd.backup.store.s3.bucket (${quoteShort(storeBucket)}): only the store's credentials are available to read it`);
        }
      }
    }
  }
  return problems;
}
