import { describe, expect, it } from "vitest";
import { buildPodStatus } from "../../../src/dev/node-agent/pod-status";

const t0 = new Date("2026-11-25T10:00:00Z");
const t1 = new Date("2026-11-25T10:00:05Z");

describe("dev node Pod status", () => {
  const running = { kind: "running" as const, startedAt: t0 };

  it("reports Running and Ready only when every container is ready, keeping others' conditions", () => {
    const current = { qosClass: "Burstable", conditions: [{ type: "PodScheduled", status: "True" }] };
    const status = buildPodStatus(
      current,
      {
        podIP: "10.88.0.2",
        hostIP: "10.88.0.1",
        startTime: t0,
        containers: [
          { name: "a", image: "etcd", state: running, restartCount: 0, started: true, ready: true },
          { name: "b", image: "etcd", state: running, restartCount: 2, started: true, ready: false },
        ],
      },
      t1,
    );
    expect(status.phase).toBe("Running");
    expect(status.qosClass).toBe("Burstable");
    expect(status.podIPs).toEqual([{ ip: "10.88.0.2" }]);
    const byType = Object.fromEntries((status.conditions ?? []).map((c) => [c.type, c.status]));
    expect(byType).toEqual({ PodScheduled: "True", PodReadyToStartContainers: "True", Initialized: "True", ContainersReady: "False", Ready: "False" });
    expect(status.containerStatuses?.map((c) => [c.name, c.ready, c.restartCount])).toEqual([
      ["a", true, 0],
      ["b", false, 2],
    ]);
  });

  it("keeps lastTransitionTime while a condition does not change", () => {
    const snapshot = { podIP: "10.88.0.2", hostIP: "10.88.0.1", startTime: t0, containers: [{ name: "a", image: "etcd", state: running, restartCount: 0, started: true, ready: true }] };
    const first = buildPodStatus(undefined, snapshot, t0);
    const second = buildPodStatus(first, snapshot, t1);
    expect(second.conditions?.find((c) => c.type === "Ready")?.lastTransitionTime).toEqual(t0);
  });

  it("is Pending with a waiting reason before any container ran", () => {
    const status = buildPodStatus(undefined, {
      hostIP: "10.88.0.1",
      startTime: t0,
      containers: [{ name: "a", image: "x/unknown:1", state: { kind: "waiting", reason: "ErrImagePull", message: "no binary" }, restartCount: 0, started: false, ready: false }],
    });
    expect(status.phase).toBe("Pending");
    expect(status.containerStatuses?.[0].state).toEqual({ waiting: { reason: "ErrImagePull", message: "no binary" } });
  });
});
