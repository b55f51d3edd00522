/**
 * Two `kok operator` processes with leader election share one state backend, and one Cluster
 * lives through both a pause and a failover (one Cluster, to keep the suite's time down):
 *
 * - only the Lease holder reconciles: it alone logs reconciles, and brings a v1.35.4 Cluster Ready;
 * - paused, a new kubernetesVersion changes nothing (status, the apiserver Deployment);
 * - the leader is SIGKILLed: the standby waits out the lease, takes it, recovers the stacks and
 *   adopts the Cluster (same objects, same uids: nothing re-created);
 * - unpaused, the new leader records an `UpgradePreview` Event and upgrades: Upgrading → Ready,
 *   the business cluster answers /version with v1.36.3;
 * - its metrics carry the drift and certificate-expiry series of the Cluster;
 * - `kubeonkube.io/rotate-ca` rotates the cluster CA in two phases while two `kubectl get` loops
 *   run: one with the admin kubeconfig from before, which works through phase 1 (both CAs
 *   trusted, the server still on the old one) and is refused after phase 2; one with the
 *   kubeconfig written by phase 1, which never fails. This world has no Machine: the Machines'
 *   gate is the unit tests' (test/unit/ca-rotation-machine.test.ts).
 *
 * The tests run in order and share the Cluster.
 */
import { execFile } from "node:child_process";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mastersNamespaceOf, type CertificatesStatus } from "../../src/api/v1alpha1";
import { parseCertificates } from "../../src/runtime/certificates";
import { toolchainBinary } from "../../src/dev/toolchain";
import { serverVersion } from "../support/business-cluster";
import { eventually, freeNodePort } from "../support/dev-cluster";
import { leaseHolder, startMetaCluster, startOperatorProcess, type MetaCluster, type OperatorProcess } from "../support/operator-e2e";
import { minimalSpec } from "../support/specs";

const NAME = "upgrade";
const MASTERS = mastersNamespaceOf({ metadata: { namespace: "fleet", name: NAME } });
let meta: MetaCluster;
let replicas: OperatorProcess[] = [];
let leader: OperatorProcess;
let standby: OperatorProcess;
let nodePort: number;
/** The generation the first leader reconciled; nothing may move observedGeneration past it while paused. */
let readyGeneration: number;

const reconciledKeys = (p: OperatorProcess) => p.logs().filter((l) => l.msg === "reconciled").map((l) => l.key);
const tookLead = (p: OperatorProcess) => p.logs().some((l) => l.msg === "leading: reconciling");
const patchSpec = (spec: Record<string, unknown>) => meta.kubectl("-n", "fleet", "patch", "cluster", NAME, "--type=merge", "-p", JSON.stringify({ spec }));

interface DeploymentJson {
  metadata: { uid: string; generation: number };
  spec: { template: { spec: { containers: { image: string; command?: string[] }[] } } };
}
const apiserverDeployment = () => meta.json<DeploymentJson>("-n", MASTERS, "get", "deployment", `${NAME}-apiserver`);
/** The uids of what the first leader created: a takeover must keep every one. */
const masterUids = () => meta.kubectl("-n", MASTERS, "get", "statefulsets,deployments,services,secrets", "-o", "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.uid}{'\\n'}{end}");

beforeAll(async () => {
  meta = await startMetaCluster("kok-upgrade-e2e");
  nodePort = await freeNodePort();
  replicas = [startOperatorProcess(meta, "operator-a"), startOperatorProcess(meta, "operator-b")];
});

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.kill()));
  await meta?.down();
});

describe("two operator replicas and an upgrade", () => {
  it("only the replica holding the Lease reconciles; it brings a v1.35.4 Cluster Ready", async () => {
    const identities = await Promise.all(replicas.map((r) => r.started()));
    const holder = await eventually("the operator Lease held", async () => leaseHolder(meta));
    const index = identities.findIndex((i) => i.identity === holder);
    expect(index, `Lease holder ${holder} is one of ${identities.map((i) => i.identity).join(", ")}`).toBeGreaterThanOrEqual(0);
    [leader, standby] = index === 0 ? replicas : [replicas[1], replicas[0]];

    const started = Date.now();
    meta.applyCluster(NAME, minimalSpec({ kubernetesVersion: "v1.35.4", apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort, port: 6443 } } }));
    const ready = await meta.waitForCluster(NAME, "Ready", (c) => c.status?.phase === "Ready");
    console.log(`two replicas: Cluster Ready at v1.35.4 after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    readyGeneration = ready.metadata.generation;
    expect(ready.status).toMatchObject({ version: "v1.35.4", observedGeneration: readyGeneration });
    expect(serverVersion(meta.adminKubeconfig(NAME))).toBe("v1.35.4");

    // The log line follows the status write, and reaches this process a moment later.
    await eventually("the leader logged its reconcile", async () => (reconciledKeys(leader).includes(`fleet/${NAME}`) ? true : undefined));
    expect(tookLead(leader)).toBe(true);
    expect(tookLead(standby)).toBe(false);
    expect(reconciledKeys(standby)).toEqual([]);
  });

  it("paused, a new kubernetesVersion changes nothing", async () => {
    const before = apiserverDeployment();
    patchSpec({ paused: true });
    patchSpec({ kubernetesVersion: "v1.36.3" });
    const generation = meta.getCluster(NAME).metadata.generation;
    const paused = await meta.waitForCluster(NAME, "paused at the new generation", (c) => {
      const progressing = c.status?.conditions?.find((x) => x.type === "Progressing");
      return progressing?.reason === "Paused" && progressing.observedGeneration === generation;
    });
    expect(paused.spec.kubernetesVersion).toBe("v1.36.3");
    expect(paused.status).toMatchObject({ phase: "Ready", version: "v1.35.4", observedGeneration: readyGeneration });
    expect(paused.status?.conditions?.find((x) => x.type === "Progressing")).toMatchObject({ status: "False", reason: "Paused" });
    const after = apiserverDeployment();
    expect(after.metadata.generation).toBe(before.metadata.generation);
    expect(after.spec.template.spec.containers[0]).toEqual(before.spec.template.spec.containers[0]);
    expect(after.spec.template.spec.containers[0].image).toContain("v1.35.4");
    expect(meta.events(NAME).map((e) => e.reason)).not.toContain("UpgradePreview");
  });

  it("after the leader is killed, the standby takes the Lease and adopts the Cluster without re-creating it", async () => {
    const uids = masterUids();
    // Through creation, resyncs and the pause, the standby has not reconciled anything.
    expect(tookLead(standby)).toBe(false);
    expect(reconciledKeys(standby)).toEqual([]);
    const { identity } = await standby.started();
    const killed = Date.now();
    await leader.kill();
    await eventually("the standby holds the Lease", async () => (leaseHolder(meta) === identity ? true : undefined), 120_000);
    await eventually("the new leader reconciled the Cluster", async () => (reconciledKeys(standby).includes(`fleet/${NAME}`) ? true : undefined), 300_000);
    console.log(`failover: the standby reconciled ${((Date.now() - killed) / 1000).toFixed(1)} s after the leader was killed`);
    expect(tookLead(standby)).toBe(true);
    expect(masterUids()).toBe(uids);
    expect(meta.getCluster(NAME).status).toMatchObject({ phase: "Ready", version: "v1.35.4" });
  });

  it("unpaused, the new leader previews the upgrade, then upgrades to v1.36.3", async () => {
    const uids = masterUids();
    const phases = new Set<string>();
    const started = Date.now();
    patchSpec({ paused: false });
    const generation = meta.getCluster(NAME).metadata.generation;
    const upgraded = await meta.waitForCluster(NAME, "upgraded to v1.36.3", (c) => {
      if (c.status?.phase) phases.add(c.status.phase);
      return c.status?.phase === "Ready" && c.status.observedGeneration === generation;
    });
    console.log(`upgrade v1.35.4 → v1.36.3 by the new leader: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(upgraded.status?.version).toBe("v1.36.3");
    expect(phases).toContain("Upgrading");
    const preview = meta.events(NAME).find((e) => e.reason === "UpgradePreview");
    expect(preview?.message).toMatch(/^v1\.35\.4 → v1\.36\.3: .*\d+ update/);
    expect(serverVersion(meta.adminKubeconfig(NAME))).toBe("v1.36.3");
    // The rollout may outlive the `up` briefly (pulumi-kubernetes#2941; docs/architecture.md).
    await eventually("only v1.36.3 masters running", async () => {
      const images = meta.kubectl("-n", MASTERS, "get", "pods", "-l", "kubeonkube.io/component!=etcd", "-o", "jsonpath={.items[*].spec.containers[0].image}").split(" ");
      return images.length === 3 && images.every((i) => i.endsWith(":v1.36.3")) ? true : undefined;
    });
    // An upgrade updates in place: the same StatefulSet, Deployments, Services and Secrets.
    expect(masterUids()).toBe(uids);
  });

  it("the new leader's metrics show its drift checks and the Cluster's certificate expiry", async () => {
    // The first resync after the upgrade runs a drift check; the upgraded Cluster must be in sync.
    const text = await eventually("a drift check by the new leader", async () => {
      const t = await standby.metrics();
      return /kube_on_kube_drift_checks_total\{kind="Cluster",method="(preview|fingerprint)",result="(in-sync|drifted|error)"\} [1-9]/.test(t) ? t : undefined;
    }, 300_000);
    expect(text).toMatch(/kube_on_kube_drift_checks_total\{kind="Cluster",method="preview",result="in-sync"\} [1-9]/);
    expect(text).toContain('kube_on_kube_drift_checks_total{kind="Cluster",method="preview",result="drifted"} 0');
    expect(text).toContain('kube_on_kube_drift_corrections_total{kind="Cluster"} 0');
    const expiresAt = Date.parse(meta.getCluster(NAME).status?.certificatesExpireAt ?? "");
    expect(text).toContain(`kube_on_kube_certificates_expire_at_seconds{namespace="fleet",name="${NAME}"} ${expiresAt / 1000}`);
    expect(text).toContain('leader_election_master_status{name="kube-on-kube-operator"} 1');
  });
});

/** A `kubectl get` every half second with one kubeconfig, each try's time and outcome kept. */
function kubectlLoop(kubeconfig: string) {
  const tries: { at: number; ok: boolean; error?: string }[] = [];
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      const at = Date.now();
      try {
        await promisify(execFile)(toolchainBinary("kubectl"), ["--kubeconfig", kubeconfig, "--request-timeout=10s", "get", "namespaces", "-o", "name"], { encoding: "utf8" });
        tries.push({ at, ok: true });
      } catch (error) {
        tries.push({ at, ok: false, error: String((error as { stderr?: string }).stderr ?? error).trim().split("\n")[0] });
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return { tries, stop: async () => ((stopped = true), await done) };
}

const caDataOf = (kubeconfig: string) => Buffer.from(/certificate-authority-data: (\S+)/.exec(readFileSync(kubeconfig, "utf8"))![1], "base64").toString("utf8");
const certificatesOf = (c: { status?: unknown }) => (c.status as { certificates?: CertificatesStatus } | undefined)?.certificates;

describe("CA rotation", () => {
  it("rotates the cluster CA in two phases; a client with the phase-1 kubeconfig never fails, one with the old kubeconfig works until phase 2", async () => {
    const oldKubeconfig = join(meta.work, "before-rotation.kubeconfig");
    copyFileSync(meta.adminKubeconfig(NAME), oldKubeconfig);
    expect(parseCertificates(caDataOf(oldKubeconfig), "the old CA data")).toHaveLength(1);
    const before = certificatesOf(meta.getCluster(NAME));
    const oldLoop = kubectlLoop(oldKubeconfig);
    const started = Date.now();
    meta.kubectl("-n", "fleet", "annotate", "cluster", NAME, "kubeonkube.io/rotate-ca=r1");

    // Phase 1 applied: the kubeconfig it wrote trusts both CAs.
    const phase1 = await meta.waitForCluster(NAME, "phase 1 of the rotation applied", (c) => ["WaitingForMachines", "Completing", "KeepingOldServiceAccountKey"].includes(certificatesOf(c)?.rotation?.phase ?? ""));
    const phase1At = Date.now();
    expect(certificatesOf(phase1)?.rotation).toMatchObject({ token: "r1", generation: 1 });
    console.log(`CA rotation: phase 1 applied ${((phase1At - started) / 1000).toFixed(1)} s after the annotation`);
    const newKubeconfig = join(meta.work, "phase-1.kubeconfig");
    copyFileSync(meta.adminKubeconfig(NAME), newKubeconfig);
    const newLoop = kubectlLoop(newKubeconfig);
    const trusted = parseCertificates(caDataOf(newKubeconfig), "the phase-1 CA data");
    expect(trusted).toHaveLength(2);

    const done = await meta.waitForCluster(NAME, "phase 2 of the rotation applied", (c) => certificatesOf(c)?.rotation?.phase === "KeepingOldServiceAccountKey");
    const phase2At = Date.now();
    console.log(`CA rotation: phase 2 applied ${((phase2At - started) / 1000).toFixed(1)} s after the annotation`);
    // The clients keep asking a little after the apiserver's last rollout.
    await new Promise((r) => setTimeout(r, 10_000));
    await Promise.all([oldLoop.stop(), newLoop.stop()]);

    const failed = (tries: typeof newLoop.tries) => tries.filter((t) => !t.ok);
    console.log(
      `CA rotation: phase-1 kubeconfig ${newLoop.tries.length} tries, ${failed(newLoop.tries).length} failed; old kubeconfig ${oldLoop.tries.length} tries, ` +
        `${failed(oldLoop.tries.filter((t) => t.at < phase1At)).length} failed before phase 1 was seen applied, first failure ${failed(oldLoop.tries)[0]?.error ?? "none"}`,
    );
    expect(failed(newLoop.tries)).toEqual([]);
    expect(newLoop.tries.length).toBeGreaterThan(10);
    // The old kubeconfig: fine through phase 1, refused once phase 2 took the old CA away.
    expect(failed(oldLoop.tries.filter((t) => t.at < phase1At))).toEqual([]);
    expect(oldLoop.tries.at(-1)?.ok).toBe(false);

    const after = certificatesOf(done)!;
    const fingerprint = (c: CertificatesStatus | undefined, name: string) => c?.authorities?.find((a) => a.name === name)?.fingerprint;
    expect(fingerprint(after, "cluster")).not.toBe(fingerprint(before, "cluster"));
    expect(fingerprint(after, "front-proxy")).not.toBe(fingerprint(before, "front-proxy"));
    expect(fingerprint(after, "service-account")).not.toBe(fingerprint(before, "service-account"));
    expect(fingerprint(after, "etcd")).toBe(fingerprint(before, "etcd"));
    expect(after.rotation).toMatchObject({ token: "r1", generation: 1 });
    expect(Date.parse(after.rotation?.serviceAccountKeyRetiresAt ?? "")).toBeGreaterThan(Date.now());
    expect(meta.events(NAME).map((e) => e.reason)).toEqual(expect.arrayContaining(["RotationPreparing", "RotationWaitingForMachines", "RotationCompleting", "RotationKeepingOldServiceAccountKey"]));
    // The admin kubeconfig now trusts the new CA alone, and works.
    const final = meta.adminKubeconfig(NAME);
    expect(parseCertificates(caDataOf(final), "the final CA data").map((c) => c.fingerprint256)).toEqual([trusted[0].fingerprint256]);
    expect(serverVersion(final)).toBe("v1.36.3");
  });
});
