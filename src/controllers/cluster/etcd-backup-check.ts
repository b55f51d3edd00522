/**
 * The etcd backup check of a reconciled Cluster (docs/backups.md), on every reconcile of it (the
 * drift check's cadence, a change of the `kubeonkube.io/backup-now` annotation, and every
 * `activeCheckMs` while a backup Job runs) and after each `up`:
 *
 *   1. a new backup-now token → the on-demand Job from the stack's CronJob, the token recorded in
 *      status.etcd.lastBackupToken (a token it cannot honour is recorded too, with a Warning);
 *   2. each backup Job that finished since → one Event (BackupSucceeded / BackupFailed), the
 *      failure counted, the Job annotated as reported so no restart or new leader tells it again;
 *   3. status.etcd.lastBackup from the newest succeeded Job whose result parses strictly;
 *   4. the EtcdBackupHealthy condition (etcd-backups.ts), removed when backups are not configured.
 *
 * Reads: the CronJob, the Jobs of the masters' namespace, their Pods (termination messages); the
 * decisions are etcd-backups.ts's. The status is written only when it changed.
 */
import type * as k8s from "@kubernetes/client-node";
import type { ClusterObject, ClusterStatus } from "../../api/v1alpha1";
import { setCondition, type ConditionInput } from "../../runtime/conditions";
import {
  BACKUP_NOW_ANNOTATION,
  BACKUP_REPORTED_ANNOTATION,
  ETCD_BACKUP_HEALTHY,
  backupCronJobName,
  backupHealth,
  backupSpecOf,
  etcdStatusOf,
  failureMessage,
  jobEvent,
  jobFromCronJob,
  jobState,
  onDemandDecision,
  ownedJobs,
  parseBackupResult,
  scheduleOf,
  terminationMessage,
  timeOf,
  type BackupJob,
  type EtcdStatus,
  type LastBackup,
  type ParsedResult,
} from "./etcd-backups";
import type { ClusterStore, EventSink } from "./reconciler";

/** What the check reads and writes in a masters' namespace (etcd-backup-api.ts is the real one). */
export interface EtcdBackupApi {
  /** The CronJob, or undefined when it does not exist. */
  cronJob(namespace: string, name: string): Promise<k8s.V1CronJob | undefined>;
  jobs(namespace: string): Promise<k8s.V1Job[]>;
  /** The Pods of Jobs (labelled batch.kubernetes.io/job-name). */
  jobPods(namespace: string): Promise<k8s.V1Pod[]>;
  /** Creates the Job; "exists" when one of that name already does. */
  createJob(job: k8s.V1Job): Promise<"created" | "exists">;
  /** Sets BACKUP_REPORTED_ANNOTATION on the Job (gone: nothing to do). */
  markReported(namespace: string, job: string): Promise<void>;
}

/** Observers for metrics. */
export interface EtcdBackupHooks {
  /** A Cluster with backups: its newest successful backup's time, `undefined` while none succeeded. */
  readonly lastSuccess?: (namespace: string, name: string, at: Date | undefined) => void;
  /** A backup Job failed or its result was refused (told once per Job). */
  readonly failed?: (namespace: string, name: string) => void;
  /** The Cluster has no backups (any more), or is gone: its series go. */
  readonly gone?: (namespace: string, name: string) => void;
}

export interface EtcdBackupCheckOptions {
  readonly api: EtcdBackupApi;
  readonly store: ClusterStore;
  readonly events: EventSink;
  readonly now: () => Date;
  readonly hooks?: EtcdBackupHooks;
  /** How soon to look again while a backup Job runs or an on-demand one waits. Default 15 s. */
  readonly activeCheckMs?: number;
}

export const DEFAULT_ACTIVE_CHECK_MS = 15_000;

export class EtcdBackupCheck {
  constructor(private readonly o: EtcdBackupCheckOptions) {}

  /** The Cluster is gone or going: its series go with it. */
  forget(namespace: string, name: string): void {
    this.o.hooks?.gone?.(namespace, name);
  }

  /**
   * Never throws: a meta-cluster read that fails leaves EtcdBackupHealthy Unknown/CheckFailed
   * (when backups are configured) and the next reconcile tries again; the drift check and the
   * update are not held up by it.
   */
  async check(cluster: ClusterObject, mastersNamespace: string): Promise<{ requeueAfter?: number }> {
    try {
      return await this.run(cluster, mastersNamespace);
    } catch (error) {
      if (!backupSpecOf(cluster.spec)) return {};
      const why = error instanceof Error ? error.message : String(error);
      const condition: ConditionInput = { type: ETCD_BACKUP_HEALTHY, status: "Unknown", reason: "CheckFailed", message: `the backup Jobs in ${mastersNamespace} could not be read: ${failureMessage({ message: why })}` };
      try {
        await this.write(cluster, {}, condition);
      } catch {
        // The status cannot be written either: the next reconcile tries both again.
      }
      return {};
    }
  }

  private async run(cluster: ClusterObject, mastersNamespace: string): Promise<{ requeueAfter?: number }> {
    const { namespace, name } = cluster.metadata;
    const spec = backupSpecOf(cluster.spec);
    const etcd = etcdStatusOf(cluster.status);
    const annotation = cluster.metadata.annotations?.[BACKUP_NOW_ANNOTATION];
    const now = this.o.now().getTime();

    if (!spec) {
      this.forget(namespace, name);
      const decision = onDemandDecision({ cluster: name, annotation, lastToken: etcd.lastBackupToken, configured: false, cronJob: undefined, jobs: [] });
      const token = decision.action === "refuse" ? decision.token : undefined;
      if (decision.action === "refuse") await this.o.events.record(cluster, "Warning", decision.reason, decision.message);
      const hasCondition = cluster.status?.conditions?.some((c) => c.type === ETCD_BACKUP_HEALTHY);
      if (token !== undefined || hasCondition) await this.write(cluster, token !== undefined ? { lastBackupToken: token } : {}, undefined);
      return {};
    }

    const cronJob = await this.o.api.cronJob(mastersNamespace, backupCronJobName(name));
    const owned = cronJob ? ownedJobs(await this.o.api.jobs(mastersNamespace), cronJob) : [];
    const states = owned.map((j) => ({ job: j, ...jobState(j) }));
    const pods = states.some((s) => s.state !== "active") ? await this.o.api.jobPods(mastersNamespace) : [];
    const jobs: BackupJob[] = states
      .map((s) => {
        const jobName = s.job.metadata?.name ?? "";
        const message = s.state === "active" ? undefined : terminationMessage(pods, jobName, s.state);
        return {
          name: jobName,
          state: s.state,
          at: s.at,
          reported: s.job.metadata?.annotations?.[BACKUP_REPORTED_ANNOTATION] !== undefined,
          ...(message !== undefined ? { message } : {}),
          ...(s.jobMessage ? { jobMessage: s.jobMessage } : {}),
        };
      })
      .sort((a, b) => b.at - a.at);

    // 1. On demand.
    let requeueAfter: number | undefined;
    let token: string | undefined;
    const decision = onDemandDecision({ cluster: name, annotation, lastToken: etcd.lastBackupToken, configured: true, cronJob, jobs });
    if (decision.action === "create") {
      if (!decision.exists) {
        const created = await this.o.api.createJob(jobFromCronJob(cronJob!, decision.name));
        if (created === "created") await this.o.events.record(cluster, "Normal", "BackupRequested", `${BACKUP_NOW_ANNOTATION}: backup Job ${decision.name} created in ${mastersNamespace}`);
        jobs.unshift({ name: decision.name, state: "active", at: now, reported: false });
      }
      token = decision.token;
    } else if (decision.action === "refuse") {
      await this.o.events.record(cluster, "Warning", decision.reason, decision.message);
      token = decision.token;
    } else if (decision.action === "wait") {
      requeueAfter = this.o.activeCheckMs ?? DEFAULT_ACTIVE_CHECK_MS;
    }
    if (jobs.some((j) => j.state === "active")) requeueAfter = this.o.activeCheckMs ?? DEFAULT_ACTIVE_CHECK_MS;

    // 2. Results, each Job told once.
    const store = spec.store.s3;
    const parsed = new Map<string, ParsedResult>();
    for (const j of jobs) if (j.state === "succeeded") parsed.set(j.name, parseBackupResult(j.message, store, now));
    for (const j of [...jobs].reverse()) {
      if (j.state === "active" || j.reported) continue;
      const event = jobEvent(j, parsed.get(j.name));
      await this.o.events.record(cluster, event.type, event.reason, event.message);
      if (event.type === "Warning") this.o.hooks?.failed?.(namespace, name);
      await this.o.api.markReported(mastersNamespace, j.name);
    }

    // 3. The newest good backup by snapshot time (a Job that finished last may hold an older one):
    // the status's, or a newer Job's.
    let lastBackup: LastBackup | undefined = etcd.lastBackup;
    for (const p of parsed.values()) {
      if (!p.ok || (lastBackup && Date.parse(p.result.time) <= Date.parse(lastBackup.time))) continue;
      const { time: t, location, revision, size } = p.result;
      lastBackup = { time: t, location, revision, size };
    }
    const lastSuccess = timeOf(lastBackup?.time);

    // 4. The condition: the newest finished Job decides between Succeeded and Failed.
    const newest = jobs.find((j) => j.state !== "active");
    const newestParsed = newest && parsed.get(newest.name);
    const newestFailed = newest && (newest.state === "failed" || !newestParsed?.ok) && (lastSuccess === undefined || newest.at > lastSuccess);
    const condition = backupHealth({
      schedule: scheduleOf(spec, cronJob),
      configuredAt: timeOf(cronJob?.metadata?.creationTimestamp),
      lastSuccess,
      lastBackup,
      newestFailure: newestFailed
        ? { name: newest.name, at: newest.at, message: newest.state === "failed" ? failureMessage(newest) : `its result was refused: ${newestParsed && !newestParsed.ok ? newestParsed.why : "not read"}` }
        : undefined,
      now,
    });
    this.o.hooks?.lastSuccess?.(namespace, name, lastSuccess !== undefined ? new Date(lastSuccess) : undefined);

    const fields: EtcdStatus = {
      ...(lastBackup && lastBackup !== etcd.lastBackup ? { lastBackup } : {}),
      ...(token !== undefined ? { lastBackupToken: token } : {}),
    };
    const before = cluster.status?.conditions?.find((c) => c.type === ETCD_BACKUP_HEALTHY);
    const conditionChanged = before?.status !== condition.status || before?.reason !== condition.reason || before?.message !== condition.message;
    if (Object.keys(fields).length || conditionChanged) await this.write(cluster, fields, condition);
    if (condition.reason === "Late" && before?.reason !== "Late") await this.o.events.record(cluster, "Warning", "BackupLate", condition.message);
    return requeueAfter !== undefined ? { requeueAfter } : {};
  }

  /**
   * Writes `fields` into status.etcd and sets (or, `undefined`, removes) EtcdBackupHealthy, over
   * the stored status. A lastBackup older than the stored one is not written back.
   */
  private async write(cluster: ClusterObject, fields: EtcdStatus, condition: ConditionInput | undefined): Promise<void> {
    const now = this.o.now().getTime();
    const apply = (fresh: ClusterStatus | undefined): ClusterStatus => {
      const stored = etcdStatusOf(fresh);
      const older = fields.lastBackup && stored.lastBackup && Date.parse(fields.lastBackup.time) <= Date.parse(stored.lastBackup.time);
      const etcd: EtcdStatus = { ...stored, ...fields, ...(older ? { lastBackup: stored.lastBackup } : {}) };
      const conditions = condition
        ? setCondition(fresh?.conditions, { ...condition, observedGeneration: cluster.metadata.generation }, now)
        : (fresh?.conditions ?? []).filter((c) => c.type !== ETCD_BACKUP_HEALTHY);
      // status.etcd is issue 18's field of ClusterStatus (src/api/v1alpha1/cluster.ts).
      return { ...(fresh ?? {}), etcd, conditions } as ClusterStatus;
    };
    const next = apply(cluster.status);
    await this.o.store.writeStatus(cluster, apply);
    cluster.status = next;
  }
}
