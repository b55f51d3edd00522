/**
 * MasterPods against a real kube-apiserver + etcd: it reads the Pods of a masters' namespace as the
 * apiserver serves them (client-node's types, not hand-written objects) and names the stuck ones.
 * No scheduler or kubelet runs here, so the Pods' status is written through the status
 * subresource, as the scheduler and the kubelet would write it.
 */
import { CoreV1Api, type KubeConfig, type V1PodStatus } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MasterPods } from "../../src/controllers/cluster/master-pods";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";

const NS = "fleet-big";
let apiserver: TestApiserver;
let kc: KubeConfig;
let core: CoreV1Api;

async function podWithStatus(name: string, namespace: string, status: V1PodStatus): Promise<void> {
  await core.createNamespacedPod({ namespace, body: { metadata: { name, namespace }, spec: { containers: [{ name: "etcd", image: "registry.invalid/etcd:3.6" }] } } });
  const pod = await core.readNamespacedPod({ name, namespace });
  await core.replaceNamespacedPodStatus({ name, namespace, body: { ...pod, status } });
}

beforeAll(async () => {
  apiserver = await startTestApiserver();
  kc = apiserver.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  for (const name of [NS, "fleet-other"]) {
    await core.createNamespace({ body: { metadata: { name } } });
    // No controller-manager here to create it, and Pod admission wants it.
    await core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: "default" } } });
  }
  const now = new Date();
  await podWithStatus("big-etcd-0", NS, {
    phase: "Pending",
    conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/1 nodes are available: 1 Insufficient cpu.", lastTransitionTime: now }],
  });
  await podWithStatus("big-apiserver-x", NS, {
    phase: "Running",
    conditions: [{ type: "PodScheduled", status: "True", lastTransitionTime: now }],
    containerStatuses: [{ name: "etcd", image: "registry.invalid/etcd:3.6", imageID: "", ready: false, restartCount: 4, state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 1m20s" } } }],
  });
  await podWithStatus("big-scheduler-y", NS, { phase: "Pending", conditions: [{ type: "PodScheduled", status: "True", lastTransitionTime: now }] });
  await podWithStatus("other-etcd-0", "fleet-other", { phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", lastTransitionTime: now }] });
}, 120_000);

afterAll(async () => apiserver?.stop());

describe("MasterPods with a real apiserver", () => {
  it("names the unschedulable Pod and the crash-looping container of one masters' namespace, and nothing of another", async () => {
    const troubles = await new MasterPods(kc).troubles(NS);
    expect(troubles.sort()).toEqual(["big-apiserver-x/etcd CrashLoopBackOff: back-off 1m20s", "big-etcd-0 unschedulable: 0/1 nodes are available: 1 Insufficient cpu."]);
  });

  it("finds nothing in a namespace without Pods", async () => {
    await core.createNamespace({ body: { metadata: { name: "fleet-empty" } } });
    expect(await new MasterPods(kc).troubles("fleet-empty")).toEqual([]);
  });
});
