/**
 * The etcd backup check against a real kube-apiserver (test/support/apiserver.ts), as the
 * operator's own ServiceAccount (a TokenRequest token, so `kok manifests`' RBAC and admission
 * policy decide): the on-demand Job made from a CronJob like the stack's is accepted by the
 * apiserver's validation and owned by the CronJob, a second create of the same token is a 409
 * (not a second Job), the result is read from a real Pod's termination message, the finished Job
 * is annotated once, and a Job in a namespace the operator does not manage is refused.
 *
 * No kube-controller-manager runs: the test writes the Job's and Pod's status itself, as the Job
 * controller and the kubelet would.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { ClusterObject, ClusterStatus } from "../../src/api/v1alpha1";
import { KubeEtcdBackupApi } from "../../src/controllers/cluster/etcd-backup-api";
import { EtcdBackupCheck } from "../../src/controllers/cluster/etcd-backup-check";
import { BACKUP_NOW_ANNOTATION, BACKUP_REPORTED_ANNOTATION, JOB_NAME_LABEL, etcdStatusOf, jobFromCronJob, onDemandJobName } from "../../src/controllers/cluster/etcd-backups";
import { installManifests } from "../../src/operator/install-manifests";
import { OPERATOR_NAME } from "../../src/operator/rbac";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { writeGated } from "../../src/runtime/write-gate";
import { TOOLCHAIN_DIR } from "../support/engine";
import { minimalSpec } from "../support/specs";

const OPERATOR_NS = "kube-on-kube-system";
const MASTERS = "kok-fleet-ops-0123456789";
const STORE = { bucket: "backups", prefix: "fleet/ops", endpoint: "https://s3.example.com", region: "eu-west-1", credentialsSecretRef: { name: "s3" } };

let api: TestApiserver;
let dir: string;
let admin: { batch: k8s.BatchV1Api; core: k8s.CoreV1Api };
let operatorConfig: k8s.KubeConfig;

function kubectl(args: string[]): void {
  execFileSync(path.join(TOOLCHAIN_DIR, "bin", "kubectl"), ["--kubeconfig", path.join(dir, "kubeconfig"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
}

/** A CronJob like the one the Cluster's stack writes (the fields the apiserver validates). */
const cronJob = (namespace: string): k8s.V1CronJob => ({
  apiVersion: "batch/v1",
  kind: "CronJob",
  metadata: { name: "ops-etcd-backup", namespace, labels: { "app.kubernetes.io/component": "etcd-backup" } },
  spec: {
    schedule: "0 */6 * * *",
    timeZone: "Etc/UTC",
    concurrencyPolicy: "Forbid",
    successfulJobsHistoryLimit: 3,
    failedJobsHistoryLimit: 3,
    jobTemplate: {
      metadata: { labels: { "app.kubernetes.io/component": "etcd-backup", "kubeonkube.io/cluster": "ops" } },
      spec: {
        backoffLimit: 1,
        template: {
          metadata: { labels: { "app.kubernetes.io/component": "etcd-backup" } },
          spec: {
            restartPolicy: "Never",
            containers: [{ name: "backup", image: "docker.io/kube-on-kube/operator:0.0.0", terminationMessagePath: "/dev/termination-log" }],
          },
        },
      },
    },
  },
});

beforeAll(async () => {
  api = await startTestApiserver();
  dir = mkdtempSync(path.join(tmpdir(), "kok-backup-api-"));
  writeFileSync(path.join(dir, "kubeconfig"), api.kubeConfig().exportConfig());
  writeFileSync(path.join(dir, "install.yaml"), installManifests().map((o) => stringify(o, { aliasDuplicateObjects: false })).join("---\n"));
  kubectl(["apply", "-f", path.join(dir, "install.yaml")]);
  const kc = api.kubeConfig();
  admin = { batch: kc.makeApiClient(k8s.BatchV1Api), core: kc.makeApiClient(k8s.CoreV1Api) };
  await admin.core.createNamespace({ body: { metadata: { name: MASTERS, labels: { "app.kubernetes.io/managed-by": "kube-on-kube" } } } });
  await admin.core.createNamespace({ body: { metadata: { name: "tenant-a" } } });
  // No controller-manager makes it: the test's backup Pod runs under it.
  await admin.core.createNamespacedServiceAccount({ namespace: MASTERS, body: { metadata: { name: "default" } } });
  await admin.batch.createNamespacedCronJob({ namespace: MASTERS, body: cronJob(MASTERS) });
  await admin.batch.createNamespacedCronJob({ namespace: "tenant-a", body: cronJob("tenant-a") });
  // The operator's identity: a token of its ServiceAccount, so RBAC and the admission policy apply.
  const token = await admin.core.createNamespacedServiceAccountToken({ namespace: OPERATOR_NS, name: OPERATOR_NAME, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  operatorConfig = new k8s.KubeConfig();
  const cluster = kc.getCurrentCluster()!;
  operatorConfig.loadFromOptions({
    clusters: [cluster],
    users: [{ name: "operator", token: token.status!.token }],
    contexts: [{ name: "operator", cluster: cluster.name, user: "operator" }],
    currentContext: "operator",
  });
  // The admission policy is enforced once the apiserver's admission informer has it.
  const probe = jobFromCronJob(await admin.batch.readNamespacedCronJob({ namespace: "tenant-a", name: "ops-etcd-backup" }), "probe");
  const batch = operatorConfig.makeApiClient(k8s.BatchV1Api);
  for (let attempt = 0; ; attempt++) {
    const refused = await batch.createNamespacedJob({ namespace: "tenant-a", body: probe, dryRun: "All" }).then(
      () => false,
      (e: unknown) => /kube-on-kube operator/.test(String((e as { body?: unknown }).body ?? e)),
    );
    if (refused) break;
    if (attempt > 300) throw new Error("the admission policy is not enforced");
    await new Promise((r) => setTimeout(r, 100));
  }
}, 120_000);

afterAll(async () => {
  await api?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function harness() {
  let object: ClusterObject = {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Cluster",
    metadata: { name: "ops", namespace: "fleet", uid: "c-uid", generation: 1 },
    spec: { ...minimalSpec(), etcd: { ...minimalSpec().etcd, backup: { schedule: "0 */6 * * *", retention: { count: 28, maxAge: "168h" }, store: { s3: STORE } } } } as ClusterObject["spec"],
  };
  const events: string[] = [];
  const check = new EtcdBackupCheck({
    api: new KubeEtcdBackupApi(operatorConfig),
    now: () => new Date(),
    events: { record: async (_c, type, reason, message) => void events.push(`${type} ${reason}: ${message}`) },
    store: {
      getLive: async () => object,
      setFinalizers: async () => object,
      writeStatus: async (_c, compute: (s: ClusterStatus | undefined) => ClusterStatus | undefined) => {
        object = { ...object, status: compute(object.status) };
      },
    },
  });
  return {
    events,
    annotate: (token: string) => (object = { ...object, metadata: { ...object.metadata, annotations: { [BACKUP_NOW_ANNOTATION]: token } } as ClusterObject["metadata"] }),
    check: () => check.check(object, MASTERS),
    get object() {
      return object;
    },
  };
}

describe("the etcd backup check on a real apiserver, as the operator", () => {
  it("creates the on-demand Job, reads its result from the Pod, and annotates it once", async () => {
    const h = harness();
    h.annotate("first");
    const name = onDemandJobName("ops", "first");
    expect(await h.check()).toEqual({ requeueAfter: 15_000 });
    const job = await admin.batch.readNamespacedJob({ namespace: MASTERS, name });
    const cron = await admin.batch.readNamespacedCronJob({ namespace: MASTERS, name: "ops-etcd-backup" });
    expect(job.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: "CronJob", name: "ops-etcd-backup", uid: cron.metadata!.uid, controller: true })]);
    expect(job.metadata?.annotations?.["cronjob.kubernetes.io/instantiate"]).toBe("manual");
    expect(job.spec?.template.spec?.containers[0].image).toBe("docker.io/kube-on-kube/operator:0.0.0");
    expect(etcdStatusOf(h.object.status).lastBackupToken).toBe("first");

    // The same token's Job again (a restart before the token was recorded): a 409, no second Job.
    expect(await new KubeEtcdBackupApi(operatorConfig).createJob(jobFromCronJob(cron, name))).toBe("exists");

    // The kubelet and the Job controller's part: a Pod that succeeded with the result line, the Job complete.
    const started = new Date(Date.now() - 60_000);
    const time = new Date(Math.floor((Date.now() - 30_000) / 1000) * 1000).toISOString().replace(".000Z", "Z");
    const result = JSON.stringify({ time, location: `s3://backups/fleet/ops/${time.replace(/:/g, "-")}.db`, revision: 7, size: 20480, sha256: "c".repeat(64), pruned: 0 });
    const pod = await admin.core.createNamespacedPod({
      namespace: MASTERS,
      body: { metadata: { name: `${name}-abcde`, labels: { [JOB_NAME_LABEL]: name } }, spec: { restartPolicy: "Never", containers: [{ name: "backup", image: "docker.io/kube-on-kube/operator:0.0.0" }] } },
    });
    await admin.core.replaceNamespacedPodStatus({
      namespace: MASTERS,
      name: pod.metadata!.name!,
      body: {
        ...pod,
        status: {
          phase: "Succeeded",
          containerStatuses: [{ name: "backup", image: "docker.io/kube-on-kube/operator:0.0.0", imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode: 0, message: `${result}\n`, startedAt: started, finishedAt: new Date() } } }],
        },
      },
    });
    const now = new Date();
    await admin.batch.replaceNamespacedJobStatus({
      namespace: MASTERS,
      name,
      body: {
        ...job,
        status: {
          startTime: started,
          completionTime: now,
          succeeded: 1,
          conditions: [
            { type: "SuccessCriteriaMet", status: "True", lastTransitionTime: now, lastProbeTime: now },
            { type: "Complete", status: "True", lastTransitionTime: now, lastProbeTime: now },
          ],
        },
      },
    });

    expect(await h.check()).toEqual({});
    expect(etcdStatusOf(h.object.status).lastBackup).toEqual({ time, location: `s3://backups/fleet/ops/${time.replace(/:/g, "-")}.db`, revision: 7, size: 20480 });
    expect(h.object.status?.conditions?.find((c) => c.type === "EtcdBackupHealthy")).toMatchObject({ status: "True", reason: "Succeeded" });
    const reported = await admin.batch.readNamespacedJob({ namespace: MASTERS, name });
    expect(reported.metadata?.annotations?.[BACKUP_REPORTED_ANNOTATION]).toBe("true");
    await h.check();
    expect(h.events.filter((e) => e.includes("BackupSucceeded"))).toHaveLength(1);
    expect(h.events.filter((e) => e.includes("BackupRequested"))).toHaveLength(1);
  });

  it("writes nothing once this replica's term ended (the write gate), and still reads", async () => {
    const fenced = new KubeEtcdBackupApi(operatorConfig, (a, what) => writeGated(a, () => false, what));
    const cron = await fenced.cronJob(MASTERS, "ops-etcd-backup");
    expect(cron?.metadata?.uid).toBeDefined();
    await expect(fenced.createJob(jobFromCronJob(cron!, "ops-etcd-backup-fenced"))).rejects.toThrow(/BatchV1Api.createNamespacedJob/);
    await expect(fenced.markReported(MASTERS, "ops-etcd-backup-fenced")).rejects.toThrow(/BatchV1Api.patchNamespacedJob/);
    expect((await fenced.jobs(MASTERS)).map((j) => j.metadata?.name)).not.toContain("ops-etcd-backup-fenced");
  });

  it("is refused a Job outside the namespaces it manages", async () => {
    const cron = await admin.batch.readNamespacedCronJob({ namespace: "tenant-a", name: "ops-etcd-backup" });
    await expect(new KubeEtcdBackupApi(operatorConfig).createJob(jobFromCronJob(cron, "escape"))).rejects.toThrow(/kube-on-kube operator/);
  });
});
