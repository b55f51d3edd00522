import type { CoreV1Event } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { EventRecorder, type EventApi } from "../../src/runtime/events";
import { StatusConflictError, StatusWriter, type StatusApi } from "../../src/runtime/status-writer";
import { FakeClock } from "../support/fake-clock";

const httpError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });

/** Events kept in memory; `patch` applies the JSON patch the recorder sends. */
function memoryEvents() {
  const events = new Map<string, CoreV1Event>();
  const calls: string[] = [];
  const api = {
    createNamespacedEvent: async ({ body }: { body: CoreV1Event }) => {
      calls.push("create");
      events.set(body.metadata!.name!, structuredClone(body));
      return body;
    },
    patchNamespacedEvent: async ({ name, body }: { name: string; body: Array<{ path: string; value: unknown }> }) => {
      calls.push("patch");
      const event = events.get(name);
      if (!event) throw httpError(404);
      for (const op of body) (event as unknown as Record<string, unknown>)[op.path.slice(1)] = op.value;
      return event;
    },
  } as unknown as EventApi;
  return { api, events, calls };
}

const subject = { apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name: "prod", namespace: "team-a", uid: "u1" } };

describe("EventRecorder", () => {
  it("aggregates identical events inside the window and starts a new Event after it", async () => {
    const clock = new FakeClock();
    const { api, events, calls } = memoryEvents();
    const recorder = new EventRecorder({ api, instance: "pod-1", clock, aggregationWindowMs: 60_000 });
    await Promise.all([recorder.warning(subject, "UpFailed", "boom"), recorder.warning(subject, "UpFailed", "boom")]);
    await clock.advance(30_000);
    await recorder.warning(subject, "UpFailed", "boom");
    expect(calls).toEqual(["create", "patch", "patch"]);
    expect([...events.values()][0]).toMatchObject({ count: 3, type: "Warning", reportingComponent: "kube-on-kube-operator", reportingInstance: "pod-1" });
    await recorder.warning(subject, "UpFailed", "another message");
    await clock.advance(61_000);
    await recorder.warning(subject, "UpFailed", "boom");
    expect(events.size).toBe(3);
  });

  it("creates a new Event when the one it would bump has expired", async () => {
    const { api, events, calls } = memoryEvents();
    const recorder = new EventRecorder({ api, instance: "pod-1", clock: new FakeClock() });
    await recorder.normal(subject, "Provisioned", "ready");
    events.clear();
    await recorder.normal(subject, "Provisioned", "ready");
    expect(calls).toEqual(["create", "patch", "create"]);
    expect([...events.values()][0]!.count).toBe(1);
  });

  it("redacts secrets, truncates long messages, and reports failures instead of throwing", async () => {
    const { api, events } = memoryEvents();
    const errors: unknown[] = [];
    const recorder = new EventRecorder({ api, instance: "pod-1", secrets: () => ["p4ssw0rd"], onError: (e) => errors.push(e) });
    await recorder.warning(subject, "X", `passphrase p4ssw0rd ${"x".repeat(2000)}`);
    const message = [...events.values()][0]!.message!;
    expect(message.startsWith("passphrase [REDACTED] ")).toBe(true);
    expect(message.length).toBeLessThanOrEqual(1024);
    const failing = new EventRecorder({
      api: { createNamespacedEvent: async () => Promise.reject(httpError(403)) } as unknown as EventApi,
      instance: "pod-1",
      onError: (e) => errors.push(e),
    });
    await expect(failing.normal(subject, "Y", "z")).resolves.toBeUndefined();
    expect(errors).toHaveLength(1);
  });
});

describe("StatusWriter", () => {
  function memoryObjects(conflicts: number) {
    let obj = { apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name: "prod", namespace: "team-a", resourceVersion: "1" }, status: { phase: "Pending" } };
    let writes = 0;
    const api = {
      getNamespacedCustomObject: async ({ name }: { name: string }) => {
        if (name !== "prod") throw httpError(404);
        return structuredClone(obj);
      },
      replaceNamespacedCustomObjectStatus: async ({ body }: { body: typeof obj }) => {
        writes++;
        if (writes <= conflicts) throw httpError(409);
        obj = { ...body, metadata: { ...body.metadata, resourceVersion: String(Number(body.metadata.resourceVersion) + 1) } };
        return structuredClone(obj);
      },
    } as unknown as StatusApi;
    return { api, writes: () => writes };
  }
  const options = { group: "kubeonkube.io", version: "v1alpha1", plural: "clusters" };

  it("retries conflicts with a fresh read, and gives up after maxAttempts", async () => {
    const ok = memoryObjects(2);
    const seen: number[] = [];
    const writer = new StatusWriter<{ phase: string }>({ api: ok.api, ...options, onConflict: (_k, n) => seen.push(n) });
    const written = await writer.update("team-a/prod", () => ({ phase: "Ready" }));
    expect(written?.status).toEqual({ phase: "Ready" });
    expect(seen).toEqual([1, 2]);

    const stuck = memoryObjects(100);
    const giveUp = new StatusWriter<{ phase: string }>({ api: stuck.api, ...options, maxAttempts: 3 });
    await expect(giveUp.update("team-a/prod", () => ({ phase: "Ready" }))).rejects.toBeInstanceOf(StatusConflictError);
    expect(stuck.writes()).toBe(3);
  });

  it("skips writes that change nothing and resolves undefined for a missing object", async () => {
    const mem = memoryObjects(0);
    const writer = new StatusWriter<{ phase: string }>({ api: mem.api, ...options });
    await writer.update("team-a/prod", () => ({ phase: "Pending" }));
    await writer.update("team-a/prod", () => undefined);
    expect(mem.writes()).toBe(0);
    expect(await writer.update("team-a/gone", () => ({ phase: "Ready" }))).toBeUndefined();
  });
});
