/**
 * The operator's etcd backup decisions (src/controllers/cluster/etcd-backups.ts): the on-demand
 * Job and its name, which Jobs are the CronJob's, a Job's state, the strict parse of a backup
 * Pod's termination message (hostile ones included), the failure line, lateness by the schedule
 * and the EtcdBackupHealthy condition.
 */
import type * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  BACKUP_NOW_ANNOTATION,
  INSTANTIATE_ANNOTATION,
  JOB_NAME_LABEL,
  MAX_FAILURE_MESSAGE,
  MAX_RESULT_BYTES,
  backupHealth,
  backupSpecOf,
  expectedLocation,
  failureMessage,
  jobEvent,
  jobFromCronJob,
  jobState,
  lateness,
  onDemandDecision,
  onDemandJobName,
  ownedJobs,
  parseBackupResult,
  scheduleOf,
  terminationMessage,
  type BackupJob,
  type OnDemandInput,
} from "../../src/controllers/cluster/etcd-backups";

const STORE = { bucket: "backups", prefix: "fleet/ops", endpoint: "https://s3.example.com", region: "eu-west-1", credentialsSecretRef: { name: "s3" } };
const NOW = Date.parse("2026-12-04T07:00:00Z");
const SHA = "a".repeat(64);
const good = { time: "2026-12-04T06:00:00Z", location: "s3://backups/fleet/ops/2026-12-04T06-00-00Z.db", revision: 4211, size: 2_101_248, sha256: SHA, pruned: 2 };
const line = (o: unknown) => JSON.stringify(o);

const cronJob = (overrides: Partial<k8s.V1CronJob> = {}): k8s.V1CronJob => ({
  metadata: { name: "ops-etcd-backup", namespace: "kok-fleet-ops-0123456789", uid: "cj-uid", creationTimestamp: new Date("2026-12-01T00:00:00Z") },
  spec: {
    schedule: "0 */6 * * *",
    jobTemplate: {
      metadata: { labels: { "app.kubernetes.io/component": "etcd-backup" }, annotations: { "kubeonkube.io/cluster": "ops" } },
      spec: { backoffLimit: 1, template: { spec: { restartPolicy: "Never", containers: [{ name: "backup", image: "docker.io/kube-on-kube/operator:0.9.0" }] } } },
    },
  },
  ...overrides,
});

const job = (name: string, owner = "cj-uid", status: k8s.V1JobStatus = {}): k8s.V1Job => ({
  metadata: { name, creationTimestamp: new Date("2026-12-04T05:59:00Z"), ownerReferences: [{ apiVersion: "batch/v1", kind: "CronJob", name: "ops-etcd-backup", uid: owner, controller: true }] },
  status,
});

const input = (overrides: Partial<OnDemandInput> = {}): OnDemandInput => ({ cluster: "ops", annotation: "t1", lastToken: undefined, configured: true, cronJob: cronJob(), jobs: [], ...overrides });

describe("the on-demand backup", () => {
  it("names the Job after the token: the same token the same Job, a DNS label within 63 characters", () => {
    const longest = "c".repeat(40);
    const name = onDemandJobName(longest, "any token at all");
    expect(name).toMatch(/^c{40}-etcd-backup-[0-9a-f]{10}$/);
    expect(name.length).toBe(63);
    expect(onDemandJobName("ops", "t1")).toBe(onDemandJobName("ops", "t1"));
    expect(onDemandJobName("ops", "t1")).not.toBe(onDemandJobName("ops", "t2"));
  });

  it("does nothing without the annotation or with the token already handled", () => {
    expect(onDemandDecision(input({ annotation: undefined }))).toEqual({ action: "none" });
    expect(onDemandDecision(input({ annotation: "t1", lastToken: "t1" }))).toEqual({ action: "none" });
  });

  it("creates the token's Job for a new token", () => {
    expect(onDemandDecision(input({ lastToken: "t0" }))).toEqual({ action: "create", token: "t1", name: onDemandJobName("ops", "t1"), exists: false });
  });

  it("only records the token when its Job already exists (created before a restart), even while it runs", () => {
    const mine: BackupJob = { name: onDemandJobName("ops", "t1"), state: "active", at: NOW, reported: false };
    expect(onDemandDecision(input({ jobs: [mine] }))).toEqual({ action: "create", token: "t1", name: mine.name, exists: true });
  });

  it("waits for a running backup Job, and for the CronJob the stack has not written yet", () => {
    const running: BackupJob = { name: "ops-etcd-backup-29012345", state: "active", at: NOW, reported: false };
    const busy = onDemandDecision(input({ jobs: [running] }));
    expect(busy).toMatchObject({ action: "wait" });
    expect(busy.action === "wait" && busy.message).toContain("ops-etcd-backup-29012345");
    expect(onDemandDecision(input({ cronJob: undefined }))).toMatchObject({ action: "wait", message: expect.stringContaining("ops-etcd-backup") });
  });

  it("refuses, and records, a token when backups are not configured or the token is empty or too long", () => {
    expect(onDemandDecision(input({ configured: false }))).toMatchObject({ action: "refuse", token: "t1", reason: "BackupNotConfigured" });
    expect(onDemandDecision(input({ annotation: "" }))).toMatchObject({ action: "refuse", token: "", reason: "BackupRefused" });
    const huge = "x".repeat(10_000);
    const refused = onDemandDecision(input({ annotation: huge }));
    expect(refused).toMatchObject({ action: "refuse", reason: "BackupRefused" });
    // Recorded cut, so the status stays small; the message says the length, never the value.
    expect(refused.action === "refuse" && refused.token.length).toBe(253);
    expect(refused.action === "refuse" && refused.message).toContain("10000");
    expect(refused.action === "refuse" && refused.message).toContain(BACKUP_NOW_ANNOTATION);
  });

  it("builds the Job as `kubectl create job --from=cronjob` does: template labels, annotations and spec, the CronJob as controller", () => {
    const source = cronJob();
    const made = jobFromCronJob(source, "ops-etcd-backup-0123456789");
    expect(made.metadata).toEqual({
      name: "ops-etcd-backup-0123456789",
      namespace: "kok-fleet-ops-0123456789",
      labels: { "app.kubernetes.io/component": "etcd-backup" },
      annotations: { "kubeonkube.io/cluster": "ops", [INSTANTIATE_ANNOTATION]: "manual" },
      ownerReferences: [{ apiVersion: "batch/v1", kind: "CronJob", name: "ops-etcd-backup", uid: "cj-uid", controller: true }],
    });
    expect(made.spec).toEqual(source.spec!.jobTemplate.spec);
    // A copy: the informer's CronJob is never changed through the Job.
    made.spec!.backoffLimit = 9;
    expect(source.spec!.jobTemplate.spec!.backoffLimit).toBe(1);
  });

  it("refuses to build a Job from a CronJob without a template or a uid", () => {
    expect(() => jobFromCronJob(cronJob({ spec: { schedule: "0 * * * *", jobTemplate: {} } }), "x")).toThrow(/kok-fleet-ops-0123456789\/ops-etcd-backup has no spec.jobTemplate.spec/);
    expect(() => jobFromCronJob(cronJob({ metadata: { name: "ops-etcd-backup", namespace: "kok-fleet-ops-0123456789" } }), "x")).toThrow(/no uid/);
  });
});

describe("backup Jobs", () => {
  it("are the Jobs the CronJob controls, by uid, whatever their labels", () => {
    const other = job("other", "another-uid");
    const notController = { ...job("adopted"), metadata: { ...job("adopted").metadata, ownerReferences: [{ apiVersion: "batch/v1", kind: "CronJob", name: "ops-etcd-backup", uid: "cj-uid", controller: false }] } };
    const orphan: k8s.V1Job = { metadata: { name: "orphan", labels: { "app.kubernetes.io/component": "etcd-backup" } } };
    expect(ownedJobs([job("a"), other, notController, orphan, job("b")], cronJob()).map((j) => j.metadata!.name)).toEqual(["a", "b"]);
    expect(ownedJobs([job("a")], cronJob({ metadata: { name: "x" } }))).toEqual([]);
  });

  it("take their state and time from the Job controller's conditions", () => {
    expect(jobState(job("a", "cj-uid", { startTime: new Date("2026-12-04T06:00:00Z"), active: 1 }))).toEqual({ state: "active", at: Date.parse("2026-12-04T06:00:00Z") });
    expect(
      jobState(job("a", "cj-uid", { completionTime: new Date("2026-12-04T06:01:30Z"), conditions: [{ type: "Complete", status: "True", lastTransitionTime: new Date("2026-12-04T06:01:31Z") }] })),
    ).toEqual({ state: "succeeded", at: Date.parse("2026-12-04T06:01:30Z") });
    expect(
      jobState(job("a", "cj-uid", { conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit", lastTransitionTime: new Date("2026-12-04T06:03:00Z") }] })),
    ).toEqual({ state: "failed", at: Date.parse("2026-12-04T06:03:00Z"), jobMessage: "BackoffLimitExceeded: Job has reached the specified backoff limit" });
    // A condition that is not True does not finish it.
    expect(jobState(job("a", "cj-uid", { conditions: [{ type: "Failed", status: "False" }] })).state).toBe("active");
  });

  it("read the termination message of the Succeeded Pod, or of the newest Failed one", () => {
    const pod = (name: string, jobName: string, phase: string, created: string, message?: string): k8s.V1Pod => ({
      metadata: { name, labels: { [JOB_NAME_LABEL]: jobName }, creationTimestamp: new Date(created) },
      status: { phase, containerStatuses: [{ name: "backup", image: "i", imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode: phase === "Succeeded" ? 0 : 1, ...(message ? { message } : {}) } } }] },
    });
    const pods = [
      pod("a-1", "a", "Failed", "2026-12-04T06:00:00Z", "first try failed"),
      pod("a-2", "a", "Failed", "2026-12-04T06:01:00Z", "second try failed"),
      pod("b-1", "b", "Succeeded", "2026-12-04T06:00:00Z", "result of b"),
      pod("c-1", "c", "Failed", "2026-12-04T06:00:00Z"),
    ];
    expect(terminationMessage(pods, "a", "failed")).toBe("second try failed");
    expect(terminationMessage(pods, "b", "succeeded")).toBe("result of b");
    expect(terminationMessage(pods, "b", "failed")).toBeUndefined();
    expect(terminationMessage(pods, "c", "failed")).toBeUndefined();
  });
});

describe("a backup result", () => {
  it("is read from one JSON line with exactly the six fields", () => {
    expect(parseBackupResult(`${line(good)}\n`, STORE, NOW)).toEqual({ ok: true, result: good });
  });

  it("is the key the store's bucket, prefix and the time name, whatever slashes the prefix has", () => {
    expect(expectedLocation(STORE, "2026-12-04T06:00:00Z")).toBe("s3://backups/fleet/ops/2026-12-04T06-00-00Z.db");
    expect(expectedLocation({ ...STORE, prefix: "/fleet/ops/" }, "2026-12-04T06:00:00Z")).toBe("s3://backups/fleet/ops/2026-12-04T06-00-00Z.db");
    expect(parseBackupResult(line({ ...good, location: "s3://backups/2026-12-04T06-00-00Z.db" }), { ...STORE, prefix: "" }, NOW).ok).toBe(true);
  });

  const refused = (message: string | undefined) => {
    const r = parseBackupResult(message, STORE, NOW);
    if (r.ok) throw new Error(`accepted: ${message}`);
    return r.why;
  };

  it("is refused when missing, empty, or not one JSON object", () => {
    expect(refused(undefined)).toBe("no termination message");
    expect(refused("  \n")).toBe("no termination message");
    expect(refused("snapshot saved")).toBe("the termination message is not JSON");
    expect(refused(line([good]))).toBe("the result is not a JSON object");
    expect(refused("null")).toBe("the result is not a JSON object");
    expect(refused(`${line(good)}\n${line(good)}`)).toBe("the termination message is not one line");
  });

  it("is refused when huge, without being parsed", () => {
    const huge = line({ ...good, location: `s3://backups/fleet/ops/${"x".repeat(MAX_RESULT_BYTES)}.db` });
    expect(refused(huge)).toMatch(/^the termination message is \d+ bytes, more than 4096$/);
    // Multi-byte characters count as bytes, not as characters.
    expect(refused(`"${"€".repeat(1400)}"`)).toContain("more than 4096");
  });

  it("is refused with wrong types, and says which fields without echoing them", () => {
    const why = refused(line({ ...good, revision: "4211", size: -1, pruned: 1.5, sha256: SHA.toUpperCase(), time: 1733292000 }));
    expect(why).toContain("revision must be an integer ≥ 1");
    expect(why).toContain("size must be an integer ≥ 1");
    expect(why).toContain("pruned must be an integer ≥ 0");
    expect(why).toContain("sha256 must be 64 lowercase hex digits");
    expect(why).toContain("time must be a UTC time");
    expect(refused(line({ ...good, revision: 2 ** 53 }))).toContain("revision must be an integer");
    expect(refused(line({ ...good, location: 42 }))).toContain("location must be a string");
    expect(refused(line({ ...good, size: 0 }))).toContain("size must be an integer ≥ 1");
  });

  it("is refused with missing or extra fields, the extra ones counted, never named", () => {
    const noSha: Record<string, unknown> = { ...good };
    delete noSha.sha256;
    expect(refused(line(noSha))).toBe("missing field(s) sha256");
    const why = refused(`{${line(good).slice(1, -1)},"<script>alert(1)</script>":1,"__proto__":{"admin":true}}`);
    expect(why).toBe("2 unexpected field(s): only location, pruned, revision, sha256, size, time are allowed");
    expect(why).not.toContain("script");
  });

  it("is refused when the location is another bucket, another prefix, a path escape or another time", () => {
    for (const location of [
      "s3://other-bucket/fleet/ops/2026-12-04T06-00-00Z.db",
      "s3://backups/fleet/other/2026-12-04T06-00-00Z.db",
      "s3://backups/fleet/ops/../other/2026-12-04T06-00-00Z.db",
      "s3://backups/fleet/ops/2026-12-04T05-00-00Z.db",
      "s3://backups/fleet/ops/2026-12-04T06-00-00Z.db.json",
      "https://evil.example.com/fleet/ops/2026-12-04T06-00-00Z.db",
      "s3://backups/fleet/ops/2026-12-04T06-00-00Z.db\u0000",
    ]) {
      const why = refused(line({ ...good, location }));
      expect(why).toBe("location is not s3://backups/fleet/ops/2026-12-04T06-00-00Z.db");
    }
  });

  it("is refused with a time in the future or not in UTC", () => {
    expect(refused(line({ ...good, time: "2026-12-04T08:00:00Z", location: "s3://backups/fleet/ops/2026-12-04T08-00-00Z.db" }))).toBe("time is in the future");
    expect(refused(line({ ...good, time: "2026-12-04T07:00:00+01:00" }))).toContain("time must be a UTC time");
    expect(refused(line({ ...good, time: "2026-12-04T06:00:00.123Z" }))).toContain("time must be a UTC time");
  });
});

describe("a failed backup's message", () => {
  it("is the Pod's line, control characters and escapes removed, whitespace folded", () => {
    expect(failureMessage({ message: "etcd https://ops-etcd-client:2379: connection refused\n" })).toBe("etcd https://ops-etcd-client:2379: connection refused");
    expect(failureMessage({ message: "\u001b[31mred\u001b[0m\r\nnext\u2028line\ttab" })).toBe("[31mred [0m next line tab");
  });

  it("is cut at the limit", () => {
    const text = failureMessage({ message: "x".repeat(5000) });
    expect(text.length).toBe(MAX_FAILURE_MESSAGE);
    expect(text.endsWith("…")).toBe(true);
  });

  it("falls back to the Job's reason, then says there is none", () => {
    expect(failureMessage({ jobMessage: "DeadlineExceeded: Job was active longer than specified deadline" })).toBe("DeadlineExceeded: Job was active longer than specified deadline");
    expect(failureMessage({ message: " \n ", jobMessage: "BackoffLimitExceeded" })).toBe("BackoffLimitExceeded");
    expect(failureMessage({})).toBe("no message (the Pod may have been deleted)");
  });
});

describe("lateness", () => {
  it("is 2× the schedule's interval after the first due time, in UTC", () => {
    expect(lateness("0 */6 * * *", Date.parse("2026-12-04T06:00:00Z"))).toEqual({ firstDue: Date.parse("2026-12-04T12:00:00Z"), deadline: Date.parse("2026-12-05T00:00:00Z") });
    expect(lateness("30 2 * * *", Date.parse("2026-12-04T03:00:00Z"))).toEqual({ firstDue: Date.parse("2026-12-05T02:30:00Z"), deadline: Date.parse("2026-12-07T02:30:00Z") });
  });

  it("takes the interval after the first due time on an irregular schedule (weekdays: Friday to Monday)", () => {
    // 2026-12-04 is a Friday.
    expect(lateness("0 1 * * 1-5", Date.parse("2026-12-03T02:00:00Z"))).toEqual({ firstDue: Date.parse("2026-12-04T01:00:00Z"), deadline: Date.parse("2026-12-10T01:00:00Z") });
  });

  it("is unknown for a schedule croner cannot read", () => {
    expect(lateness("every six hours", NOW)).toBeUndefined();
  });
});

describe("EtcdBackupHealthy", () => {
  const last = { time: "2026-12-04T06:00:00Z", location: good.location, revision: 4211, size: 2_101_248 };
  const base = { schedule: "0 */6 * * *", configuredAt: Date.parse("2026-12-01T00:00:00Z"), lastSuccess: Date.parse(last.time), lastBackup: last, newestFailure: undefined };

  it("is True/Succeeded until the deadline, False/Late after it", () => {
    const ok = backupHealth({ ...base, now: Date.parse("2026-12-04T23:59:59Z") });
    expect(ok).toEqual({ type: "EtcdBackupHealthy", status: "True", reason: "Succeeded", message: `the last backup is ${good.location} of 2026-12-04T06:00:00Z (2101248 bytes, revision 4211)` });
    const late = backupHealth({ ...base, now: Date.parse("2026-12-05T00:00:01Z") });
    expect(late).toEqual({ type: "EtcdBackupHealthy", status: "False", reason: "Late", message: 'no successful backup since 2026-12-04T06:00:00Z: schedule "0 */6 * * *" (UTC) was due at 2026-12-04T12:00:00Z' });
  });

  it("is Unknown/NotYetSucceeded before the first backup, Late from when backups were configured", () => {
    const fresh = { ...base, lastSuccess: undefined, lastBackup: undefined, configuredAt: Date.parse("2026-12-04T05:00:00Z") };
    expect(backupHealth({ ...fresh, now: Date.parse("2026-12-04T05:30:00Z") })).toEqual({ type: "EtcdBackupHealthy", status: "Unknown", reason: "NotYetSucceeded", message: "no backup has completed yet; the first is due at 2026-12-04T06:00:00Z" });
    expect(backupHealth({ ...fresh, now: Date.parse("2026-12-04T18:00:01Z") })).toMatchObject({ status: "False", reason: "Late", message: expect.stringContaining("since backups were configured at 2026-12-04T05:00:00Z") });
    // No CronJob yet: nothing is due, nothing is late.
    expect(backupHealth({ ...fresh, configuredAt: undefined, now: Date.parse("2027-01-01T00:00:00Z") })).toMatchObject({ status: "Unknown", reason: "NotYetSucceeded", message: "no backup has completed yet" });
  });

  it("is False/Failed with the Job's line when the newest finished Job failed, even when also late", () => {
    const failure = { name: "ops-etcd-backup-29012400", at: Date.parse("2026-12-04T12:01:00Z"), message: "s3 PUT backups/fleet/ops/2026-12-04T12-00-00Z.db: AccessDenied" };
    const c = backupHealth({ ...base, newestFailure: failure, now: Date.parse("2026-12-06T00:00:00Z") });
    expect(c).toEqual({
      type: "EtcdBackupHealthy",
      status: "False",
      reason: "Failed",
      message: `backup Job ops-etcd-backup-29012400 failed at 2026-12-04T12:01:00Z: ${failure.message}; the last good backup is ${good.location} of 2026-12-04T06:00:00Z`,
    });
    expect(backupHealth({ ...base, lastBackup: undefined, lastSuccess: undefined, newestFailure: failure, now: NOW }).message).toContain("no backup has succeeded yet");
  });
});

describe("a finished Job's Event", () => {
  const finished = (state: BackupJob["state"], message?: string): BackupJob => ({ name: "ops-etcd-backup-1", state, at: NOW, reported: false, ...(message ? { message } : {}) });

  it("is BackupSucceeded with the location, or BackupFailed with the line or why the result was refused", () => {
    expect(jobEvent(finished("succeeded"), { ok: true, result: good })).toEqual({
      type: "Normal",
      reason: "BackupSucceeded",
      message: `backup Job ops-etcd-backup-1: ${good.location} (2101248 bytes, revision 4211, 2 pruned)`,
    });
    expect(jobEvent(finished("failed", "etcd unreachable"), undefined)).toEqual({ type: "Warning", reason: "BackupFailed", message: "backup Job ops-etcd-backup-1 failed: etcd unreachable" });
    const hostile = finished("succeeded", line({ ...good, location: "s3://attacker/x.db" }));
    const event = jobEvent(hostile, parseBackupResult(hostile.message, STORE, NOW));
    expect(event.type).toBe("Warning");
    expect(event.message).toContain("succeeded but its result was refused (location is not s3://backups/fleet/ops/2026-12-04T06-00-00Z.db)");
    expect(event.message).not.toContain("attacker");
  });
});

describe("the schedule", () => {
  const spec = { store: { s3: STORE } };
  it("is the CronJob's, else the spec's, else every six hours", () => {
    expect(scheduleOf({ ...spec, schedule: "0 0 * * *" }, cronJob())).toBe("0 */6 * * *");
    expect(scheduleOf({ ...spec, schedule: "0 0 * * *" }, undefined)).toBe("0 0 * * *");
    expect(scheduleOf(spec, undefined)).toBe("0 */6 * * *");
  });
});

describe("the backup spec", () => {
  it("is spec.etcd.backup, undefined when absent", () => {
    const storage = { volumeSource: { emptyDir: {} } };
    expect(backupSpecOf({ etcd: { version: "3.6.16", storage } })).toBeUndefined();
    expect(backupSpecOf(undefined)).toBeUndefined();
    expect(backupSpecOf({ etcd: { version: "3.6.16", storage, backup: { schedule: "0 * * * *", store: { s3: STORE } } } })?.store.s3.bucket).toBe("backups");
  });
});
