/**
 * What the Cluster reconciler names as stuck while an update waits on the masters' Pods: Pods the
 * scheduler refused, containers in a waiting state that does not clear by itself; not Pods that
 * are merely starting or being deleted.
 */
import { describe, expect, it } from "vitest";
import { podTroubles, registryOf, type PodLike } from "../../src/controllers/cluster/master-pods";

const unschedulable = (name: string, message = "0/1 nodes are available: 1 Insufficient cpu."): PodLike => ({
  metadata: { name },
  status: { phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message }] },
});
const waiting = (name: string, reason: string, message?: string): PodLike => ({
  metadata: { name },
  status: { phase: "Running", conditions: [{ type: "PodScheduled", status: "True" }], containerStatuses: [{ name: "etcd", state: { waiting: { reason, message } } }] },
});

describe("podTroubles", () => {
  it("names an unschedulable Pod with the scheduler's reason", () => {
    expect(podTroubles([unschedulable("big-etcd-0")])).toEqual(["big-etcd-0 unschedulable: 0/1 nodes are available: 1 Insufficient cpu."]);
  });

  it("names containers stuck waiting (crash loop, image pull), with their message on one line", () => {
    expect(podTroubles([waiting("a-0", "CrashLoopBackOff", "back-off 40s restarting\nfailed container"), waiting("b-0", "ErrImagePull")])).toEqual([
      "a-0/etcd CrashLoopBackOff: back-off 40s restarting failed container",
      "b-0/etcd ErrImagePull",
    ]);
  });

  it("finds nothing wrong with Pods starting, being created or being deleted", () => {
    const starting: PodLike = { metadata: { name: "s-0" }, status: { phase: "Pending", conditions: [{ type: "PodScheduled", status: "True" }] } };
    const creating = waiting("c-0", "ContainerCreating");
    const deleting: PodLike = { ...unschedulable("d-0"), metadata: { name: "d-0", deletionTimestamp: "2026-11-26T00:00:00Z" } };
    expect(podTroubles([starting, creating, deleting, { metadata: { name: "n" } }])).toEqual([]);
  });

  it("names at most three, then how many more, and cuts long messages", () => {
    const troubles = podTroubles([unschedulable("p-0", "x".repeat(500)), unschedulable("p-1"), unschedulable("p-2"), unschedulable("p-3"), unschedulable("p-4")]);
    expect(troubles).toHaveLength(4);
    expect(troubles[0].length).toBeLessThan(240);
    expect(troubles[3]).toBe("2 more");
  });

  it("names the image and its registry when a node cannot pull it, before the kubelet's long message", () => {
    const pulling: PodLike = {
      metadata: { name: "demo-apiserver-7c9d" },
      status: {
        phase: "Pending",
        conditions: [{ type: "PodScheduled", status: "True" }],
        containerStatuses: [
          {
            name: "kube-apiserver",
            image: "registry.k8s.io/kube-apiserver:v1.36.99",
            state: { waiting: { reason: "ErrImagePull", message: `failed to pull and unpack image "registry.k8s.io/kube-apiserver:v1.36.99": ${"not found ".repeat(40)}` } },
          },
        ],
      },
    };
    const [trouble] = podTroubles([pulling]);
    expect(trouble).toMatch(/^demo-apiserver-7c9d\/kube-apiserver ErrImagePull \(image registry\.k8s\.io\/kube-apiserver:v1\.36\.99 from registry registry\.k8s\.io\): failed to pull/);
  });
});

describe("registryOf", () => {
  it("reads the registry host as container runtimes do", () => {
    expect(registryOf("registry.k8s.io/etcd:3.6.16-0")).toBe("registry.k8s.io");
    expect(registryOf("mirror.example.com:5000/kube-apiserver:v1.36.3")).toBe("mirror.example.com:5000");
    expect(registryOf("localhost/pause:3.10")).toBe("localhost");
    expect(registryOf("busybox")).toBe("docker.io");
    expect(registryOf("rancher/local-path-provisioner:v0.0.30")).toBe("docker.io");
  });
});
