/**
 * The operator's front door, end to end: `kubectl apply` of a Cluster resource on the local
 * meta-cluster → the operator (in this process, real engine, real informer, real Lease) runs the
 * stack → the masters really run on the dev node → status Ready with the endpoint, the admin
 * kubeconfig Secret next to the resource works, Events and metrics tell what happened; etcd scaled
 * 1 → 3 → 5 → 3 on PersistentVolumeClaims and a member whose claim was deleted replaced, under a
 * writing client; deleting the Cluster destroys the stack and its namespace before the finalizer
 * lets go.
 */
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { X509Certificate } from "node:crypto";
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { mastersNamespaceOf, ROTATE_CA_ANNOTATION, type ClusterSpec } from "../../src/api/v1alpha1";
import { loadConfig, type DevConfig } from "../../src/dev/config";
import { devAdminPolicy } from "../../src/dev/dev-policy";
import { OBJECT_STORE_BUCKET, OBJECT_STORE_REGION, objectStorePodEndpoint, objectStoreTarget } from "../../src/dev/object-store";
import { certificateFingerprint, parseCertificates } from "../../src/runtime/certificates";
import { S3Client, parseS3Url } from "../../src/runtime/s3/client";
import { toolchainBinary, toolchainEngineEnv } from "../../src/dev/toolchain";
import { startOperator, type RunningOperator } from "../../src/operator/operator";
import { eventually, freeNodePort } from "../support/dev-cluster";
import { kubectlLoop } from "../support/kubectl-loop";
import { pushOperatorImage, startMetaCluster, type MetaCluster } from "../support/operator-e2e";
import { minimalSpec } from "../support/specs";

// Free ports of this machine, chosen at start: another e2e file may run beside this one.
let NODE_PORT: number;
/** The Cluster restored from ops' backup answers here. */
let RESTORED_NODE_PORT: number;
/** The masters' namespace of Cluster fleet/ops (src/api/v1alpha1/names.ts). */
const MASTERS = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "ops" } });
let meta: MetaCluster;
const kubectl = (...args: string[]) => meta.kubectl(...args);
const json = <T>(...args: string[]) => meta.json<T>(...args);

let operator: RunningOperator | undefined;
let devConfig: DevConfig;
const readFileSyncUtf8 = (file: string) => readFileSync(file, "utf8");
const metricsText = async () => {
  const { host, port } = operator!.server.address;
  return (await fetch(`http://${host}:${port}/metrics`)).text();
};

beforeAll(async () => {
  NODE_PORT = await freeNodePort();
  do RESTORED_NODE_PORT = await freeNodePort();
  while (RESTORED_NODE_PORT === NODE_PORT);
  meta = await startMetaCluster("kok-operator-e2e");
  devConfig = loadConfig(meta.dev.stateDir)!;
  // The etcd backup Jobs run the operator image.
  await pushOperatorImage(meta);
  operator = await startOperator({
    // The dev policy: its one backup endpoint is the dev object store as Pods reach it.
    policy: devAdminPolicy(devConfig),
    kubeconfigPath: meta.dev.kubeconfig,
    backendUrl: meta.backendUrl,
    workRoot: join(meta.work, "work"),
    // Short, so the drift test sees a sweep; nothing asserts how long anything took.
    resyncMs: 20_000,
    concurrency: 2,
    metricsAddr: "127.0.0.1:0",
    leaderElectionNamespace: "kube-system",
    engineEnv: toolchainEngineEnv("kok-operator-e2e"),
    log: () => undefined,
  });
});

afterAll(async () => {
  await operator?.stop();
  await meta?.down();
});

describe("the operator reconciles a Cluster resource", () => {
  it("brings a Cluster applied with kubectl to Ready, with the endpoint and a working admin kubeconfig", async () => {
    // etcd on PersistentVolumeClaims of the dev node's local-path StorageClass, as a platform runs it.
    meta.applyCluster(
      "ops",
      minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort: NODE_PORT, port: 6443 } }, etcd: { version: "3.6.16", storage: { claimTemplate: { size: "100Mi" } } } }),
    );
    const ready = await meta.waitForCluster("ops", "Ready", (c) => c.status?.phase === "Ready");
    expect(ready.metadata.finalizers).toContain("kubeonkube.io/cluster-stack");
    expect(ready.status).toMatchObject({
      observedGeneration: ready.metadata.generation,
      endpoint: `https://127.0.0.1:${NODE_PORT}`,
      version: "v1.36.3",
      adminKubeconfigSecret: "ops-admin-kubeconfig",
      lastOperation: { kind: "up", result: "succeeded" },
    });
    expect(ready.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "True" });

    const adminKubeconfig = meta.adminKubeconfig("ops");
    const readyz = execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", adminKubeconfig, "get", "--raw", "/readyz"], { encoding: "utf8" });
    expect(readyz.trim()).toBe("ok");
  });

  it("shows the printer columns, records Events and counts reconciles in its metrics", async () => {
    const table = kubectl("-n", "fleet", "get", "kc", "ops");
    expect(table.split("\n")[0].split(/\s+/).filter(Boolean)).toEqual(["NAME", "MODE", "VERSION", "PHASE", "ENDPOINT", "AGE"]);
    expect(table).toContain(`minimal   v1.36.3   Ready   https://127.0.0.1:${NODE_PORT}`);
    expect(meta.events("ops").map((e) => e.reason)).toContain("Applied");
    // The reconcile ends after its status write (the add-ons' readiness is read after the update):
    // its count follows a moment later.
    const counted = /controller_runtime_reconcile_total\{controller="Cluster",result="requeue_after"\} [1-9]/;
    const metrics = await eventually("the Cluster's reconcile counted", async () => {
      const text = await metricsText();
      return counted.test(text) ? text : undefined;
    }, 60_000).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await metricsText()}`);
    });
    expect(metrics).toMatch(counted);
  });

  it("puts back a master Deployment deleted behind its back, after a Drifted Event", async () => {
    kubectl("-n", MASTERS, "delete", "deployment", "ops-scheduler");
    await eventually(
      `Deployment ${MASTERS}/ops-scheduler restored and available`,
      async () => {
        const d = json<{ status?: { availableReplicas?: number } }>("-n", MASTERS, "get", "deployment", "ops-scheduler");
        return (d.status?.availableReplicas ?? 0) >= 1 ? true : undefined;
      },
      600_000,
    );
    const drifted = meta.events("ops").find((e) => e.reason === "Drifted");
    expect(drifted?.message).toContain("1 to create");
    // The Event names what drifted, not only how much.
    expect(drifted?.message).toMatch(/create Deployment \S*scheduler/);
    // The Deployment is back before the correcting `up` has finished and written the status.
    const corrected = await meta.waitForCluster("ops", "Drifted=False after the correction", (c) => c.status?.conditions?.find((x) => x.type === "Drifted")?.status === "False" && c.status.phase === "Ready");
    const metrics = await metricsText();
    expect(metrics).toMatch(/kube_on_kube_drift_checks_total\{kind="Cluster",method="preview",result="drifted"\} [1-9]/);
    expect(metrics).toMatch(/kube_on_kube_drift_corrections_total\{kind="Cluster"\} [1-9]/);
    const expiresAt = Date.parse(corrected.status?.certificatesExpireAt ?? "") / 1000;
    expect(metrics).toContain(`kube_on_kube_certificates_expire_at_seconds{namespace="fleet",name="ops"} ${expiresAt}`);
  });

  it("checks a steady Cluster by its live objects' fingerprint after one full preview, and finds no drift", async () => {
    // After the correction: one full preview verifies the stack, the checks after it read only the fingerprint.
    const fingerprintChecks = /kube_on_kube_drift_checks_total\{kind="Cluster",method="fingerprint",result="in-sync"\} (\d+)/;
    const text = await eventually(
      "a drift check by fingerprint",
      async () => {
        const t = await metricsText();
        return Number(fingerprintChecks.exec(t)?.[1] ?? 0) >= 2 ? t : undefined;
      },
      300_000,
    );
    const drifts = meta.events("ops").filter((e) => e.reason === "Drifted");
    expect(drifts).toHaveLength(1);
    expect(text).toMatch(/kube_on_kube_drift_checks_total\{kind="Cluster",method="preview",result="in-sync"\} [1-9]/);
  });

  it("rejects an invalid Cluster at the apiserver, before the operator sees it", () => {
    const bad = join(meta.work, "bad.yaml");
    writeFileSync(bad, stringify({ apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name: "bad", namespace: "fleet" }, spec: { ...minimalSpec(), etcd: { version: "3.6.16", replicas: 2, storage: {} } } }));
    let message = "";
    try {
      kubectl("apply", "-f", bad);
    } catch (e) {
      message = String((e as { stderr?: string }).stderr ?? e);
    }
    expect(message).toContain("spec.etcd.replicas must be odd");
    expect(message).toContain("set exactly one of claimTemplate or volumeSource");
  });

  it("backs etcd up on demand into the object store, and a new Cluster restored from it holds the same objects", async () => {
    const admin = meta.adminKubeconfig("ops");
    const business = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", admin, ...args], { encoding: "utf8" });
    // What the tenant's cluster holds before the backup: it must come back in the restored one.
    for (let i = 0; i < 5; i++) business("-n", "default", "create", "configmap", `keep-${i}`, `--from-literal=value=before-backup-${i}`);
    // The tenant's Secret with the store's keys, in the Cluster's namespace (the spec names it).
    const credentials = objectStoreTarget(devConfig).credentials;
    kubectl("-n", "fleet", "create", "secret", "generic", "backup-store", `--from-literal=accessKeyId=${credentials.accessKeyId}`, `--from-literal=secretAccessKey=${credentials.secretAccessKey}`);
    const store = { bucket: OBJECT_STORE_BUCKET, prefix: "e2e/ops", endpoint: objectStorePodEndpoint(devConfig), region: OBJECT_STORE_REGION, credentialsSecretRef: { name: "backup-store" } };
    const current = meta.getCluster("ops");
    const spec = current.spec as ClusterSpec;
    // With a user kubeconfig too (one update for both; the next test uses it).
    const kubeconfigs = [{ name: "viewer", user: "jane", groups: ["viewers"], validityDays: 30 }];
    meta.applyCluster("ops", { ...spec, kubeconfigs, etcd: { ...spec.etcd, backup: { schedule: "0 3 * * *", retention: { count: 3, maxAge: "24h" }, store: { s3: store } } } });
    const generation = meta.getCluster("ops").metadata.generation;
    await meta.waitForCluster("ops", "Ready with backups configured", (c) => c.status?.observedGeneration === generation && c.status?.phase === "Ready");
    expect(kubectl("-n", MASTERS, "get", "cronjob", "ops-etcd-backup", "-o", "jsonpath={.spec.schedule} {.spec.timeZone}")).toBe("0 3 * * * Etc/UTC");

    kubectl("-n", "fleet", "annotate", "cluster", "ops", "kubeonkube.io/backup-now=first");
    const backedUp = await meta.waitForCluster(
      "ops",
      "backed up on demand",
      (c) => (c.status as { etcd?: { lastBackupToken?: string; lastBackup?: unknown } }).etcd?.lastBackup !== undefined,
      600_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${kubectl("-n", MASTERS, "get", "jobs,pods", "-o", "wide")}\n${kubectl("-n", MASTERS, "describe", "pods", "-l", "app.kubernetes.io/component=etcd-backup")}`);
    });
    const etcd = (backedUp.status as { etcd: { lastBackupToken?: string; lastBackup: { time: string; location: string; revision: number; size: number } } }).etcd;
    expect(etcd.lastBackupToken).toBe("first");
    expect(etcd.lastBackup.location).toMatch(/^s3:\/\/kok-dev\/e2e\/ops\/\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z\.db$/);
    expect(etcd.lastBackup.revision).toBeGreaterThan(0);
    expect(backedUp.status?.conditions?.find((c) => c.type === "EtcdBackupHealthy")).toMatchObject({ status: "True", reason: "Succeeded" });
    expect(meta.events("ops").map((e) => e.reason)).toEqual(expect.arrayContaining(["BackupRequested", "BackupSucceeded"]));
    // The snapshot and its sidecar are in the bucket, at the size the status says.
    const target = objectStoreTarget(devConfig);
    const objects = await new S3Client({ endpoint: target.endpoint, region: target.region, credentials: target.credentials }).list(OBJECT_STORE_BUCKET, "e2e/ops/");
    const { key } = parseS3Url(etcd.lastBackup.location)!;
    expect(objects.find((o) => o.key === key)?.size).toBe(etcd.lastBackup.size);
    expect(objects.map((o) => o.key)).toContain(key.replace(/\.db$/, ".json"));
    // No secret of the store in the Cluster's status or Events.
    const told = JSON.stringify({ status: meta.getCluster("ops").status, events: meta.events("ops") });
    expect(told).not.toContain(credentials.secretAccessKey);

    const restoredSpec: ClusterSpec = {
      ...spec,
      apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort: RESTORED_NODE_PORT, port: 6443 } },
      etcd: { ...spec.etcd, backup: { store: { s3: store } }, restore: { snapshot: etcd.lastBackup.location } },
    };
    meta.applyCluster("restored", restoredSpec);
    await meta.waitForCluster("restored", "Ready from the snapshot", (c) => c.status?.phase === "Ready");
    const restored = meta.adminKubeconfig("restored");
    const values = execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", restored, "-n", "default", "get", "configmaps", "-o", "jsonpath={range .items[*]}{.metadata.name}={.data.value}{\"\\n\"}{end}"], { encoding: "utf8" });
    for (let i = 0; i < 5; i++) expect(values).toContain(`keep-${i}=before-backup-${i}`);
    // A new cluster of its own: its masters answer with their own certificates, not ops'.
    expect(readFileSyncUtf8(restored)).not.toBe(readFileSyncUtf8(admin));

    kubectl("-n", "fleet", "delete", "cluster", "restored", "--wait=false");
    await eventually("Cluster fleet/restored gone", async () => (kubectl("-n", "fleet", "get", "clusters", "-o", "name").includes("cluster.kubeonkube.io/restored") ? undefined : true), 900_000);
  });

  it("delivers a user kubeconfig next to the Cluster that gets exactly what RBAC grants its group", () => {
    const secret = json<{ data: { kubeconfig: string } }>("-n", "fleet", "get", "secret", "ops.kubeconfig.viewer");
    const file = join(meta.work, "viewer.kubeconfig");
    writeFileSync(file, Buffer.from(secret.data.kubeconfig, "base64"), { mode: 0o600 });
    const asViewer = (...args: string[]) => {
      try {
        return { ok: true, out: execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", file, ...args], { encoding: "utf8", stdio: "pipe" }) };
      } catch (error) {
        return { ok: false, out: String((error as { stderr?: string }).stderr ?? error) };
      }
    };
    // Authenticated as jane of group viewers, and nothing granted yet.
    const before = asViewer("-n", "default", "get", "configmaps");
    expect(before).toMatchObject({ ok: false });
    expect(before.out).toContain('User "jane" cannot list resource "configmaps"');
    // The business cluster's admin binds the group to `view` in default, as a platform would.
    execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", meta.adminKubeconfig("ops"), "-n", "default", "create", "rolebinding", "viewers", "--clusterrole=view", "--group=viewers"]);
    const after = asViewer("-n", "default", "get", "configmaps", "-o", "name");
    expect(after.ok, after.out).toBe(true);
    expect(after.out).toContain("configmap/keep-0");
    const write = asViewer("-n", "default", "create", "configmap", "not-allowed", "--from-literal=a=b");
    expect(write).toMatchObject({ ok: false });
    expect(write.out).toContain('User "jane" cannot create resource "configmaps"');
    expect(asViewer("-n", "default", "get", "secrets")).toMatchObject({ ok: false });
    expect(asViewer("-n", "kube-system", "get", "configmaps")).toMatchObject({ ok: false });
  });

  it("revokes a user kubeconfig whose entry is removed: refused once the apiservers have rolled, its Secret gone", async () => {
    const file = join(meta.work, "viewer.kubeconfig"); // the previous test's copy, as a departed user keeps it
    const asViewer = () => {
      try {
        return { ok: true, out: execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", file, "-n", "default", "get", "configmaps", "-o", "name"], { encoding: "utf8", stdio: "pipe" }) };
      } catch (error) {
        return { ok: false, out: String((error as { stderr?: string }).stderr ?? error) };
      }
    };
    expect(asViewer().ok).toBe(true);
    const spec = meta.getCluster("ops").spec as ClusterSpec;
    meta.applyCluster("ops", { ...spec, kubeconfigs: [] });
    const generation = meta.getCluster("ops").metadata.generation;
    await meta.waitForCluster("ops", "Ready without the viewer entry", (c) => c.status?.observedGeneration === generation && c.status?.phase === "Ready");
    const after = asViewer();
    expect(after.ok, after.out).toBe(false);
    expect(after.out).toContain("Unauthorized");
    expect(kubectl("-n", "fleet", "get", "secrets", "-o", "name")).not.toContain("ops.kubeconfig.viewer");
    // Everyone else is untouched: the admin's kubeconfig still answers.
    expect(execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", meta.adminKubeconfig("ops"), "get", "--raw", "/readyz"], { encoding: "utf8" })).toBe("ok");
  });

  it("scales etcd 1 → 3 → 5 → 3 one member at a time under a writing client, and replaces a member whose volume was lost", async () => {
    const admin = meta.adminKubeconfig("ops");
    // A client writing all along, never blocking the operator that runs in this process.
    const run = promisify(execFile);
    const writes = { ok: 0, failed: 0, errors: [] as string[] };
    let writing = true;
    const writer = (async () => {
      for (let n = 0; writing; n++) {
        try {
          await run(toolchainBinary("kubectl"), ["--kubeconfig", admin, "--request-timeout=10s", "-n", "default", "create", "configmap", `w-${n}`, `--from-literal=n=${n}`]);
          writes.ok++;
        } catch (error) {
          writes.failed++;
          writes.errors.push(String((error as { stderr?: string }).stderr ?? error).trim().slice(0, 200));
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    type Etcd = { members?: number; memberList?: { name: string; id: string; learner: boolean; healthy: boolean }[] };
    const etcdOf = (c: { status?: unknown }) => ((c.status as { etcd?: Etcd }).etcd ?? {}) as Etcd;
    const stableWith = (n: number) => (c: { status?: { conditions?: { type: string; status: string }[] } }) =>
      c.status?.conditions?.some((x) => x.type === "EtcdMembership" && x.status === "True") === true && etcdOf(c).members === n && etcdOf(c).memberList?.length === n;
    const describe = () => `${kubectl("-n", MASTERS, "get", "pods,jobs", "-o", "wide")}\n${meta.events("ops").filter((e) => /Member|Membership|Quorum/.test(e.reason)).map((e) => `${e.reason}: ${e.message}`).join("\n")}`;
    const scale = async (replicas: number) => {
      const spec = meta.getCluster("ops").spec as ClusterSpec;
      const started = Date.now();
      meta.applyCluster("ops", { ...spec, etcd: { ...spec.etcd, replicas } });
      const done = await meta.waitForCluster("ops", `etcd at ${replicas} voting members`, stableWith(replicas), 900_000).catch((error: Error) => {
        throw new Error(`${error.message}\n${describe()}`);
      });
      console.log(`etcd scaled to ${replicas} in ${Math.round((Date.now() - started) / 1000)} s`);
      return done;
    };
    // The first observation of a running cluster: one voter.
    await meta.waitForCluster("ops", "etcd membership observed", stableWith(1), 600_000);

    const three = await scale(3);
    expect(etcdOf(three).memberList?.map((m) => m.name)).toEqual(["ops-etcd-0", "ops-etcd-1", "ops-etcd-2"]);
    expect(json<{ spec: { replicas: number } }>("-n", MASTERS, "get", "statefulset", "ops-etcd").spec.replicas).toBe(3);
    const reasons = meta.events("ops").map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(["MemberAdded", "MemberPromoted", "MembershipStable"]));

    // Member 1 loses its volume: its claim deleted (kept until its Pod is gone), then its Pod. The
    // StatefulSet brings it back on a new, empty claim; the operator removes the old member and
    // adds it back as a new one.
    const before = etcdOf(three).memberList!.find((m) => m.name === "ops-etcd-1")!;
    const claimUid = kubectl("-n", MASTERS, "get", "pvc", "data-ops-etcd-1", "-o", "jsonpath={.metadata.uid}");
    const lostAt = Date.now();
    kubectl("-n", MASTERS, "delete", "pvc", "data-ops-etcd-1", "--wait=false");
    kubectl("-n", MASTERS, "delete", "pod", "ops-etcd-1", "--wait=false");
    const replaced = await meta.waitForCluster("ops", "member ops-etcd-1 replaced", (c) => stableWith(3)(c) && etcdOf(c).memberList!.some((m) => m.name === "ops-etcd-1" && m.id !== before.id), 900_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${describe()}`);
    });
    console.log(`etcd member replaced in ${Math.round((Date.now() - lostAt) / 1000)} s`);
    expect(etcdOf(replaced).memberList!.every((m) => !m.learner && m.healthy)).toBe(true);
    expect(meta.events("ops").some((e) => e.reason === "MemberRemoved" && e.message.includes("ops-etcd-1"))).toBe(true);
    const newClaim = json<{ metadata: { uid: string }; status: { phase: string } }>("-n", MASTERS, "get", "pvc", "data-ops-etcd-1");
    expect(newClaim.metadata.uid).not.toBe(claimUid);
    expect(newClaim.status.phase).toBe("Bound");

    const five = await scale(5);
    expect(etcdOf(five).memberList?.map((m) => m.name)).toEqual([0, 1, 2, 3, 4].map((i) => `ops-etcd-${i}`));
    const back = await scale(3);
    expect(etcdOf(back).memberList?.map((m) => m.name)).toEqual(["ops-etcd-0", "ops-etcd-1", "ops-etcd-2"]);
    // The removed members' Pods and volumes are gone with them.
    await eventually("the StatefulSet at 3 Pods", async () => (kubectl("-n", MASTERS, "get", "pods", "-l", "kubeonkube.io/component=etcd", "-o", "name").trim().split("\n").length === 3 ? true : undefined), 300_000);
    await eventually("the removed members' claims deleted", async () => (kubectl("-n", MASTERS, "get", "pvc", "-o", "name").trim().split("\n").sort().join(",") === [0, 1, 2].map((i) => `persistentvolumeclaim/data-ops-etcd-${i}`).join(",") ? true : undefined), 300_000);

    writing = false;
    await writer;
    console.log(`writes during the membership changes: ${writes.ok} succeeded, ${writes.failed} failed${writes.errors.length ? `: ${[...new Set(writes.errors)].slice(0, 5).join(" | ")}` : ""}`);
    expect(writes.ok).toBeGreaterThan(0);
    // Every write that succeeded is still there after the members came and went.
    const names = execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", admin, "-n", "default", "get", "configmaps", "-o", "name"], { encoding: "utf8" });
    expect(names.split("\n").filter((l) => l.startsWith("configmap/w-")).length).toBeGreaterThanOrEqual(writes.ok);
  });

  it("rotates the CAs of a three-member etcd in three steps: reads never fail after phase 1, and each member then serves a certificate of the new etcd CA alone", async () => {
    type Rotation = { phase?: string; etcdGeneration?: number };
    type Certificates = { authorities?: { name: string; fingerprint: string }[]; rotation?: Rotation };
    const certificatesOf = (c: { status?: unknown }) => ((c.status as { certificates?: Certificates }).certificates ?? {}) as Certificates;
    const etcdAuthority = (c: Certificates) => c.authorities?.find((a) => a.name === "etcd")?.fingerprint;
    const before = certificatesOf(meta.getCluster("ops"));
    const started = Date.now();
    kubectl("-n", "fleet", "annotate", "cluster", "ops", `${ROTATE_CA_ANNOTATION}=etcd-1`);
    const describe = () => `${kubectl("-n", MASTERS, "get", "pods", "-o", "wide")}\n${meta.events("ops").filter((e) => e.reason.startsWith("Rotation")).map((e) => `${e.reason}: ${e.message}`).join("\n")}`;
    const reached = (phases: string[], what: string) =>
      meta.waitForCluster("ops", what, (c) => phases.includes(certificatesOf(c).rotation?.phase ?? ""), 900_000).catch((error: Error) => {
        throw new Error(`${error.message}\n${describe()}`);
      });
    // Phase 1 applied (no Machine to wait for): its kubeconfig trusts both cluster CAs and holds a
    // certificate of the new one, so it works through the etcd steps that follow.
    await reached(["WaitingForMachines", "Completing", "DroppingOldEtcdCa", "KeepingOldServiceAccountKey"], "phase 1 of the rotation applied");
    const phase1At = Date.now();
    const phase1Kubeconfig = join(meta.work, "ops-phase-1.kubeconfig");
    copyFileSync(meta.adminKubeconfig("ops"), phase1Kubeconfig);
    const reads = kubectlLoop(phase1Kubeconfig);
    const done = await reached(["KeepingOldServiceAccountKey"], "phase 2 and the old etcd CA's removal applied");
    const doneAt = Date.now();
    // Let the clients ask a little after the last roll of the members and apiservers.
    await eventually("ten reads after the last step", async () => (reads.tries.filter((t) => t.at > doneAt).length >= 10 ? true : undefined), 120_000);
    await reads.stop();
    const failed = reads.tries.filter((t) => !t.ok);
    console.log(
      `etcd CA rotation with 3 members: phase 1 applied ${Math.round((phase1At - started) / 1000)} s after the annotation, the old etcd CA dropped ${Math.round((doneAt - started) / 1000)} s after it; ` +
        `${reads.tries.length} reads after phase 1, ${failed.length} failed${failed.length ? `: ${failed[0].error}` : ""}`,
    );
    expect(failed).toEqual([]);
    const after = certificatesOf(done);
    expect(after.rotation?.etcdGeneration).toBe(1);
    expect(etcdAuthority(after)).not.toBe(etcdAuthority(before));
    const reasons = meta.events("ops").map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(["RotationPreparing", "RotationCompleting", "RotationDroppingOldEtcdCa", "RotationKeepingOldServiceAccountKey"]));

    // What the members hold: the new etcd CA alone, and leaves it issued.
    const certs = json<{ data: Record<string, string> }>("-n", MASTERS, "get", "secret", "ops-etcd-certs").data;
    const pem = (key: string) => Buffer.from(certs[key], "base64").toString("utf8");
    const trusted = parseCertificates(pem("ca.crt"), "the members' ca.crt");
    expect(trusted).toHaveLength(1);
    expect(certificateFingerprint(pem("ca.crt"), "the members' ca.crt")).toBe(etcdAuthority(after));
    for (const leaf of ["server.crt", "peer.crt"]) expect(new X509Certificate(pem(leaf)).verify(trusted[0].publicKey), leaf).toBe(true);
    // What they serve: every member answers a quorum read over TLS checked against that CA alone,
    // which also needs their peer links (a leader, replication) to work with the new certificates.
    const pki = "/etc/kubernetes/pki/etcd";
    const endpoints = [0, 1, 2].map((i) => `https://ops-etcd-${i}.ops-etcd.${MASTERS}.svc:2379`).join(",");
    const health = kubectl("-n", MASTERS, "exec", "ops-etcd-0", "-c", "etcd", "--", "etcdctl", `--endpoints=${endpoints}`, `--cacert=${pki}/ca.crt`, `--cert=${pki}/server.crt`, `--key=${pki}/server.key`, "endpoint", "health", "-w", "json");
    const members = JSON.parse(health) as { endpoint: string; health: boolean; error?: string }[];
    // etcdctl lists the answers as they come.
    expect(members.map((m) => [m.endpoint, m.health, m.error ?? ""]).sort()).toEqual([0, 1, 2].map((i) => [`https://ops-etcd-${i}.ops-etcd.${MASTERS}.svc:2379`, true, ""]));
  });

  it("destroys the stack and the masters' namespace when the Cluster is deleted", async () => {
    kubectl("-n", "fleet", "delete", "cluster", "ops", "--wait=false");
    await eventually(
      "Cluster fleet/ops gone",
      async () => (kubectl("-n", "fleet", "get", "clusters", "-o", "name").includes("cluster.kubeonkube.io/ops") ? undefined : true),
      900_000,
    );
    await eventually(`namespace ${MASTERS} gone`, async () => (kubectl("get", "namespaces", "-o", "name").includes(`namespace/${MASTERS}`) ? undefined : true), 300_000);
    expect(kubectl("-n", "fleet", "get", "secrets", "-o", "name")).not.toContain("ops-admin-kubeconfig");
    const stacks = join(meta.work, "state", ".pulumi", "stacks");
    const remaining = existsSync(stacks) ? readdirSync(stacks, { recursive: true }).map(String).filter((f) => f.endsWith(".json")) : [];
    expect(remaining).toEqual([]);
    expect(await metricsText()).not.toContain('kube_on_kube_certificates_expire_at_seconds{namespace="fleet",name="ops"}');
  });
});
