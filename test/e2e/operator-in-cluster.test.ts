/**
 * The operator in a Pod of the meta-cluster, as a platform team installs it (issue 17): the
 * operator image built here and pushed into the dev registry (containerd pulls it as
 * docker.io/kube-on-kube/operator:<version>), `helm install` of charts/kube-on-kube with default
 * values but the two a platform team of sandbox hosts sets, its admin policy and worker defaults
 * (state on a PVC of local-path-provisioner, one replica), a Cluster → Ready reconciled by
 * that Pod; then `helm upgrade` to another image tag while an update of the Cluster runs: the old
 * Pod finishes that update before it goes (SIGTERM, grace period), hands the lease over, and the
 * new Pod finds no lock to recover. Machines on network hosts (src/dev/host-netns.ts, hanging off a
 * bridge in the node's network namespace, which the Pod's network reaches): one installed by the
 * Pod over SSH, its Node Ready in the business cluster; another across `helm upgrade` to a rebuilt
 * image tag in the middle of its install: the old Pod finishes that install before it goes, the new
 * one finds no lock, and the install ran once. No SSH private key in any Pod's log. `helm
 * uninstall` leaves the CRDs and the business cluster.
 *
 * Then the same chart with the `s3://` backend on the dev object store (two replicas, one
 * leading): a Cluster Ready with its stack in the bucket; a Cluster whose checkpoint in the bucket
 * is corrupt fails alone, with a condition that says so; the leader Pod deleted without a grace
 * period in the middle of an update: the standby takes the lease, clears the lock its holder record
 * (in the holders Lease) proves stale, and the update converges; no lock and no record remain; no
 * passphrase, object-store secret or private key in any Pod's log.
 *
 * The figures (build, push, operator Ready, Cluster Ready, Machine Ready, upgrades, failover) are printed, never asserted.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { mastersNamespaceOf } from "../../src/api/v1alpha1";
import { loadConfig } from "../../src/dev/config";
import { devAdminPolicyDocument } from "../../src/dev/dev-policy";
import { realNodeLayout } from "../../src/dev/node/layout";
import { OBJECT_STORE_BUCKET, OBJECT_STORE_REGION, objectStorePodEndpoint, objectStoreTarget, readObjectStoreCredentials, s3Request } from "../../src/dev/object-store";
import { toolchainBinary } from "../../src/dev/toolchain";
import { eventually, freeNodePort } from "../support/dev-cluster";
import { NETNS_WORKER_DEFAULTS, startNetnsFleetHosts, type FleetHosts } from "../support/fleet-hosts";
import { applyMachine, applyWorkerCatalog, eventCount, logLinesAbout, machineOf, waitForMachine, type MachineOperationJson } from "../support/meta-machines";
import { pushOperatorImage, startMetaCluster, type MetaCluster } from "../support/operator-e2e";
import { minimalSpec } from "../support/specs";

const REPO = resolve(__dirname, "..", "..");
const CHART = join(REPO, "charts", "kube-on-kube");
const VERSION = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;
const NS = "kube-on-kube-system";
const LEASE = "kube-on-kube-operator";
const MASTERS = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "ops" } });
/** The tag `helm upgrade` moves to: the same image under a second name, as a rebuilt release would be. */
const UPGRADE_TAG = `${VERSION}-upgrade`;
/** The tag of the `helm upgrade` in the middle of a Machine's install. */
const MACHINES_TAG = `${VERSION}-machines`;
/** Where the operator's state is on its PVC (the chart's default file backend). */
const STATE = "/var/lib/kube-on-kube/state/.pulumi";

let meta: MetaCluster;
let registry: string;
/** The network hosts the Machines run on: two, starting while the Cluster tests run. */
let fleet: FleetHosts | undefined;
let hostsStarting: Promise<FleetHosts> | undefined;
/** The file-backend install's values: the dev admin policy and the network hosts' worker defaults. */
let values: string;
const figures: Record<string, string> = {};
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/**
 * Never a synchronous run: the package mirror the hosts install from serves from this process, and
 * `helm upgrade --wait` blocking it waited for an old Pod that waited for a download from it.
 */
function helm(...args: string[]): Promise<string> {
  return new Promise((done, fail) => {
    execFile(toolchainBinary("helm"), [...args, "--kubeconfig", meta.dev.kubeconfig], { encoding: "utf8", maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error) fail(new Error(`helm ${args.join(" ")} failed (${error.code ?? error.signal}): ${stderr}${stdout}`));
      else done(stdout);
    });
  });
}

interface PodJson {
  metadata: { name: string; deletionTimestamp?: string };
  spec: { containers: { image: string }[] };
  status: { phase: string; containerStatuses?: { ready: boolean }[] };
}

/** The operator's Pods that are not being deleted. */
function operatorPods(): PodJson[] {
  return meta.json<{ items: PodJson[] }>("-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=kube-on-kube-operator").items.filter((p) => !p.metadata.deletionTimestamp);
}

function leaseHolder(): string {
  return meta.json<{ spec?: { holderIdentity?: string } }>("-n", NS, "get", "lease", LEASE).spec?.holderIdentity ?? "";
}

/** Follows a Pod's log until its container ends (`kubectl logs -f`). */
function follow(pod: string): { text: () => string; ended: Promise<void>; child: ChildProcess } {
  const child = spawn(toolchainBinary("kubectl"), ["--kubeconfig", meta.dev.kubeconfig, "-n", NS, "logs", "-f", pod], { stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  child.stdout?.on("data", (c: Buffer) => (text += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (text += c.toString()));
  return { text: () => text, ended: new Promise((done) => child.once("close", () => done())), child };
}

/** Puts the manifest of kube-on-kube/operator:<from> under <to> in the registry (OCI distribution API). */
async function retag(from: string, to: string): Promise<void> {
  const type = "application/vnd.oci.image.manifest.v1+json";
  const url = (tag: string) => `http://${registry}/v2/kube-on-kube/operator/manifests/${tag}`;
  const manifest = await fetch(url(from), { headers: { accept: type } });
  if (!manifest.ok) throw new Error(`GET ${url(from)}: ${manifest.status}`);
  const put = await fetch(url(to), { method: "PUT", headers: { "content-type": type }, body: Buffer.from(await manifest.arrayBuffer()) });
  if (!put.ok) throw new Error(`PUT ${url(to)}: ${put.status} ${await put.text()}`);
}

async function stopFleet(): Promise<void> {
  // Hosts still starting are stopped once started (a failed start stopped its own).
  await hostsStarting?.catch(() => undefined);
  const hosts = fleet;
  fleet = undefined;
  await hosts?.stop();
}

beforeAll(async () => {
  meta = await startMetaCluster("kok-in-cluster-e2e");
  registry = `127.0.0.1:${meta.dev.portBase + 5000}`;
  const config = loadConfig(meta.dev.stateDir)!;
  // The hosts start meanwhile and while the Cluster tests run (each its own network namespace,
  // sshd, the package mirror: a minute or two); the first Machine test waits for them.
  const since = Date.now();
  hostsStarting = startNetnsFleetHosts(meta.dev.stateDir, 2, "ic").then((hosts) => {
    fleet = hosts;
    figures["two network hosts started (beside the tests before the Machines')"] = seconds(since);
    return hosts;
  });
  // A failed start is told where it is awaited, not as an unhandled rejection meanwhile.
  hostsStarting.catch(() => undefined);
  // The image `kok images build` keeps (CI builds it before the tests): up to date here unless
  // the checkout changed since; then this is the build a developer's `kok images build` does.
  const { cached } = await pushOperatorImage(meta);
  figures["image build and push into the empty dev registry"] = `${seconds(since)} (${cached ? "up to date" : "built"})`;
  // What a platform team whose hosts are these sandboxes sets: the hosts subnet and the dev
  // registry allowed, and the hosts' settings (no systemd, cgroupfs, a shared disk).
  values = join(meta.work, "values.json");
  writeFileSync(values, JSON.stringify({ adminPolicy: stringify(devAdminPolicyDocument(config)), workerDefaults: stringify(NETNS_WORKER_DEFAULTS) }));
});

afterAll(async () => {
  console.log(`operator in a Pod, figures: ${JSON.stringify(figures)}`);
  // Every step runs even when one before it fails: leaked hosts or a meta-cluster weigh on every later test.
  const failures: string[] = [];
  for (const [what, step] of [["stop the hosts", stopFleet], ["stop the meta-cluster", async () => meta?.down()]] as const) {
    await step().catch((e: unknown) => failures.push(`${what}: ${(e as Error).message}`));
  }
  if (failures.length) throw new Error(`teardown: ${failures.join("; ")}`);
}, 300_000);

describe("the operator installed by helm, in a Pod of the meta-cluster", () => {
  let pod: PodJson;
  /** The log of every operator Pod that has ended, for the look for secrets. */
  const endedLogs: string[] = [];
  // The hosts are the Machines' only: gone before the s3:// install's tests.
  afterAll(stopFleet, 300_000);

  it("installs with default values but the admin policy and worker defaults, and runs from the image in the dev registry, its state on a PVC", async () => {
    const since = Date.now();
    await helm("install", "kube-on-kube", CHART, "--namespace", "default", "-f", values, "--wait", "--timeout", "5m");
    figures["helm install → operator Ready"] = seconds(since);
    const pods = operatorPods();
    expect(pods).toHaveLength(1);
    pod = pods[0]!;
    expect(pod.spec.containers[0]!.image).toBe(`kube-on-kube/operator:${VERSION}`);
    expect(pod.status.containerStatuses?.[0]?.ready).toBe(true);
    const pvc = meta.json<{ spec: { storageClassName: string }; status: { phase: string } }>("-n", NS, "get", "pvc", "kube-on-kube-operator-state");
    expect(pvc).toMatchObject({ spec: { storageClassName: "local-path" }, status: { phase: "Bound" } });
    // The worker defaults reach the operator as its --worker-defaults file.
    expect(meta.kubectl("-n", NS, "exec", pod.metadata.name, "--", "cat", "/etc/kube-on-kube-workers/worker-defaults.yaml")).toBe(stringify(NETNS_WORKER_DEFAULTS));
    // etcdctl and etcdutl are in the image (the etcd backups run `kok etcd ...` there).
    expect(meta.kubectl("-n", NS, "exec", pod.metadata.name, "--", "etcdutl", "version")).toMatch(/^etcdutl version: \d+\.\d+\.\d+/);
  });

  it("brings a Cluster to Ready from that Pod, with the stack in the PVC", async () => {
    const since = Date.now();
    // Its apiserver a NodePort of the node IP, where the Machines' kubelets reach it.
    const nodePort = await freeNodePort();
    meta.applyCluster("ops", minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: realNodeLayout(loadConfig(meta.dev.stateDir)!).nodeIP, nodePort, port: 6443 } } }));
    const ready = await meta.waitForCluster("ops", "Ready", (c) => c.status?.phase === "Ready");
    figures["Cluster applied → Ready"] = seconds(since);
    expect(ready.status).toMatchObject({ observedGeneration: ready.metadata.generation, lastOperation: { kind: "up", result: "succeeded" } });
    // The Pod leads (its identity is its name and a suffix); nothing else runs an operator here.
    expect(leaseHolder().startsWith(`${pod.metadata.name}-`)).toBe(true);
    const stacks = meta.kubectl("-n", NS, "exec", pod.metadata.name, "--", "ls", "/var/lib/kube-on-kube/state/.pulumi/stacks/kube-on-kube-clusters");
    expect(stacks.split(/\s+/)).toContain("fleet.ops.json");
  });

  it("finishes an update in flight across helm upgrade to a new image tag; the new Pod finds no lock to recover", async () => {
    await retag(VERSION, UPGRADE_TAG);
    const old = follow(pod.metadata.name);
    // Settled first: the first reading of the etcd membership is followed by one update of its
    // own (the membership ConfigMap turns to "existing"), which must not be taken for the one below.
    const before = await meta.waitForCluster(
      "ops",
      "etcd membership read and stable, no update running",
      (c) => c.status?.conditions?.some((x) => x.type === "EtcdMembership" && x.status === "True") === true && c.status?.lastOperation?.result === "succeeded",
    );
    meta.kubectl("-n", "fleet", "patch", "cluster", "ops", "--type", "merge", "-p", JSON.stringify({ spec: { apiServer: { extraArgs: { "audit-log-maxage": "9" } } } }));
    // The update of the new generation is running (the apiserver rolls behind its gate: tens of seconds).
    const inFlight = await eventually("the update of the new generation running", async () => {
      const c = meta.getCluster("ops");
      const op = c.status?.lastOperation as { result: string; startedAt?: string } | undefined;
      return c.metadata.generation > before.metadata.generation && op?.result === "running" && op.startedAt !== (before.status?.lastOperation as { startedAt?: string }).startedAt ? op : undefined;
    });
    const since = Date.now();
    const upgrading = new Date().toISOString();
    await helm("upgrade", "kube-on-kube", CHART, "--namespace", "default", "-f", values, "--set", `image.tag=${UPGRADE_TAG}`, "--wait", "--timeout", "10m");
    figures["helm upgrade during the update → new Pod Ready"] = seconds(since);
    await old.ended;

    // The update that was in flight finished (the same operation, not a re-run by the new Pod).
    const done = meta.getCluster("ops");
    expect(done.status?.lastOperation).toMatchObject({ kind: "up", result: "succeeded", startedAt: inFlight.startedAt });
    // It was still running when the upgrade began (same machine, same clock): the old Pod got its
    // SIGTERM in the middle of it.
    expect((done.status?.lastOperation as { finishedAt?: string }).finishedAt! > upgrading).toBe(true);
    expect(done.status?.observedGeneration).toBe(done.metadata.generation);
    const apiserver = meta.json<{ spec: { template: { spec: { containers: { command?: string[]; args?: string[] }[] } } } }>("-n", MASTERS, "get", "deployment", "ops-apiserver");
    const container = apiserver.spec.template.spec.containers[0]!;
    expect([...(container.command ?? []), ...(container.args ?? [])]).toContain("--audit-log-maxage=9");
    // The old Pod was told to stop and reconciled once more after that: the update in flight.
    const oldLog = old.text();
    endedLogs.push(oldLog);
    expect(oldLog).toContain("SIGTERM: stopping after the updates in flight");
    expect(oldLog.indexOf("SIGTERM")).toBeLessThan(oldLog.lastIndexOf('"msg":"reconciled"'));

    const pods = operatorPods();
    expect(pods).toHaveLength(1);
    const next = pods[0]!;
    expect(next.metadata.name).not.toBe(pod.metadata.name);
    expect(next.spec.containers[0]!.image).toBe(`kube-on-kube/operator:${UPGRADE_TAG}`);
    await eventually("the new Pod leads", async () => (leaseHolder().startsWith(`${next.metadata.name}-`) ? true : undefined), 120_000);
    await eventually("the new Pod reconciling", async () => (meta.kubectl("-n", NS, "logs", next.metadata.name).includes("leading: reconciling") ? true : undefined), 120_000);
    const nextLog = meta.kubectl("-n", NS, "logs", next.metadata.name);
    // No interrupted update to recover: the old Pod left no lock and no pending operation.
    expect(nextLog).not.toContain("recovered an interrupted update");
    expect(meta.events("ops").map((e) => e.reason)).not.toContain("StackRecoveryFailed");

    // No passphrase in any Pod's log.
    const secret = meta.json<{ data: { passphrase: string } }>("-n", NS, "get", "secret", "kube-on-kube-operator-state-passphrase");
    const passphrase = Buffer.from(secret.data.passphrase, "base64").toString();
    expect(passphrase.length).toBeGreaterThan(20);
    expect(oldLog).not.toContain(passphrase);
    expect(nextLog).not.toContain(passphrase);
  });

  const podLogTail = () => {
    try {
      return `operator Pod log tail:\n${operatorPods()
        .map((p) => meta.kubectl("-n", NS, "logs", p.metadata.name, "--tail", "40"))
        .join("\n")}`;
    } catch (error) {
      return `no operator Pod log: ${(error as Error).message}`;
    }
  };
  const nodeReady = (name: string) =>
    execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", meta.adminKubeconfig("ops"), "get", "node", name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"], { encoding: "utf8" });
  const stackFiles = (p: PodJson) => meta.kubectl("-n", NS, "exec", p.metadata.name, "--", "ls", `${STATE}/stacks/kube-on-kube-machines`).split(/\s+/);
  /** The lock files on the PVC (none unless an update runs or was killed; the engine leaves the stacks' empty directories). */
  const lockFiles = (p: PodJson) =>
    meta
      .kubectl("-n", NS, "exec", p.metadata.name, "--", "sh", "-c", `ls -R ${STATE}/locks 2>/dev/null || true`)
      .split("\n")
      .filter((l) => l.endsWith(".json"));

  it("installs a Machine on a network host from that Pod over SSH: the Machine Ready, its Node Ready in the business cluster", async () => {
    const hosts = await hostsStarting!;
    const since = Date.now();
    applyWorkerCatalog(meta, hosts, "ops", "v1.36.3");
    applyMachine(meta, hosts, "w0", 0, "ops");
    const ready = await waitForMachine(meta, "w0", "Ready", (m) => m.status?.phase === "Ready", podLogTail);
    figures["Machine applied → Ready, installed from the Pod"] = seconds(since);
    expect(ready.status?.lastOperation).toMatchObject({ kind: "up", result: "succeeded" });
    expect(ready.status?.observedVersions).toMatchObject({ kubelet: "v1.36.3", containerd: hosts.packages("v1.36.3").containerd.version });
    expect(ready.status?.nodeName).toBe(hosts.hosts[0]!.name);
    expect(nodeReady(hosts.hosts[0]!.name)).toBe("True");
    // The Pod did it, and nothing else: it leads, its log tells of the Machine's reconciles, and
    // the Machine's stack is on its PVC.
    const current = operatorPods();
    expect(current).toHaveLength(1);
    expect(leaseHolder().startsWith(`${current[0]!.metadata.name}-`)).toBe(true);
    expect(logLinesAbout(meta.kubectl("-n", NS, "logs", current[0]!.metadata.name), "reconciled", "w0").map((l) => l.controller)).toContain("Machine");
    expect(stackFiles(current[0]!)).toContain("fleet.w0.json");
  });

  it("finishes a Machine's install in flight across helm upgrade to a rebuilt image tag: installed once, no lock left", async () => {
    const hosts = fleet!;
    await retag(VERSION, MACHINES_TAG);
    const [current] = operatorPods();
    const old = follow(current!.metadata.name);
    applyMachine(meta, hosts, "w1", 1, "ops");
    // The install runs: its status says so once the Pod starts the stack's `up`.
    const inFlight = await waitForMachine(meta, "w1", "installing", (m) => m.status?.phase === "Installing" && m.status.lastOperation?.result === "running", podLogTail);
    const startedAt = (inFlight.status!.lastOperation as MachineOperationJson).startedAt;
    const since = Date.now();
    const upgrading = new Date().toISOString();
    await helm("upgrade", "kube-on-kube", CHART, "--namespace", "default", "-f", values, "--set", `image.tag=${MACHINES_TAG}`, "--wait", "--timeout", "15m");
    figures["helm upgrade during a Machine install → new Pod Ready"] = seconds(since);
    await old.ended;
    const oldLog = old.text();
    endedLogs.push(oldLog);
    const ready = await waitForMachine(meta, "w1", "Ready", (m) => m.status?.phase === "Ready", podLogTail);
    figures["helm upgrade during a Machine install → Machine Ready"] = seconds(since);

    // The install in flight finished (the same operation, not a re-run by the new Pod), after the
    // upgrade began: the old Pod got its SIGTERM in the middle of it and finished it first.
    expect(ready.status?.lastOperation).toMatchObject({ kind: "up", result: "succeeded", startedAt });
    expect(ready.status!.lastOperation!.finishedAt! > upgrading).toBe(true);
    expect(oldLog).toContain("SIGTERM: stopping after the updates in flight");
    const sigterm = oldLog.indexOf("SIGTERM");
    expect(logLinesAbout(oldLog.slice(sigterm), "reconciled", "w1").length).toBeGreaterThan(0);
    expect(nodeReady(hosts.hosts[1]!.name)).toBe("True");

    // The new Pod, on the rebuilt tag, leads and found nothing to recover; no lock is left.
    const pods = operatorPods();
    expect(pods).toHaveLength(1);
    const next = pods[0]!;
    expect(next.metadata.name).not.toBe(current!.metadata.name);
    expect(next.spec.containers[0]!.image).toBe(`kube-on-kube/operator:${MACHINES_TAG}`);
    await eventually("the new Pod leads", async () => (leaseHolder().startsWith(`${next.metadata.name}-`) ? true : undefined), 120_000);
    await eventually("the new Pod reconciling", async () => (meta.kubectl("-n", NS, "logs", next.metadata.name).includes("leading: reconciling") ? true : undefined), 120_000);
    expect(meta.kubectl("-n", NS, "logs", next.metadata.name)).not.toContain("recovered an interrupted update");
    expect(eventCount(meta, "w1", "StackRecoveryFailed")).toBe(0);
    expect(lockFiles(next)).toEqual([]);
    expect(stackFiles(next)).toEqual(expect.arrayContaining(["fleet.w0.json", "fleet.w1.json"]));
    // Installed once: one install begun and one finished, no failure between.
    expect(eventCount(meta, "w1", "Installing")).toBe(1);
    expect(eventCount(meta, "w1", "Installed")).toBe(1);
    expect(eventCount(meta, "w1", "InstallFailed")).toBe(0);
    expect(machineOf(meta, "w0")?.status?.phase).toBe("Ready");
  });

  it("shows no SSH private key in any operator Pod's log, nor in the Machines' status or Events", () => {
    // Each line of each key's body (a log could hold a key with its line breaks escaped): the
    // short last line aside, they are 70 characters long.
    const lines = fleet!.hosts.map((h) => h.privateKey.split("\n").filter((l) => l && !l.startsWith("-----")));
    const secrets = lines.flatMap((l) => l.filter((line) => line.length >= 40));
    expect(secrets.length).toBeGreaterThanOrEqual(2 * 3);
    const logs = [...endedLogs, ...operatorPods().map((p) => meta.kubectl("-n", NS, "logs", p.metadata.name))];
    const statuses = meta.kubectl("-n", "fleet", "get", "machines", "-o", "json");
    const events = meta.kubectl("-n", "fleet", "get", "events", "-o", "json");
    for (const [where, text] of [...logs.map((l, i) => [`operator Pod log ${i}`, l] as const), ["Machines' status", statuses], ["Events", events]] as const) {
      expect(text.includes("PRIVATE KEY"), `"PRIVATE KEY" in the ${where}`).toBe(false);
      for (const secret of secrets) expect(text.includes(secret), `a private key in the ${where}`).toBe(false);
    }
  });

  it("helm uninstall takes the operator away and leaves the CRDs, the Cluster, its masters and the passphrase", async () => {
    await helm("uninstall", "kube-on-kube", "--namespace", "default", "--wait", "--timeout", "5m");
    await eventually("no operator Pod", async () => (operatorPods().length === 0 ? true : undefined), 120_000);
    expect(meta.kubectl("get", "crd", "-o", "name")).toContain("customresourcedefinition.apiextensions.k8s.io/clusters.kubeonkube.io");
    expect(meta.getCluster("ops").status?.phase).toBe("Ready");
    // The masters' own Pods: the membership and backup Jobs' Pods have ended (Succeeded).
    const masters = meta.json<{ items: { status: { phase: string } }[] }>("-n", MASTERS, "get", "pods", "-l", "!job-name").items;
    expect(masters.length).toBeGreaterThanOrEqual(4);
    expect(masters.every((p) => p.status.phase === "Running")).toBe(true);
    // Kept (helm.sh/resource-policy: keep): the stacks' secrets are encrypted with it.
    expect(meta.kubectl("-n", NS, "get", "secret", "-o", "name")).toContain("secret/kube-on-kube-operator-state-passphrase");
  });
});

/** The stacks' prefix in the dev bucket for the s3:// install. */
const PREFIX = "in-cluster";
const STACKS = `${PREFIX}/.pulumi/stacks/kube-on-kube-clusters`;

async function bucketKeys(prefix: string): Promise<string[]> {
  const res = await s3Request(objectStoreTarget(loadConfig(meta.dev.stateDir)!), { method: "GET", path: `/${OBJECT_STORE_BUCKET}`, query: { "list-type": "2", prefix } });
  if (res.status !== 200) throw new Error(`listing ${prefix}: HTTP ${res.status}`);
  return [...res.body.toString("utf8").matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]!);
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
const conditionOf = (name: string, type: string) => (meta.getCluster(name).status?.conditions as Condition[] | undefined)?.find((c) => c.type === type);

describe("the same chart with the s3:// backend: two replicas, a corrupt stack, the leader Pod deleted mid-update", () => {
  const logs: string[] = [];
  let objectStoreSecret = "";

  it("installs with the dev object store as backend: two Pods, one leads", async () => {
    // The file-backend install's Cluster has its stack on the PVC, not in the bucket: let it go
    // (no operator runs to finalize it) so that this install does not take it over.
    meta.kubectl("-n", "fleet", "patch", "cluster", "ops", "--type", "merge", "-p", JSON.stringify({ metadata: { finalizers: [] } }));
    meta.kubectl("-n", "fleet", "delete", "cluster", "ops", "--wait=false");
    // Its Machines and their catalog too (their hosts are gone).
    for (const object of meta.kubectl("-n", "fleet", "get", "machines,clusterpackageversions", "-o", "name").split("\n").filter(Boolean)) {
      meta.kubectl("-n", "fleet", "patch", object, "--type", "merge", "-p", JSON.stringify({ metadata: { finalizers: [] } }));
      meta.kubectl("-n", "fleet", "delete", object, "--wait=false");
    }
    meta.kubectl("delete", "namespace", MASTERS, "--wait=false");
    const config = loadConfig(meta.dev.stateDir)!;
    const credentials = readObjectStoreCredentials(config);
    objectStoreSecret = credentials.secretAccessKey;
    const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: "kok-state-store", namespace: NS }, stringData: { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey } };
    execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", meta.dev.kubeconfig, "apply", "-f", "-"], { input: JSON.stringify(secret), stdio: ["pipe", "ignore", "pipe"] });
    const values = join(meta.work, "s3-values.json");
    const backendUrl = `s3://${OBJECT_STORE_BUCKET}/${PREFIX}?endpoint=${objectStorePodEndpoint(config)}&region=${OBJECT_STORE_REGION}&use_path_style=true`;
    writeFileSync(values, JSON.stringify({ backendUrl, objectStore: { credentialsSecret: "kok-state-store" } }));
    const since = Date.now();
    await helm("install", "kube-on-kube", CHART, "--namespace", "default", "-f", values, "--wait", "--timeout", "5m");
    figures["s3: helm install → operator Pods Ready"] = seconds(since);
    expect(operatorPods()).toHaveLength(2);
  });

  it("brings a Cluster to Ready with its stack in the bucket; a Cluster whose checkpoint is corrupt fails alone, saying so", async () => {
    const since = Date.now();
    meta.applyCluster("alpha", minimalSpec());
    // The corrupt checkpoint goes in once the backend is set up (its first stack written).
    await eventually("the stack of alpha in the bucket", async () => ((await bucketKeys(`${STACKS}/`)).includes(`${STACKS}/fleet.alpha.json`) ? true : undefined), 300_000);
    const put = await s3Request(objectStoreTarget(loadConfig(meta.dev.stateDir)!), { method: "PUT", path: `/${OBJECT_STORE_BUCKET}/${STACKS}/fleet.broken.json`, body: '{"version": 3, "checkpoint": {"stack": "organization/kube-on-kube-clusters/fleet.broken", "latest": {"manifest' });
    expect(put.status).toBe(200);
    meta.applyCluster("broken", minimalSpec());
    const failing = await eventually("broken's condition", async () => (conditionOf("broken", "Ready")?.reason === "StackStateUnreadable" ? conditionOf("broken", "Ready") : undefined), 300_000);
    expect(failing).toMatchObject({ status: "False", message: expect.stringContaining("fleet.broken") });
    expect(failing.message).toContain("failed to load checkpoint");
    expect(meta.getCluster("broken").status?.phase).toBe("Failed");
    expect(meta.events("broken").map((e) => e.reason)).toContain("StackStateUnreadable");
    const ready = await meta.waitForCluster("alpha", "Ready", (c) => c.status?.phase === "Ready");
    figures["s3: Cluster applied → Ready"] = seconds(since);
    expect(ready.status).toMatchObject({ observedGeneration: ready.metadata.generation, lastOperation: { kind: "up", result: "succeeded" } });
    // Nothing of the broken one was applied: its masters' namespace was never created.
    expect(meta.kubectl("get", "namespaces", "-o", "name")).not.toContain(mastersNamespaceOf({ metadata: { namespace: "fleet", name: "broken" } }));
  });

  it("the leader Pod deleted without grace in the middle of an update: the standby leads, clears the stale lock, the update converges", async () => {
    const leader = operatorPods().find((p) => leaseHolder().startsWith(`${p.metadata.name}-`))!;
    expect(leader).toBeDefined();
    const standby = operatorPods().find((p) => p.metadata.name !== leader.metadata.name)!;
    const old = follow(leader.metadata.name);
    const before = meta.getCluster("alpha");
    meta.kubectl("-n", "fleet", "patch", "cluster", "alpha", "--type", "merge", "-p", JSON.stringify({ spec: { apiServer: { extraArgs: { "audit-log-maxage": "9" } } } }));
    await eventually("the update of the new generation running", async () => {
      const c = meta.getCluster("alpha");
      const op = c.status?.lastOperation as { result: string; startedAt?: string } | undefined;
      return c.metadata.generation > before.metadata.generation && op?.result === "running" && op.startedAt !== (before.status?.lastOperation as { startedAt?: string }).startedAt ? op : undefined;
    });
    // The engine holds the stack's lock in the bucket, and its holder record is in the Lease.
    await eventually("alpha's lock in the bucket", async () => ((await bucketKeys(`${PREFIX}/.pulumi/locks/`)).some((k) => k.includes("/fleet.alpha/")) ? true : undefined), 60_000);
    const since = Date.now();
    meta.kubectl("-n", NS, "delete", "pod", leader.metadata.name, "--grace-period=0", "--force");
    await old.ended;
    logs.push(old.text());
    await eventually("the standby leads", async () => (leaseHolder().startsWith(`${standby.metadata.name}-`) ? true : undefined), 120_000);
    figures["s3: leader Pod deleted → standby holds the lease"] = seconds(since);
    const recovered = await eventually(
      "the standby recovered alpha's stack",
      async () => meta.kubectl("-n", NS, "logs", standby.metadata.name).split("\n").find((l) => l.includes("recovered an interrupted update") && l.includes("fleet.alpha")),
      120_000,
    );
    figures["s3: leader Pod deleted → stale lock cleared"] = seconds(since);
    expect(JSON.parse(recovered)).toMatchObject({ lock: "clear", why: expect.stringContaining(`held by an ended term, ${leader.metadata.name}-`) });
    const done = await meta.waitForCluster("alpha", "the new generation applied", (c) => c.status?.observedGeneration === c.metadata.generation && c.status?.lastOperation?.result === "succeeded", 600_000);
    figures["s3: leader Pod deleted → update converged"] = seconds(since);
    expect(done.status?.phase).toBe("Ready");
    const masters = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "alpha" } });
    const apiserver = meta.json<{ spec: { template: { spec: { containers: { command?: string[]; args?: string[] }[] } } } }>("-n", masters, "get", "deployment", "alpha-apiserver");
    const container = apiserver.spec.template.spec.containers[0]!;
    expect([...(container.command ?? []), ...(container.args ?? [])]).toContain("--audit-log-maxage=9");

    // No stale lock, no holder record left for alpha; broken is still told, and only it.
    expect((await bucketKeys(`${PREFIX}/.pulumi/locks/`)).filter((k) => k.includes("/fleet.alpha/"))).toEqual([]);
    const holders = meta.json<{ metadata: { annotations?: Record<string, string> } }>("-n", NS, "get", "lease", "kube-on-kube-operator-holders");
    expect(Object.values(holders.metadata.annotations ?? {}).filter((v) => v.includes('"stack":"fleet.alpha"'))).toEqual([]);
    expect(conditionOf("broken", "Ready")?.reason).toBe("StackStateUnreadable");

    // No passphrase, object-store secret or private key in any Pod's log (the killed leader's included).
    for (const pod of operatorPods()) logs.push(meta.kubectl("-n", NS, "logs", pod.metadata.name));
    const passphrase = Buffer.from(meta.json<{ data: { passphrase: string } }>("-n", NS, "get", "secret", "kube-on-kube-operator-state-passphrase").data.passphrase, "base64").toString();
    for (const log of logs) {
      expect(log).not.toContain(passphrase);
      expect(log).not.toContain(objectStoreSecret);
      expect(log).not.toContain("PRIVATE KEY");
    }
  });
});
