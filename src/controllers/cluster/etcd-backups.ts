/**
 * The operator's decisions about a Cluster's etcd backups (docs/backups.md), pure: from the
 * Cluster, the backup CronJob its stack wrote into the masters' namespace, that CronJob's Jobs and
 * their Pods' termination messages, to what to create, what to record and the condition.
 *
 * The backups themselves run in the masters' namespace (`kok etcd backup`, a CronJob of the
 * stack): the operator only starts an on-demand one and reads the results. It trusts the CronJob
 * (the stack wrote it) but not what a backup Pod says: the Pod talks to a store the tenant names,
 * so its result is parsed strictly and anything else is ignored and reported, never copied into
 * the status.
 *
 *   EtcdBackupHealthy  True     Succeeded        the newest finished backup succeeded, in time
 *                      False    Failed           the newest finished backup failed (its one-line
 *                                                message), or succeeded with a result refused here
 *                      False    Late             no success within 2× the schedule's interval
 *                                                after the first due time (croner, UTC)
 *                      Unknown  NotYetSucceeded  configured, nothing finished yet, not late
 *                      Unknown  CheckFailed      the Jobs could not be read (etcd-backup-check.ts)
 *                      (absent)                  spec.etcd.backup is not set
 */
import { createHash } from "node:crypto";
import type * as k8s from "@kubernetes/client-node";
import { Cron } from "croner";
import {
  BACKUP_NOW_ANNOTATION,
  DEFAULT_BACKUP_SCHEDULE,
  ETCD_BACKUP_HEALTHY_CONDITION,
  type ClusterSpec,
  type ClusterStatus,
  type EtcdBackupRecord,
  type EtcdBackupSpec,
  type EtcdStatus,
} from "../../api/v1alpha1";
import { objectNames } from "../../components/cluster-context";
import type { ConditionInput } from "../../runtime/conditions";
import { MAX_RESULT_BYTES, parseTerminationJson } from "./termination-message";

export { MAX_RESULT_BYTES };

export const ETCD_BACKUP_HEALTHY = ETCD_BACKUP_HEALTHY_CONDITION;
export { BACKUP_NOW_ANNOTATION, DEFAULT_BACKUP_SCHEDULE };
export type { EtcdStatus };
/** On a backup Job: its BackupSucceeded/BackupFailed Event was recorded (once per Job, across restarts). */
export const BACKUP_REPORTED_ANNOTATION = "kubeonkube.io/backup-reported";
/** On an on-demand Job: it was started from the CronJob by hand, as `kubectl create job --from` marks it. */
export const INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate";
/** The longest token recorded in status.etcd.lastBackupToken; a longer one is refused, not cut. */
export const MAX_TOKEN_LENGTH = 253;
/** How long a failure message may be in the condition and Events. */
export const MAX_FAILURE_MESSAGE = 300;

/**
 * The schedule backups run on: the CronJob's (what the stack resolved and Kubernetes runs), else
 * the spec's, else the default.
 */
export function scheduleOf(spec: EtcdBackupSpec, cronJob: k8s.V1CronJob | undefined): string {
  return cronJob?.spec?.schedule ?? spec.schedule ?? DEFAULT_BACKUP_SCHEDULE;
}

/** status.etcd.lastBackup. */
export type LastBackup = EtcdBackupRecord;

/** A backup's result line, as `kok etcd backup` writes it to its termination message. */
export interface BackupResult extends LastBackup {
  readonly sha256: string;
  readonly pruned: number;
}

/** The backup spec of a Cluster object, or undefined when none is configured. */
export function backupSpecOf(spec: Pick<ClusterSpec, "etcd"> | undefined): EtcdBackupSpec | undefined {
  return spec?.etcd?.backup;
}

/** status.etcd of a Cluster's status, whatever else it holds. */
export function etcdStatusOf(status: Pick<ClusterStatus, "etcd"> | undefined): EtcdStatus {
  return status?.etcd ?? {};
}

/** The name of the stack's backup CronJob in the masters' namespace. */
export const backupCronJobName = (cluster: string): string => objectNames(cluster).etcdBackup;

/**
 * `<cluster>-etcd-backup-<10 hex of sha256(token)>`: the same token always names the same Job, so
 * a crash between creating it and recording the token does not start a second backup. At most
 * 40 + 12 + 11 = 63 characters (cluster names are at most 40), the limit of the job-name label.
 */
export function onDemandJobName(cluster: string, token: string): string {
  return `${backupCronJobName(cluster)}-${createHash("sha256").update(token).digest("hex").slice(0, 10)}`;
}

export type JobState = "active" | "succeeded" | "failed";

/** A backup Job as the decisions below see it. */
export interface BackupJob {
  readonly name: string;
  readonly state: JobState;
  /** When it finished (completion or failure), or started, or was created: the order of Jobs. */
  readonly at: number;
  readonly reported: boolean;
  /** The backup Pod's termination message, when read (finished Jobs only). */
  readonly message?: string;
  /** The Job's own Failed condition message (BackoffLimitExceeded, DeadlineExceeded...). */
  readonly jobMessage?: string;
}

/** Milliseconds of a Kubernetes time (the client gives Dates, plain objects strings), or undefined. */
export const timeOf = (t: Date | string | undefined): number | undefined => {
  if (t === undefined) return undefined;
  const ms = t instanceof Date ? t.getTime() : Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
};

/** The Jobs the CronJob controls (scheduled and on-demand alike), by its uid: labels are not needed. */
export function ownedJobs(jobs: readonly k8s.V1Job[], cronJob: k8s.V1CronJob): k8s.V1Job[] {
  const uid = cronJob.metadata?.uid;
  if (!uid) return [];
  return jobs.filter((j) => j.metadata?.ownerReferences?.some((o) => o.kind === "CronJob" && o.uid === uid && o.controller === true));
}

/** A Job's state from its conditions (Complete or Failed True), as the Job controller sets them. */
export function jobState(job: k8s.V1Job): { state: JobState; at: number; jobMessage?: string } {
  const conditions = job.status?.conditions ?? [];
  const created = timeOf(job.metadata?.creationTimestamp) ?? 0;
  const complete = conditions.find((c) => c.type === "Complete" && c.status === "True");
  if (complete) return { state: "succeeded", at: timeOf(job.status?.completionTime) ?? timeOf(complete.lastTransitionTime) ?? created };
  const failed = conditions.find((c) => c.type === "Failed" && c.status === "True");
  if (failed) {
    const why = [failed.reason, failed.message].filter(Boolean).join(": ");
    return { state: "failed", at: timeOf(failed.lastTransitionTime) ?? timeOf(job.status?.startTime) ?? created, ...(why ? { jobMessage: why } : {}) };
  }
  return { state: "active", at: timeOf(job.status?.startTime) ?? created };
}

/** What to do about the backup-now annotation. */
export type OnDemand =
  | { readonly action: "none" }
  /** A Job is running: start this one after it (the CronJob's Forbid, kept for on-demand ones too). */
  | { readonly action: "wait"; readonly message: string }
  /** Create the Job `name` and record `token`. `exists`: it was created before a crash: only record. */
  | { readonly action: "create"; readonly token: string; readonly name: string; readonly exists: boolean }
  /** Record `token` without a backup, with a Warning saying why. */
  | { readonly action: "refuse"; readonly token: string; readonly reason: string; readonly message: string };

export interface OnDemandInput {
  readonly cluster: string;
  readonly annotation: string | undefined;
  readonly lastToken: string | undefined;
  readonly configured: boolean;
  readonly cronJob: k8s.V1CronJob | undefined;
  readonly jobs: readonly BackupJob[];
}

/** Decides on the annotation `kubeonkube.io/backup-now`: a new token is one backup, once. */
export function onDemandDecision(i: OnDemandInput): OnDemand {
  const token = i.annotation;
  // A token too long is recorded cut: compared cut too, or it would be refused again at every check.
  if (token === undefined || token.slice(0, MAX_TOKEN_LENGTH) === i.lastToken) return { action: "none" };
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    return { action: "refuse", token: token.slice(0, MAX_TOKEN_LENGTH), reason: "BackupRefused", message: `${BACKUP_NOW_ANNOTATION} must be 1 to ${MAX_TOKEN_LENGTH} characters (it has ${token.length}): no backup taken` };
  }
  if (!i.configured) {
    return { action: "refuse", token, reason: "BackupNotConfigured", message: `${BACKUP_NOW_ANNOTATION} is set but spec.etcd.backup is not: no backup taken` };
  }
  const name = onDemandJobName(i.cluster, token);
  if (i.jobs.some((j) => j.name === name)) return { action: "create", token, name, exists: true };
  // The stack has not written the CronJob yet (the update that adds backups is still running).
  if (!i.cronJob) return { action: "wait", message: `waiting for CronJob ${backupCronJobName(i.cluster)}: the stack's update creates it` };
  const active = i.jobs.find((j) => j.state === "active");
  if (active) return { action: "wait", message: `backup Job ${active.name} is running; the on-demand backup starts after it` };
  return { action: "create", token, name, exists: false };
}

/**
 * The Job `kubectl create job <name> --from=cronjob/<cronjob>` makes: the jobTemplate's labels,
 * annotations and spec, the instantiate annotation, and the CronJob as its controller (so the
 * CronJob's history limits clean it up and it shows among the CronJob's Jobs).
 */
export function jobFromCronJob(cronJob: k8s.V1CronJob, name: string): k8s.V1Job {
  const template = cronJob.spec?.jobTemplate;
  if (!template?.spec) throw new Error(`CronJob ${cronJob.metadata?.namespace}/${cronJob.metadata?.name} has no spec.jobTemplate.spec`);
  if (!cronJob.metadata?.uid || !cronJob.metadata.name) throw new Error(`CronJob ${cronJob.metadata?.namespace}/${cronJob.metadata?.name} has no uid`);
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name,
      namespace: cronJob.metadata.namespace,
      labels: { ...(template.metadata?.labels ?? {}) },
      annotations: { ...(template.metadata?.annotations ?? {}), [INSTANTIATE_ANNOTATION]: "manual" },
      ownerReferences: [{ apiVersion: "batch/v1", kind: "CronJob", name: cronJob.metadata.name, uid: cronJob.metadata.uid, controller: true }],
    },
    spec: structuredClone(template.spec),
  };
}

/** A backup result, or why it was refused. */
export type ParsedResult = { readonly ok: true; readonly result: BackupResult } | { readonly ok: false; readonly why: string };

const RESULT_KEYS = ["location", "pruned", "revision", "sha256", "size", "time"];
/** `2026-12-04T06:00:00Z`: UTC, seconds, as the backup writes it (and as the object key spells it with dashes). */
const RESULT_TIME = /^(\d{4}-\d{2}-\d{2}T\d{2}):(\d{2}):(\d{2}Z)$/;
const SHA256 = /^[0-9a-f]{64}$/;

/** The store's prefix as keys use it: no leading or trailing slash, "" for none. */
export function normalizedPrefix(prefix: string | undefined): string {
  return (prefix ?? "").replace(/^\/+|\/+$/g, "");
}

/** The location a backup taken at `resultTime` (`2026-12-04T06:00:00Z`) must have. */
export function expectedLocation(store: EtcdBackupSpec["store"]["s3"], resultTime: string): string | undefined {
  const m = RESULT_TIME.exec(resultTime);
  if (!m) return undefined;
  const prefix = normalizedPrefix(store.prefix);
  return `s3://${store.bucket}/${prefix ? `${prefix}/` : ""}${m[1]}-${m[2]}-${m[3]}.db`;
}

/**
 * Parses a backup Pod's termination message strictly: one line of JSON, exactly the six fields
 * with their types, a UTC time no later than `now` (plus a minute of skew), and a location that is
 * the key this Cluster's store and that time name: `s3://<bucket>/<prefix>/<time>.db`. Anything
 * else — too long, several lines, other keys, another bucket or prefix — is refused with why.
 */
export function parseBackupResult(message: string | undefined, store: EtcdBackupSpec["store"]["s3"], now: number): ParsedResult {
  const parsed = parseTerminationJson(message);
  if (!parsed.ok) return parsed;
  const o = parsed.object;
  const keys = Object.keys(o).sort();
  const unknown = keys.filter((k) => !RESULT_KEYS.includes(k));
  const missing = RESULT_KEYS.filter((k) => !(k in o));
  // Counted, never named: the names are the Pod's words.
  if (unknown.length) return { ok: false, why: `${unknown.length} unexpected field(s): only ${RESULT_KEYS.join(", ")} are allowed` };
  if (missing.length) return { ok: false, why: `missing field(s) ${missing.join(", ")}` };
  const problems: string[] = [];
  const count = (k: string, min: number) => {
    if (!Number.isSafeInteger(o[k]) || (o[k] as number) < min) problems.push(`${k} must be an integer ≥ ${min}`);
  };
  count("revision", 1);
  count("size", 1);
  count("pruned", 0);
  if (typeof o.sha256 !== "string" || !SHA256.test(o.sha256)) problems.push("sha256 must be 64 lowercase hex digits");
  const at = typeof o.time === "string" && RESULT_TIME.test(o.time) ? Date.parse(o.time) : Number.NaN;
  if (Number.isNaN(at)) problems.push("time must be a UTC time like 2026-12-04T06:00:00Z");
  else if (at > now + 60_000) problems.push("time is in the future");
  if (typeof o.location !== "string") problems.push("location must be a string");
  else if (!Number.isNaN(at)) {
    const expected = expectedLocation(store, o.time as string);
    // Never echoed: a location elsewhere is the tenant's store answering, not ours to repeat.
    if (o.location !== expected) problems.push(`location is not ${expected}`);
  }
  if (problems.length) return { ok: false, why: problems.join("; ") };
  return { ok: true, result: { time: o.time as string, location: o.location as string, revision: o.revision as number, size: o.size as number, sha256: o.sha256 as string, pruned: o.pruned as number } };
}

/**
 * A failed backup's one line for the condition and the Event: the Pod's termination message
 * (the backup writes one clear line) or else the Job's own reason; control characters removed,
 * whitespace folded, cut at MAX_FAILURE_MESSAGE.
 */
export function failureMessage(job: Pick<BackupJob, "message" | "jobMessage">): string {
  const clean = (s: string | undefined) =>
    (s ?? "")
      .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ")
      .replace(/\s+/g, " ")
      .trim();
  const text = clean(job.message) || clean(job.jobMessage) || "no message (the Pod may have been deleted)";
  return text.length > MAX_FAILURE_MESSAGE ? `${text.slice(0, MAX_FAILURE_MESSAGE - 1)}…` : text;
}

/** The schedule's due times: the first after `since`, and the deadline 2× its interval after it. */
export function lateness(schedule: string, since: number): { firstDue: number; deadline: number } | undefined {
  let runs: Date[];
  try {
    // Paused: only computes times, never schedules anything in this process.
    runs = new Cron(schedule, { paused: true, timezone: "Etc/UTC" }).nextRuns(2, new Date(since));
  } catch {
    return undefined;
  }
  if (runs.length < 2) return undefined;
  const [first, second] = runs.map((d) => d.getTime());
  return { firstDue: first, deadline: first + 2 * (second - first) };
}

export interface HealthInput {
  readonly schedule: string;
  /** When backups became due: the CronJob's creation (undefined: the stack has not written it yet). */
  readonly configuredAt: number | undefined;
  /** The newest successful backup's time (status.etcd.lastBackup.time or a newer Job's result). */
  readonly lastSuccess: number | undefined;
  readonly lastBackup: LastBackup | undefined;
  /** The newest finished Job, if it is newer than the last success and did not succeed (or its result was refused). */
  readonly newestFailure: { readonly name: string; readonly at: number; readonly message: string } | undefined;
  readonly now: number;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");

/** EtcdBackupHealthy for a Cluster that has backups configured. */
export function backupHealth(i: HealthInput): ConditionInput {
  const type = ETCD_BACKUP_HEALTHY;
  if (i.newestFailure) {
    const f = i.newestFailure;
    const last = i.lastBackup ? `; the last good backup is ${i.lastBackup.location} of ${i.lastBackup.time}` : "; no backup has succeeded yet";
    return { type, status: "False", reason: "Failed", message: `backup Job ${f.name} failed at ${iso(f.at)}: ${f.message}${last}` };
  }
  const since = i.lastSuccess ?? i.configuredAt;
  const due = since === undefined ? undefined : lateness(i.schedule, since);
  if (due && i.now > due.deadline) {
    const what = i.lastSuccess !== undefined ? `no successful backup since ${iso(i.lastSuccess)}` : `no successful backup since backups were configured at ${iso(since!)}`;
    return { type, status: "False", reason: "Late", message: `${what}: schedule "${i.schedule}" (UTC) was due at ${iso(due.firstDue)}` };
  }
  if (i.lastBackup) {
    const b = i.lastBackup;
    return { type, status: "True", reason: "Succeeded", message: `the last backup is ${b.location} of ${b.time} (${b.size} bytes, revision ${b.revision})` };
  }
  const next = due ? `; the first is due at ${iso(due.firstDue)}` : "";
  return { type, status: "Unknown", reason: "NotYetSucceeded", message: `no backup has completed yet${next}` };
}

/** The Event of a finished backup Job, recorded once (BACKUP_REPORTED_ANNOTATION). */
export function jobEvent(job: BackupJob, parsed: ParsedResult | undefined): { type: "Normal" | "Warning"; reason: string; message: string } {
  if (job.state === "succeeded" && parsed?.ok) {
    const r = parsed.result;
    return { type: "Normal", reason: "BackupSucceeded", message: `backup Job ${job.name}: ${r.location} (${r.size} bytes, revision ${r.revision}, ${r.pruned} pruned)` };
  }
  if (job.state === "succeeded") {
    return { type: "Warning", reason: "BackupFailed", message: `backup Job ${job.name} succeeded but its result was refused (${parsed && !parsed.ok ? parsed.why : "not read"}): status.etcd.lastBackup not updated` };
  }
  return { type: "Warning", reason: "BackupFailed", message: `backup Job ${job.name} failed: ${failureMessage(job)}` };
}

/** The label the Job controller puts on its Pods (Kubernetes ≥ 1.27). */
export const JOB_NAME_LABEL = "batch.kubernetes.io/job-name";

/**
 * The termination message of a finished Job's backup Pod: of a Succeeded Pod for a succeeded Job,
 * else of the newest Failed one (a Job retries in new Pods); the first container that left one.
 */
export function terminationMessage(pods: readonly k8s.V1Pod[], job: string, state: JobState): string | undefined {
  const phase = state === "succeeded" ? "Succeeded" : "Failed";
  const mine = pods
    .filter((p) => p.metadata?.labels?.[JOB_NAME_LABEL] === job && p.status?.phase === phase)
    .sort((a, b) => (timeOf(b.metadata?.creationTimestamp) ?? 0) - (timeOf(a.metadata?.creationTimestamp) ?? 0));
  for (const pod of mine) {
    const message = (pod.status?.containerStatuses ?? []).map((c) => c.state?.terminated?.message).find((m) => typeof m === "string" && m.length > 0);
    if (message !== undefined) return message;
  }
  return undefined;
}
