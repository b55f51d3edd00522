/**
 * BusinessNodeWatches against a real kube-apiserver + etcd (test/support/apiserver.ts, the one
 * that can stop and restart the apiserver alone while etcd keeps the data). The watch is given a
 * self-contained kubeconfig text, as a Cluster's admin kubeconfig Secret holds it. Nodes are real
 * Node objects whose status is written through the status subresource, as a kubelet writes it.
 * Waits are bounded polls of a condition; the figures printed are measured, not asserted.
 */
import { readFileSync } from "node:fs";
import { CoreV1Api, type V1Node, type V1NodeCondition } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BusinessNodeWatches, nodeInformer } from "../../src/controllers/machine/node-health";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { eventually } from "../support/poll";

const CLUSTER = "fleet/prod-a";
let apiserver: TestApiserver;
let core: CoreV1Api;
let adminKubeconfig: string;

/** The admin kubeconfig as one YAML text with the CA embedded, as the operator stores it. */
function kubeconfigText(): string {
  const kc = apiserver.kubeConfig();
  const cluster = kc.getCurrentCluster()!;
  const ca = Buffer.from(readFileSync(cluster.caFile!)).toString("base64");
  return `apiVersion: v1
kind: Config
clusters: [{ name: prod-a, cluster: { server: "${cluster.server}", certificate-authority-data: ${ca} } }]
users: [{ name: admin, user: { token: ${kc.getCurrentUser()!.token} } }]
contexts: [{ name: admin, context: { cluster: prod-a, user: admin } }]
current-context: admin
`;
}

/** Writes the node's Ready condition through the status subresource, as its kubelet would. */
async function setReady(name: string, status: "True" | "False", at: string, extra: Partial<V1NodeCondition> = {}): Promise<void> {
  const current = await core.readNodeStatus({ name });
  const ready: V1NodeCondition = {
    type: "Ready",
    status,
    reason: status === "True" ? "KubeletReady" : "KubeletNotReady",
    message: status === "True" ? "kubelet is posting ready status" : "container runtime is down",
    lastTransitionTime: new Date(at),
    lastHeartbeatTime: new Date(at),
    ...extra,
  };
  const body: V1Node = { ...current, status: { ...current.status, conditions: [ready], nodeInfo: { ...nodeInfo, kubeletVersion: "v1.36.3" } } };
  await core.replaceNodeStatus({ name, body });
}
const nodeInfo = { architecture: "amd64", bootID: "", containerRuntimeVersion: "containerd://1.7.22", kernelVersion: "6.1", kubeProxyVersion: "", machineID: "", operatingSystem: "linux", osImage: "Debian", systemUUID: "", kubeletVersion: "" };

beforeAll(async () => {
  apiserver = await startTestApiserver();
  core = apiserver.kubeConfig().makeApiClient(CoreV1Api);
  adminKubeconfig = kubeconfigText();
});
afterAll(async () => {
  await apiserver?.stop();
});

describe("BusinessNodeWatches against a real apiserver", () => {
  const changes: string[] = [];
  const errors: string[] = [];
  // Restarts wait on `gate` while it is closed, so the test decides when a broken watch may come back.
  let gate: Promise<void> | undefined;
  let openGate = () => {};
  const watches = new BusinessNodeWatches({
    onChange: (cluster, name) => changes.push(`${cluster} ${name}`),
    onError: (cluster, err) => errors.push(`${cluster}: ${(err as Error)?.message ?? String(err)}`),
    makeInformer: ({ kubeConfig, onError }) =>
      nodeInformer(kubeConfig, onError, {
        restartBackoff: { baseMs: 100, capMs: 1000 },
        sleep: (ms) => gate ?? new Promise((r) => setTimeout(r, ms)),
      }),
  });
  afterAll(() => watches.stopAll());
  const seen = (name: string) => changes.filter((c) => c === `${CLUSTER} ${name}`).length;

  it("sees a new Node become Ready through the kubeconfig text", async () => {
    watches.ensure(CLUSTER, adminKubeconfig);
    await eventually("the first list", () => watches.synced(CLUSTER));
    expect(watches.nodes(CLUSTER)).toEqual([]);
    await core.createNode({ body: { metadata: { name: "worker-0001", labels: { pool: "general" } } } });
    await setReady("worker-0001", "True", "2026-01-01T00:00:00Z");
    await eventually("worker-0001 Ready", () => watches.node(CLUSTER, "worker-0001")?.ready);
    expect(watches.node(CLUSTER, "worker-0001")).toEqual({
      name: "worker-0001",
      ready: true,
      readySince: new Date("2026-01-01T00:00:00Z"),
      kubeletVersion: "v1.36.3",
      reason: "KubeletReady",
      message: "kubelet is posting ready status",
    });
    expect(seen("worker-0001")).toBeGreaterThan(0);
  });

  it("reports NotReady, and not a mere heartbeat", async () => {
    const before = seen("worker-0001");
    // A heartbeat only, then a real change: events arrive in order, so once the change is seen
    // the heartbeat has been handled too.
    await setReady("worker-0001", "True", "2026-01-01T00:00:00Z", { lastHeartbeatTime: new Date("2026-01-01T00:05:00Z") });
    await setReady("worker-0001", "False", "2026-01-01T00:06:00Z");
    await eventually("worker-0001 NotReady", () => watches.node(CLUSTER, "worker-0001")?.ready === false);
    expect(seen("worker-0001")).toBe(before + 1);
    expect(watches.node(CLUSTER, "worker-0001")).toMatchObject({ ready: false, reason: "KubeletNotReady", readySince: new Date("2026-01-01T00:06:00Z") });
  });

  it("comes back after the apiserver went away and sees what changed meanwhile", async () => {
    gate = new Promise<void>((resolve) => (openGate = resolve));
    const before = seen("worker-0001");
    await apiserver.stopApiserver();
    await eventually("the watch to notice the apiserver is gone", () => errors.length > 0);
    await apiserver.startApiserver();
    await setReady("worker-0001", "True", "2026-01-01T00:10:00Z");
    await core.createNode({ body: { metadata: { name: "worker-0002" } } });
    expect(watches.node(CLUSTER, "worker-0001")?.ready).toBe(false);

    const reopened = Date.now();
    gate = undefined;
    openGate();
    await eventually("the changes made while the watch was down", () => watches.node(CLUSTER, "worker-0001")?.ready && watches.node(CLUSTER, "worker-0002"));
    console.log(`node watch caught up ${Date.now() - reopened} ms after its restart was allowed; errors: ${JSON.stringify(errors.slice(0, 2))}`);
    expect(seen("worker-0001")).toBe(before + 1);
    expect(seen("worker-0002")).toBe(1);
  });

  it("recovers on its own backoff after an apiserver restart", async () => {
    const errorsBefore = errors.length;
    await apiserver.stopApiserver();
    await eventually("the watch to notice the apiserver is gone", () => errors.length > errorsBefore);
    await apiserver.startApiserver();
    const back = Date.now();
    await setReady("worker-0002", "False", "2026-01-01T00:20:00Z");
    await eventually("worker-0002's status after the restart", () => watches.node(CLUSTER, "worker-0002")?.reason === "KubeletNotReady");
    console.log(`node watch saw a change ${Date.now() - back} ms after the apiserver was ready again (${errors.length - errorsBefore} error(s) reported)`);
  });

  it("reports a deleted Node, and forgets a cluster once stopped", async () => {
    const before = seen("worker-0002");
    await core.deleteNode({ name: "worker-0002" });
    await eventually("worker-0002 gone", () => watches.node(CLUSTER, "worker-0002") === undefined);
    expect(seen("worker-0002")).toBe(before + 1);
    watches.stop(CLUSTER);
    expect(watches.synced(CLUSTER)).toBe(false);
    expect(watches.nodes(CLUSTER)).toEqual([]);
  });
});
