/**
 * The operator's worker side, end to end, with nothing mocked: a Cluster on the local
 * meta-cluster, three real sshd hosts on 127.0.0.x, the real package mirror, real containerd and
 * real kubelets joining the business cluster, the real engine running one stack per Machine.
 * Driven with kubectl like a user would: Machines install and report what runs; an unknown host
 * key is refused; a crashed kubelet is repaired; with most machines down nothing is repaired and
 * the condition says why; a catalog change goes canary → batches; a broken artifact halts the
 * rollout on the canary (rolled back) with the others untouched; deleting a Machine cleans its
 * host; and no secret shows up in logs, status, events or the state.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { mastersNamespaceOf } from "../../src/api/v1alpha1";
import { toolchainBinary, toolchainEngineEnv } from "../../src/dev/toolchain";
import { HostProbe } from "../../src/host/host-probe";
import { startOperator, type RunningOperator } from "../../src/operator/operator";
import { devAdminPolicy } from "../../src/dev/dev-policy";
import { PACKAGES_REVISION_ANNOTATION, packagesRevision } from "../../src/controllers/packageversion/revision";
import { devUp, eventually, installCrds, kok, newDevCluster, freeNodePort, type DevCluster } from "../support/dev-cluster";
import { crashService, SANDBOX_WORKER_DEFAULTS, servicePid, startFleetHosts, type FleetHosts } from "../support/fleet-hosts";
import { minimalSpec } from "../support/specs";

const PASSPHRASE = "kok-machines-e2e-passphrase";
const work = mkdtempSync(join(tmpdir(), "kok-machines-e2e-"));
let cluster: DevCluster;
let fleet: FleetHosts;
let operator: RunningOperator | undefined;
const logs: string[] = [];
let nodePort = 0;
const kubectl = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args], { encoding: "utf8" });
const json = <T>(...args: string[]) => JSON.parse(kubectl(...args, "-o", "json")) as T;
const apply = (name: string, object: unknown) => {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, stringify(object));
  kubectl("apply", "-f", file);
};
const business = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", join(work, "biz.kubeconfig"), ...args], { encoding: "utf8" });

interface Condition { type: string; status: string; reason: string; message: string }
interface MachineJson {
  metadata: { name: string; annotations?: Record<string, string> };
  status?: { phase?: string; nodeName?: string; observedVersions?: Record<string, string>; packagesRevision?: string; remediationCount?: number; conditions?: Condition[]; lastOperation?: { result: string; message?: string } };
}
interface CpvJson { status?: { phase?: string; updated?: number; ready?: number; total?: number; revision?: string; currentRevision?: string; failedMachines?: string[]; conditions?: Condition[] } }
const machine = (name: string) => json<MachineJson>("-n", "fleet", "get", "machine", name);
const cpv = () => json<CpvJson>("-n", "fleet", "get", "cpv", "biz-workers");
const condition = (m: MachineJson, type: string) => m.status?.conditions?.find((c) => c.type === type);
const NAMES = ["w0", "w1", "w2"];

function machineObject(i: number, overrides: { hostKey?: string; name?: string } = {}) {
  const host = fleet.hosts[i];
  const name = overrides.name ?? NAMES[i];
  return {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Machine",
    metadata: { name, namespace: "fleet", annotations: { "kubeonkube.io/install-root": host.root } },
    spec: {
      clusterRef: { name: "biz" },
      ip: host.ip,
      hostname: `biz-${name}`,
      idc: "lo-a",
      // The last machine is the canary of every rollout.
      labels: { pool: "e2e", ...(i === 2 ? { canary: "true" } : {}) },
      ssh: { port: host.port, user: host.user, credentialsSecretRef: { name: `ssh-${i}` }, hostKey: overrides.hostKey ?? host.hostKey },
      packageVersionRef: { name: "biz-workers" },
    },
  };
}

function catalog(kubelet: "v1.35.4" | "v1.36.3", broken = false) {
  const packages = fleet.packages(kubelet);
  // The broken artifact: a catalog that promises one binary and whose mirror serves another.
  if (broken) packages.kubelet = { ...packages.kubelet, version: "v1.36.3-broken", sha256: "0".repeat(64) };
  return {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "ClusterPackageVersion",
    metadata: { name: "biz-workers", namespace: "fleet" },
    spec: {
      clusterRef: { name: "biz" },
      packages,
      rollout: { canary: { selector: { matchLabels: { canary: "true" } }, count: 1 }, maxUnavailable: 1, healthGate: { readyTimeoutSeconds: 300 }, haltOnFailure: true, rollbackOnFailure: true },
    },
  };
}

beforeAll(async () => {
  cluster = await newDevCluster();
  await devUp(cluster);
  installCrds(cluster, work);
  fleet = await startFleetHosts(3, "biz");
  kubectl("create", "namespace", "fleet");
  fleet.hosts.forEach((host, i) => kubectl("-n", "fleet", "create", "secret", "generic", `ssh-${i}`, `--from-literal=privateKey=${host.privateKey}`));
  mkdirSync(join(work, "state"), { recursive: true });
  operator = await startOperator({
    kubeconfigPath: cluster.kubeconfig,
    backendUrl: `file://${join(work, "state")}`,
    workRoot: join(work, "work"),
    resyncMs: 60_000,
    concurrency: 3,
    metricsAddr: "127.0.0.1:0",
    engineEnv: toolchainEngineEnv(PASSPHRASE),
    workerDefaults: SANDBOX_WORKER_DEFAULTS,
    policy: devAdminPolicy(),
    healthCheckMs: 5_000,
    probeIntervalMs: 20_000,
    // notReadyTimeoutMs above the spread of two crashed kubelets' NotReady times: their last
    // heartbeats lie up to a lease renewal (10 s) apart, plus a node-monitor period (5 s). At 10 s
    // the first Node could reach its timeout before the second turned NotReady, and be repaired
    // alone (seen once in CI): the outage test needs both counted.
    remediation: { notReadyTimeoutMs: 30_000, maxRemediations: 5, minHealthyPeriodMs: 20_000, maxUnhealthyShare: 0.5 },
    log: (line) => void logs.push(JSON.stringify(line)),
  });
  nodePort = await freeNodePort();
  // A short node-monitor grace period, so a dead kubelet turns its Node NotReady in seconds.
  apply("cluster", {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Cluster",
    metadata: { name: "biz", namespace: "fleet" },
    spec: minimalSpec({
      apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort, port: 6443 } },
      controllerManager: { extraArgs: { "node-monitor-grace-period": "20s" } },
    }),
  });
  apply("cpv", catalog("v1.35.4"));
  fleet.hosts.forEach((_, i) => apply(`machine-${i}`, machineObject(i)));
});

afterAll(async () => {
  // Every step runs even when one before it fails: a leaked meta-cluster or kubelet would weigh
  // on every later test on this machine.
  const steps: [string, () => Promise<unknown>][] = [
    ["stop the operator", async () => operator?.stop()],
    ["stop the hosts", async () => fleet?.stop()],
    ["stop the meta-cluster", async () => cluster && kok(["dev", "down", ...cluster.args, "--purge"])],
  ];
  const failures: string[] = [];
  for (const [what, step] of steps) await step().catch((e: unknown) => failures.push(`${what}: ${(e as Error).message}`));
  if (failures.length) throw new Error(`teardown: ${failures.join("; ")}`);
});

/**
 * Deletes a Machine and waits until its finalizer let go. Never `kubectl delete --wait`: the
 * operator runs in this process, and a synchronous wait would block it from doing the deletion.
 */
async function deleteMachine(name: string): Promise<void> {
  kubectl("-n", "fleet", "delete", "machine", name, "--wait=false");
  await eventually(`Machine ${name} gone`, async () => (kubectl("-n", "fleet", "get", "machines", "-o", "name").includes(`/${name}\n`) ? undefined : true), 600_000);
}

describe("the operator installs, repairs and gray-releases Machines", () => {
  it("installs every Machine once its Cluster is Ready; each reports what its host runs and its Node is Ready", async () => {
    const ready = await eventually(
      "all Machines Ready",
      async () => {
        const all = NAMES.map(machine);
        const failed = all.find((m) => m.status?.phase === "Failed");
        if (failed) throw new Error(`Machine ${failed.metadata.name} failed: ${JSON.stringify(failed.status)}`);
        return all.every((m) => m.status?.phase === "Ready") ? all : undefined;
      },
      1_200_000,
    );
    for (const m of ready) expect(m.status?.observedVersions).toMatchObject({ kubelet: "v1.35.4", containerd: fleet.packages("v1.35.4").containerd.version });
    const secret = json<{ data: { kubeconfig: string } }>("-n", "fleet", "get", "secret", "biz-admin-kubeconfig");
    writeFileSync(join(work, "biz.kubeconfig"), Buffer.from(secret.data.kubeconfig, "base64"), { mode: 0o600 });
    const nodes = JSON.parse(business("get", "nodes", "-o", "json")) as { items: { metadata: { name: string }; status: { nodeInfo: { kubeletVersion: string }; conditions: { type: string; status: string }[] } }[] };
    expect(nodes.items.map((n) => n.metadata.name).sort()).toEqual(["biz-w0", "biz-w1", "biz-w2"]);
    for (const n of nodes.items) {
      expect(n.status.nodeInfo.kubeletVersion).toBe("v1.35.4");
      expect(n.status.conditions.find((c) => c.type === "Ready")?.status).toBe("True");
    }
    const table = kubectl("-n", "fleet", "get", "km");
    expect(table.split("\n")[0].split(/\s+/).filter(Boolean)).toEqual(["NAME", "CLUSTER", "IP", "PHASE", "KUBELET", "AGE"]);
    await eventually("the catalog's first rollout Complete", async () => (cpv().status?.phase === "Complete" ? true : undefined));
    expect(cpv().status).toMatchObject({ updated: 3, ready: 3, total: 3 });
  });

  it("refuses a host whose key is not the pinned one, by name", async () => {
    apply("stranger", machineObject(0, { name: "stranger", hostKey: fleet.hosts[1].hostKey }));
    const failed = await eventually("the stranger Machine Failed", async () => {
      const m = machine("stranger");
      return m.status?.phase === "Failed" ? m : undefined;
    });
    expect(condition(failed, "Ready")?.message).toContain("does not match the pinned ssh.hostKey");
    expect(failed.status?.lastOperation?.message).toContain(fleet.hosts[0].ip);
    await deleteMachine("stranger");
  });

  it("repairs a machine whose kubelet crashed: the Node goes NotReady, the operator restarts its services", async () => {
    const before = machine("w1").status?.remediationCount ?? 0;
    crashService(fleet.hosts[1], "kubelet");
    const repaired = await eventually(
      "w1 repaired and Ready",
      async () => {
        const m = machine("w1");
        return (m.status?.remediationCount ?? 0) > before && m.status?.phase === "Ready" && servicePid(fleet.hosts[1], "kubelet") ? m : undefined;
      },
      600_000,
    );
    expect(repaired.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    const events = json<{ items: { reason: string; message: string; involvedObject: { name: string } }[] }>("-n", "fleet", "get", "events");
    expect(events.items.filter((e) => e.involvedObject.name === "w1").map((e) => e.reason)).toEqual(expect.arrayContaining(["Remediating", "ServicesRestarted"]));
    await eventually("Node biz-w1 Ready again", async () => (business("get", "node", "biz-w1", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}") === "True" ? true : undefined));
  });

  it("does not repair when most machines are unhealthy, and says why", async () => {
    const counts = Object.fromEntries(NAMES.map((n) => [n, machine(n).status?.remediationCount ?? 0]));
    crashService(fleet.hosts[0], "kubelet");
    crashService(fleet.hosts[1], "kubelet");
    const blocked = await eventually(
      "w0 and w1 short-circuited",
      async () => {
        const ms = ["w0", "w1"].map(machine);
        return ms.every((m) => condition(m, "RemediationAllowed")?.reason === "TooManyUnhealthy") ? ms : undefined;
      },
      600_000,
    ).catch((error: Error) => {
      const state = NAMES.map(machine).map((m) => `${m.metadata.name}: ${m.status?.phase} remediations ${m.status?.remediationCount ?? 0}, RemediationAllowed ${JSON.stringify(condition(m, "RemediationAllowed"))}`);
      throw new Error(`${error.message}\n${state.join("\n")}\noperator log tail:\n${logs.slice(-20).join("\n")}`);
    });
    for (const m of blocked) {
      expect(m.status?.remediationCount ?? 0).toBe(counts[m.metadata.name]);
      expect(condition(m, "RemediationAllowed")?.message).toMatch(/2 of 3/);
    }
    expect(servicePid(fleet.hosts[0], "kubelet")).toBeUndefined();
    // The outage ends (here: an SRE restarts the kubelets); the machines report Ready again.
    const probe = new HostProbe();
    for (const i of [0, 1]) {
      const h = fleet.hosts[i];
      await probe.restartServices({ host: h.ip, port: h.port, user: h.user, hostKey: h.hostKey, privateKey: h.privateKey }, { installRoot: h.root, serviceManager: "process" });
    }
    await eventually("w0 and w1 Ready again", async () => (["w0", "w1"].every((n) => machine(n).status?.phase === "Ready") ? true : undefined), 600_000);
  });

  it("rolls a new catalog out canary first, then one machine at a time, each gated on the previous being Ready", async () => {
    const rev = packagesRevision(fleet.packages("v1.36.3"));
    apply("cpv", catalog("v1.36.3"));
    const done = (m: MachineJson) => m.status?.packagesRevision === rev && m.status.phase === "Ready";
    const admitted = (m: MachineJson) => m.metadata.annotations?.[PACKAGES_REVISION_ANNOTATION] === rev;
    const order: string[] = [];
    await eventually(
      "the rollout Complete",
      async () => {
        const ms = NAMES.map(machine);
        for (const m of ms) if (admitted(m) && !order.includes(m.metadata.name)) order.push(m.metadata.name);
        // Never two machines admitted and not yet done at once (canary 1, maxUnavailable 1).
        expect(ms.filter((m) => admitted(m) && !done(m)).length).toBeLessThanOrEqual(1);
        const c = cpv();
        if (c.status?.phase === "Halted") throw new Error(`the rollout halted: ${JSON.stringify(c.status)}`);
        return c.status?.phase === "Complete" && c.status.currentRevision === rev ? true : undefined;
      },
      1_200_000,
    );
    expect(order[0]).toBe("w2");
    expect(order).toHaveLength(3);
    for (const name of NAMES) expect(machine(name).status?.observedVersions?.kubelet).toBe("v1.36.3");
    const versions = business("get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.kubeletVersion}").split(" ");
    expect(versions).toEqual(["v1.36.3", "v1.36.3", "v1.36.3"]);
  });

  it("halts a rollout whose canary fails, rolls the canary back, and leaves the other machines untouched", async () => {
    const before = Object.fromEntries(["w0", "w1"].map((n) => [n, machine(n)]));
    const previous = cpv().status?.currentRevision;
    apply("cpv", catalog("v1.36.3", true));
    const halted = await eventually("the rollout Halted", async () => (cpv().status?.phase === "Halted" ? cpv() : undefined), 600_000);
    expect(halted.status?.failedMachines).toEqual(["w2"]);
    // The Machine's own Event comes from its reconciler, which may record it a moment after the
    // rollout saw the failure in its status: wait for both Events, do not just read once.
    type EventList = { items: { reason: string; type: string; message: string; involvedObject: { name: string } }[] };
    const events = await eventually("the InstallFailed and RolloutHalted Events", async () => {
      const list = json<EventList>("-n", "fleet", "get", "events");
      const installFailed = list.items.find((e) => e.involvedObject.name === "w2" && e.reason === "InstallFailed");
      const halted = list.items.find((e) => e.involvedObject.name === "biz-workers" && e.reason === "RolloutHalted");
      return installFailed && halted ? { installFailed, halted } : undefined;
    }, 60_000);
    expect(events.installFailed.message).toMatch(/sha256 mismatch/);
    expect(events.halted.message).toContain("w2");
    await eventually("the canary back on the previous catalog and Ready", async () => {
      const m = machine("w2");
      return m.metadata.annotations?.[PACKAGES_REVISION_ANNOTATION] === previous && m.status?.phase === "Ready" && m.status.packagesRevision === previous ? true : undefined;
    }, 600_000);
    for (const name of ["w0", "w1"]) {
      const m = machine(name);
      expect(m.metadata.annotations?.[PACKAGES_REVISION_ANNOTATION]).toBe(before[name].metadata.annotations?.[PACKAGES_REVISION_ANNOTATION]);
      expect(m.status?.packagesRevision).toBe(before[name].status?.packagesRevision);
    }
    expect(business("get", "node", "biz-w2", "-o", "jsonpath={.status.nodeInfo.kubeletVersion}")).toBe("v1.36.3");
  });

  it("deleting a Machine drains and removes its Node and cleans its host", async () => {
    const host = fleet.hosts[0];
    expect(existsSync(join(host.root, "usr/local/bin/kubelet"))).toBe(true);
    await deleteMachine("w0");
    expect(() => business("get", "node", "biz-w0")).toThrow(/NotFound|not found/);
    expect(existsSync(join(host.root, "usr/local/bin/kubelet"))).toBe(false);
    expect(servicePid(host, "kubelet")).toBeUndefined();
  });

  it("never shows a secret in logs, status, events or the state", async () => {
    // The CA the Machines were signed with: where the Cluster's status says (its stack's output).
    const ref = json<{ status: { caSecretRef?: { namespace: string; name: string; privateKeyKey: string } } }>("-n", "fleet", "get", "cluster", "biz").status.caSecretRef;
    expect(ref).toEqual({ namespace: mastersNamespaceOf({ metadata: { namespace: "fleet", name: "biz" } }), name: "biz-controller-manager-certs", certificateKey: "ca.crt", privateKeyKey: "ca.key" });
    const masters = json<{ data: Record<string, string> }>("-n", ref!.namespace, "get", "secret", ref!.name);
    const caKey = Buffer.from(masters.data[ref!.privateKeyKey], "base64").toString("utf8");
    const body = (pem: string) => pem.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    const secrets = [PASSPHRASE, ...fleet.hosts.map((h) => body(h.privateKey).slice(0, 40)), body(caKey).slice(0, 40)];
    const statuses = kubectl("-n", "fleet", "get", "machines,clusterpackageversions,clusters", "-o", "json");
    const events = kubectl("-n", "fleet", "get", "events", "-o", "json");
    const stateFiles: string[] = [];
    const walk = (dir: string) => readdirSync(dir).forEach((f) => (statSync(join(dir, f)).isDirectory() ? walk(join(dir, f)) : stateFiles.push(readFileSync(join(dir, f), "utf8"))));
    walk(join(work, "state"));
    expect(stateFiles.length).toBeGreaterThan(0);
    for (const [where, text] of [["logs", logs.join("\n")], ["status", statuses], ["events", events], ["state", stateFiles.join("\n")]] as const) {
      for (const secret of secrets) expect(text.includes(secret), `a secret in the ${where}`).toBe(false);
    }
  });
});
