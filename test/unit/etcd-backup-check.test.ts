/**
 * The etcd backup check of a Cluster (src/controllers/cluster/etcd-backup-check.ts) with an
 * in-memory masters' namespace (the CronJob, its Jobs, their Pods) and Cluster store: the
 * on-demand Job and its token, a restart between the two, results and failures told once per Job
 * (also by a new process), hostile termination messages kept out of the status, lateness, the
 * condition removed with the backups, a meta-cluster that does not answer, and the metrics hooks.
 */
import type * as k8s from "@kubernetes/client-node";
import { beforeEach, describe, expect, it } from "vitest";
import { mastersNamespaceOf, type ClusterObject, type ClusterStatus } from "../../src/api/v1alpha1";
import { EtcdBackupCheck, type EtcdBackupApi } from "../../src/controllers/cluster/etcd-backup-check";
import { BACKUP_NOW_ANNOTATION, BACKUP_REPORTED_ANNOTATION, JOB_NAME_LABEL, etcdStatusOf, onDemandJobName } from "../../src/controllers/cluster/etcd-backups";
import { minimalSpec } from "../support/specs";

const MASTERS = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "ops" } });
const STORE = { bucket: "backups", prefix: "fleet/ops", endpoint: "https://s3.example.com", region: "eu-west-1", credentialsSecretRef: { name: "s3" } };
const BACKUP = { schedule: "0 */6 * * *", retention: { count: 28, maxAge: "168h" }, store: { s3: STORE } };
const SHA = "b".repeat(64);
const resultAt = (t: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ time: t, location: `s3://backups/fleet/ops/${t.replace(/:/g, "-")}.db`, revision: 100, size: 4096, sha256: SHA, pruned: 0, ...extra });

function harness() {
  let time = Date.parse("2026-12-04T06:30:00Z");
  const cronJobs = new Map<string, k8s.V1CronJob>();
  const jobs = new Map<string, k8s.V1Job>();
  const pods: k8s.V1Pod[] = [];
  const events: { type: string; reason: string; message: string }[] = [];
  const observed: string[] = [];
  const api = {
    calls: [] as string[],
    failWith: undefined as Error | undefined,
  };
  const cluster: { object: ClusterObject } = {
    object: { apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name: "ops", namespace: "fleet", uid: "c-uid", generation: 1 }, spec: minimalSpec() },
  };
  const meta: EtcdBackupApi = {
    async cronJob(namespace, name) {
      api.calls.push(`get cronjob ${name}`);
      if (api.failWith) throw api.failWith;
      return structuredClone(cronJobs.get(`${namespace}/${name}`));
    },
    async jobs(namespace) {
      api.calls.push("list jobs");
      return [...jobs.values()].filter((j) => j.metadata?.namespace === namespace).map((j) => structuredClone(j));
    },
    async jobPods(namespace) {
      api.calls.push("list pods");
      return pods.filter((p) => p.metadata?.namespace === namespace).map((p) => structuredClone(p));
    },
    async createJob(job) {
      api.calls.push(`create job ${job.metadata!.name}`);
      const key = `${job.metadata!.namespace}/${job.metadata!.name}`;
      if (jobs.has(key)) return "exists";
      jobs.set(key, { ...structuredClone(job), metadata: { ...structuredClone(job.metadata), creationTimestamp: new Date(time) } });
      return "created";
    },
    async markReported(namespace, name) {
      api.calls.push(`annotate job ${name}`);
      const j = jobs.get(`${namespace}/${name}`);
      if (j) j.metadata = { ...j.metadata, annotations: { ...(j.metadata?.annotations ?? {}), [BACKUP_REPORTED_ANNOTATION]: "true" } };
    },
  };
  const options = {
    api: meta,
    now: () => new Date(time),
    events: { record: async (_c: ClusterObject, type: "Normal" | "Warning", reason: string, message: string) => void events.push({ type, reason, message }) },
    hooks: {
      lastSuccess: (ns: string, name: string, at: Date | undefined) => observed.push(`last ${ns}/${name} ${at?.toISOString() ?? "none"}`),
      failed: (ns: string, name: string) => observed.push(`failed ${ns}/${name}`),
      gone: (ns: string, name: string) => observed.push(`gone ${ns}/${name}`),
    },
    store: {
      getLive: async () => structuredClone(cluster.object),
      setFinalizers: async () => structuredClone(cluster.object),
      writeStatus: async (_c: ClusterObject, compute: (fresh: ClusterStatus | undefined) => ClusterStatus | undefined) => {
        cluster.object = { ...cluster.object, status: structuredClone(compute(cluster.object.status)) };
      },
    },
  };
  const check = new EtcdBackupCheck(options);
  return {
    api,
    events,
    observed,
    jobs,
    /** Another process (a restart, a new leader): nothing remembered in memory. */
    restarted: () => new EtcdBackupCheck(options),
    advance: (ms: number) => (time += ms),
    at: (iso: string) => (time = Date.parse(iso)),
    /** The stack wrote the CronJob (spec.etcd.backup is set and an up ran). */
    withBackups(created = "2026-12-04T05:00:00Z", schedule = BACKUP.schedule) {
      cluster.object = { ...cluster.object, spec: { ...minimalSpec(), etcd: { ...minimalSpec().etcd, backup: BACKUP } } as ClusterObject["spec"] };
      cronJobs.set(`${MASTERS}/ops-etcd-backup`, {
        metadata: { name: "ops-etcd-backup", namespace: MASTERS, uid: "cj-uid", creationTimestamp: new Date(created) },
        spec: { schedule, jobTemplate: { metadata: { labels: { "app.kubernetes.io/component": "etcd-backup" } }, spec: { template: { spec: { containers: [{ name: "backup" }] } } } } },
      });
    },
    /** The spec asks for backups; the update that writes the CronJob has not run yet. */
    withoutCronJob() {
      cronJobs.clear();
    },
    withoutBackups() {
      cluster.object = { ...cluster.object, spec: minimalSpec() };
      cronJobs.clear();
    },
    annotate(token: string) {
      cluster.object = { ...cluster.object, metadata: { ...cluster.object.metadata, annotations: { [BACKUP_NOW_ANNOTATION]: token } } as ClusterObject["metadata"] };
    },
    /** A Job the CronJob made (or an on-demand one) finishes; its Pod leaves `message`. */
    finish(name: string, state: "Complete" | "Failed", at: string, message?: string, owner = "cj-uid") {
      const key = `${MASTERS}/${name}`;
      const prev = jobs.get(key);
      jobs.set(key, {
        metadata: prev?.metadata ?? { name, namespace: MASTERS, creationTimestamp: new Date(at), ownerReferences: [{ apiVersion: "batch/v1", kind: "CronJob", name: "ops-etcd-backup", uid: owner, controller: true }] },
        status: { ...(state === "Complete" ? { completionTime: new Date(at) } : {}), conditions: [{ type: state, status: "True", lastTransitionTime: new Date(at), ...(state === "Failed" ? { reason: "BackoffLimitExceeded" } : {}) }] },
      });
      pods.push({
        metadata: { name: `${name}-x`, namespace: MASTERS, labels: { [JOB_NAME_LABEL]: name }, creationTimestamp: new Date(at) },
        status: { phase: state === "Complete" ? "Succeeded" : "Failed", containerStatuses: [{ name: "backup", image: "i", imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode: state === "Complete" ? 0 : 1, ...(message !== undefined ? { message } : {}) } } }] },
      });
    },
    running(name: string, at: string) {
      jobs.set(`${MASTERS}/${name}`, {
        metadata: { name, namespace: MASTERS, creationTimestamp: new Date(at), ownerReferences: [{ apiVersion: "batch/v1", kind: "CronJob", name: "ops-etcd-backup", uid: "cj-uid", controller: true }] },
        status: { active: 1, startTime: new Date(at) },
      });
    },
    check: () => check.check(cluster.object, MASTERS),
    checkWith: (c: EtcdBackupCheck) => c.check(cluster.object, MASTERS),
    forget: () => check.forget("fleet", "ops"),
    get status() {
      return cluster.object.status;
    },
    get condition() {
      return cluster.object.status?.conditions?.find((c) => c.type === "EtcdBackupHealthy");
    },
    get etcd() {
      return etcdStatusOf(cluster.object.status);
    },
  };
}

let h: ReturnType<typeof harness>;
beforeEach(() => {
  h = harness();
});

describe("without spec.etcd.backup", () => {
  it("writes nothing and reads nothing of the masters' namespace", async () => {
    expect(await h.check()).toEqual({});
    expect(h.status).toBeUndefined();
    expect(h.api.calls).toEqual([]);
    expect(h.observed).toEqual(["gone fleet/ops"]);
  });

  it("records a backup-now token with a Warning, once, and takes no backup", async () => {
    h.annotate("now-1");
    await h.check();
    await h.check();
    expect(h.events).toEqual([{ type: "Warning", reason: "BackupNotConfigured", message: `${BACKUP_NOW_ANNOTATION} is set but spec.etcd.backup is not: no backup taken` }]);
    expect(h.etcd.lastBackupToken).toBe("now-1");
    expect(h.jobs.size).toBe(0);
  });

  it("refuses a token too long once, not at every check", async () => {
    h.withBackups();
    h.annotate("x".repeat(300));
    await h.check();
    await h.check();
    expect(h.events.map((e) => e.reason)).toEqual(["BackupRefused"]);
    expect(h.etcd.lastBackupToken).toBe("x".repeat(253));
    expect(h.jobs.size).toBe(0);
  });

  it("removes EtcdBackupHealthy once backups are removed from the spec", async () => {
    h.withBackups();
    await h.check();
    expect(h.condition?.reason).toBe("NotYetSucceeded");
    h.withoutBackups();
    await h.check();
    expect(h.condition).toBeUndefined();
    expect(h.observed.at(-1)).toBe("gone fleet/ops");
  });
});

describe("on demand", () => {
  it("creates one Job from the CronJob for a new token, records the token, and looks again soon", async () => {
    h.withBackups();
    h.annotate("2026-12-04 first");
    const name = onDemandJobName("ops", "2026-12-04 first");
    expect(await h.check()).toEqual({ requeueAfter: 15_000 });
    const job = h.jobs.get(`${MASTERS}/${name}`)!;
    expect(job.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "CronJob", uid: "cj-uid", controller: true });
    expect(job.metadata?.labels).toEqual({ "app.kubernetes.io/component": "etcd-backup" });
    expect(h.etcd.lastBackupToken).toBe("2026-12-04 first");
    expect(h.events).toEqual([{ type: "Normal", reason: "BackupRequested", message: `${BACKUP_NOW_ANNOTATION}: backup Job ${name} created in ${MASTERS}` }]);
    await h.check();
    expect(h.jobs.size).toBe(1);
    expect(h.api.calls.filter((c) => c.startsWith("create"))).toHaveLength(1);
  });

  it("after a restart between creating the Job and recording the token, records it without a second Job", async () => {
    h.withBackups();
    h.annotate("t1");
    h.running(onDemandJobName("ops", "t1"), "2026-12-04T06:29:00Z");
    await h.checkWith(h.restarted());
    expect(h.api.calls.filter((c) => c.startsWith("create"))).toEqual([]);
    expect(h.etcd.lastBackupToken).toBe("t1");
  });

  it("waits for a running scheduled backup, then starts", async () => {
    h.withBackups();
    h.running("ops-etcd-backup-29412360", "2026-12-04T06:00:00Z");
    h.annotate("t1");
    expect(await h.check()).toEqual({ requeueAfter: 15_000 });
    expect(h.jobs.size).toBe(1);
    expect(h.etcd.lastBackupToken).toBeUndefined();
    h.finish("ops-etcd-backup-29412360", "Complete", "2026-12-04T06:31:00Z", resultAt("2026-12-04T06:00:00Z"));
    h.at("2026-12-04T06:32:00Z");
    await h.check();
    expect(h.jobs.has(`${MASTERS}/${onDemandJobName("ops", "t1")}`)).toBe(true);
    expect(h.etcd.lastBackupToken).toBe("t1");
  });

  it("waits for the CronJob while the stack has not written it", async () => {
    h.withBackups();
    h.withoutCronJob();
    h.annotate("t1");
    expect(await h.check()).toEqual({ requeueAfter: 15_000 });
    expect(h.jobs.size).toBe(0);
    expect(h.etcd.lastBackupToken).toBeUndefined();
    expect(h.condition).toMatchObject({ status: "Unknown", reason: "NotYetSucceeded", message: "no backup has completed yet" });
  });
});

describe("results", () => {
  it("records the newest good backup, says True/Succeeded, tells each Job once, even to a new process", async () => {
    h.withBackups();
    h.finish("ops-etcd-backup-1", "Complete", "2026-12-04T06:01:00Z", resultAt("2026-12-04T06:00:00Z"));
    await h.check();
    expect(h.etcd.lastBackup).toEqual({ time: "2026-12-04T06:00:00Z", location: "s3://backups/fleet/ops/2026-12-04T06-00-00Z.db", revision: 100, size: 4096 });
    expect(h.condition).toMatchObject({ status: "True", reason: "Succeeded" });
    expect(h.events).toEqual([{ type: "Normal", reason: "BackupSucceeded", message: "backup Job ops-etcd-backup-1: s3://backups/fleet/ops/2026-12-04T06-00-00Z.db (4096 bytes, revision 100, 0 pruned)" }]);
    expect(h.jobs.get(`${MASTERS}/ops-etcd-backup-1`)?.metadata?.annotations?.[BACKUP_REPORTED_ANNOTATION]).toBe("true");
    await h.check();
    await h.checkWith(h.restarted());
    expect(h.events).toHaveLength(1);
    expect(h.observed).toContain("last fleet/ops 2026-12-04T06:00:00.000Z");
  });

  it("says False/Failed with the Pod's line, tells and counts the failure once, keeps the last good backup", async () => {
    h.withBackups();
    h.finish("ops-etcd-backup-1", "Complete", "2026-12-04T06:01:00Z", resultAt("2026-12-04T06:00:00Z"));
    await h.check();
    h.finish("ops-etcd-backup-2", "Failed", "2026-12-04T12:02:00Z", "s3 PUT backups/fleet/ops/2026-12-04T12-00-00Z.db: AccessDenied (403)\n");
    h.at("2026-12-04T12:03:00Z");
    await h.check();
    await h.check();
    expect(h.condition).toMatchObject({
      status: "False",
      reason: "Failed",
      message: "backup Job ops-etcd-backup-2 failed at 2026-12-04T12:02:00Z: s3 PUT backups/fleet/ops/2026-12-04T12-00-00Z.db: AccessDenied (403); the last good backup is s3://backups/fleet/ops/2026-12-04T06-00-00Z.db of 2026-12-04T06:00:00Z",
    });
    expect(h.events.filter((e) => e.reason === "BackupFailed")).toHaveLength(1);
    expect(h.observed.filter((o) => o.startsWith("failed"))).toEqual(["failed fleet/ops"]);
    expect(h.etcd.lastBackup?.time).toBe("2026-12-04T06:00:00Z");
    // The next success clears it.
    h.finish("ops-etcd-backup-3", "Complete", "2026-12-04T18:01:00Z", resultAt("2026-12-04T18:00:00Z"));
    h.at("2026-12-04T18:02:00Z");
    await h.check();
    expect(h.condition).toMatchObject({ status: "True", reason: "Succeeded" });
    expect(h.etcd.lastBackup?.time).toBe("2026-12-04T18:00:00Z");
  });

  it("refuses a hostile result: nothing of it in the status, the Job counted as failed", async () => {
    h.withBackups();
    h.finish("ops-etcd-backup-1", "Complete", "2026-12-04T06:01:00Z", resultAt("2026-12-04T06:00:00Z"));
    await h.check();
    const hostile = [
      resultAt("2026-12-04T12:00:00Z", { location: "s3://attacker-bucket/fleet/ops/2026-12-04T12-00-00Z.db" }),
      resultAt("2026-12-04T12:00:00Z", { size: "1e309", note: "<img src=x onerror=alert(1)>" }),
      `${resultAt("2026-12-04T12:00:00Z")}${" ".repeat(5000)}x`,
    ];
    for (const [i, message] of hostile.entries()) {
      h.finish(`ops-etcd-backup-h${i}`, "Complete", `2026-12-04T12:0${i + 1}:00Z`, message);
    }
    h.at("2026-12-04T12:10:00Z");
    await h.check();
    const text = JSON.stringify({ status: h.status, events: h.events });
    for (const word of ["attacker", "onerror", "1e309"]) expect(text).not.toContain(word);
    expect(h.etcd.lastBackup?.time).toBe("2026-12-04T06:00:00Z");
    expect(h.condition).toMatchObject({ status: "False", reason: "Failed", message: expect.stringContaining("ops-etcd-backup-h2 failed at 2026-12-04T12:03:00Z: its result was refused: the termination message is") });
    expect(h.events.filter((e) => e.reason === "BackupFailed").map((e) => e.message.slice(0, 45))).toEqual([
      "backup Job ops-etcd-backup-h0 succeeded but i",
      "backup Job ops-etcd-backup-h1 succeeded but i",
      "backup Job ops-etcd-backup-h2 succeeded but i",
    ]);
    expect(h.observed.filter((o) => o.startsWith("failed"))).toHaveLength(3);
  });

  it("never puts an older result over a newer lastBackup", async () => {
    h.withBackups();
    h.finish("ops-etcd-backup-2", "Complete", "2026-12-04T12:01:00Z", resultAt("2026-12-04T12:00:00Z"));
    h.at("2026-12-04T12:05:00Z");
    await h.check();
    // An older Job (e.g. an on-demand one that ran long) finishes later.
    h.finish("ops-etcd-backup-1", "Complete", "2026-12-04T11:59:00Z", resultAt("2026-12-04T06:00:00Z"));
    await h.check();
    expect(h.etcd.lastBackup?.time).toBe("2026-12-04T12:00:00Z");
  });

  it("takes the newest snapshot, not the Job that finished last", async () => {
    h.withBackups();
    h.finish("ops-etcd-backup-new", "Complete", "2026-12-04T12:01:00Z", resultAt("2026-12-04T12:00:00Z"));
    h.finish("ops-etcd-backup-slow", "Complete", "2026-12-04T12:02:00Z", resultAt("2026-12-04T06:00:00Z"));
    h.at("2026-12-04T12:05:00Z");
    await h.check();
    expect(h.etcd.lastBackup?.time).toBe("2026-12-04T12:00:00Z");
    expect(h.condition).toMatchObject({ status: "True", reason: "Succeeded" });
  });

  it("ignores Jobs the CronJob does not control", async () => {
    h.withBackups();
    h.finish("impostor", "Complete", "2026-12-04T06:01:00Z", resultAt("2026-12-04T06:00:00Z"), "someone-else");
    await h.check();
    expect(h.etcd.lastBackup).toBeUndefined();
    expect(h.events).toEqual([]);
    expect(h.condition).toMatchObject({ status: "Unknown", reason: "NotYetSucceeded" });
  });
});

describe("lateness", () => {
  it("turns False/Late after 2× the interval past the first due time, with one Warning", async () => {
    h.withBackups();
    h.finish("ops-etcd-backup-1", "Complete", "2026-12-04T06:01:00Z", resultAt("2026-12-04T06:00:00Z"));
    await h.check();
    h.at("2026-12-04T23:59:00Z");
    await h.check();
    expect(h.condition?.reason).toBe("Succeeded");
    h.at("2026-12-05T00:01:00Z");
    await h.check();
    await h.check();
    expect(h.condition).toMatchObject({ status: "False", reason: "Late", message: 'no successful backup since 2026-12-04T06:00:00Z: schedule "0 */6 * * *" (UTC) was due at 2026-12-04T12:00:00Z' });
    expect(h.events.filter((e) => e.reason === "BackupLate")).toHaveLength(1);
  });

  it("reads the schedule the CronJob runs: daily there, late only after two days", async () => {
    h.withBackups("2026-12-04T05:00:00Z", "0 0 * * *");
    h.at("2026-12-06T23:59:00Z");
    await h.check();
    expect(h.condition).toMatchObject({ status: "Unknown", reason: "NotYetSucceeded", message: "no backup has completed yet; the first is due at 2026-12-05T00:00:00Z" });
    h.at("2026-12-07T00:01:00Z");
    await h.check();
    expect(h.condition).toMatchObject({ status: "False", reason: "Late" });
  });

  it("counts from the CronJob's creation before the first backup", async () => {
    h.withBackups("2026-12-04T05:00:00Z");
    h.at("2026-12-04T18:00:01Z");
    await h.check();
    expect(h.condition).toMatchObject({ status: "False", reason: "Late" });
    expect(h.observed).toContain("last fleet/ops none");
  });
});

describe("a meta-cluster that does not answer", () => {
  it("leaves EtcdBackupHealthy Unknown/CheckFailed and does not throw", async () => {
    h.withBackups();
    h.api.failWith = new Error("connect ECONNREFUSED 10.96.0.1:443");
    expect(await h.check()).toEqual({});
    expect(h.condition).toMatchObject({ status: "Unknown", reason: "CheckFailed", message: `the backup Jobs in ${MASTERS} could not be read: connect ECONNREFUSED 10.96.0.1:443` });
  });
});

describe("forget", () => {
  it("drops the Cluster's series", () => {
    h.forget();
    expect(h.observed).toEqual(["gone fleet/ops"]);
  });
});
