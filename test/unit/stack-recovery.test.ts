import { KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { EngineFence, FencedError } from "../../src/runtime/fencing";
import { ResilientInformer, type ListWatchLike } from "../../src/runtime/informer";
import { Manager } from "../../src/runtime/manager";
import { TermRecovery, type RecoveryFailure, type StackRecovery } from "../../src/runtime/recovery";
import { FakeClock, flush } from "../support/fake-clock";
import { FakeListWatch } from "../support/fake-list-watch";
import { MemoryLeases } from "../support/memory-leases";

const cm = (name: string): V1ConfigMap => ({ metadata: { namespace: "ns", name, resourceVersion: "1" } });

function fakeInformer(clock: FakeClock, items: V1ConfigMap[]) {
  return new ResilientInformer<V1ConfigMap>({
    kubeConfig: new KubeConfig(),
    path: "/api/v1/configmaps",
    list: async () => ({ apiVersion: "v1", kind: "ConfigMapList", metadata: {}, items }),
    clock,
    makeListWatch: (_kc, _path, list) => new FakeListWatch(list) as unknown as ListWatchLike<V1ConfigMap>,
  });
}

/** A recovery that fails `failures` times (a corrupt checkpoint, an unreachable backend), then succeeds. */
function flaky(key: string, failures: number, runs: string[]): StackRecovery {
  let left = failures;
  return {
    kind: "ConfigMap",
    key,
    run: async () => {
      runs.push(key);
      if (left-- > 0) throw new Error(`stack ns.${key.split("/")[1]}: checkpoint is corrupt`);
    },
  };
}

describe("TermRecovery: one object at a time", () => {
  it("holds only the failing object, retries it with backoff, and releases it when it succeeds", async () => {
    const clock = new FakeClock();
    const term = new AbortController();
    const runs: string[] = [];
    const failures: RecoveryFailure[] = [];
    const recovered: string[] = [];
    const recovery = new TermRecovery({
      recoveries: [flaky("ns/a", 0, runs), flaky("ns/bad", 2, runs), flaky("ns/c", 0, runs)],
      termEnded: term.signal,
      clock,
      onFailure: (f) => void failures.push(f),
      onRecovered: (r, attempts) => void recovered.push(`${r.key}@${attempts}`),
    });
    await recovery.firstPass;
    expect(recovered.sort()).toEqual(["ns/a@1", "ns/c@1"]);
    expect(recovery.isHeld("ConfigMap", "ns/a")).toBe(false);
    expect(recovery.isHeld("ConfigMap", "ns/bad")).toBe(true);
    expect(recovery.waiting()).toEqual([{ kind: "ConfigMap", key: "ns/bad", attempts: 1, lastError: "stack ns.bad: checkpoint is corrupt" }]);
    expect(failures.map((f) => [f.attempt, f.retryInMs])).toEqual([[1, 1000]]);
    await clock.advance(1000);
    expect(failures.map((f) => [f.attempt, f.retryInMs])).toEqual([[1, 1000], [2, 2000]]);
    await clock.advance(2000);
    expect(recovered).toContain("ns/bad@3");
    expect(recovery.waiting()).toEqual([]);
    await recovery.done;
    expect(runs.filter((k) => k === "ns/bad")).toHaveLength(3);
  });

  it("lets the controllers start after firstPassMs when one recovery hangs; stops retrying when the term ends", async () => {
    const clock = new FakeClock();
    const term = new AbortController();
    const hung: StackRecovery = { kind: "ConfigMap", key: "ns/hung", run: () => new Promise<void>(() => undefined) };
    const runs: string[] = [];
    const recovery = new TermRecovery({ recoveries: [hung, flaky("ns/bad", 100, runs), flaky("ns/a", 0, runs)], termEnded: term.signal, clock, firstPassMs: 30_000 });
    let passed = false;
    void recovery.firstPass.then(() => (passed = true));
    await flush();
    expect(passed).toBe(false);
    await clock.advance(30_000);
    expect(passed).toBe(true);
    expect(recovery.isHeld("ConfigMap", "ns/hung")).toBe(true);
    expect(recovery.isHeld("ConfigMap", "ns/a")).toBe(false);
    const tries = runs.length;
    term.abort();
    await recovery.done;
    await clock.advance(3_600_000);
    expect(runs.length).toBe(tries);
  });
});

describe("Manager: per-object recovery and fencing", () => {
  it("starts the controllers despite a failing recovery, reconciles that object only once it recovers, and says so on /readyz", async () => {
    const clock = new FakeClock();
    const informer = fakeInformer(clock, [cm("a"), cm("bad")]);
    const reconciled: string[] = [];
    const runs: string[] = [];
    const failed: string[] = [];
    const manager = new Manager({
      clock,
      recoveries: () => [flaky("ns/a", 0, runs), flaky("ns/bad", 1, runs)],
      onRecoveryFailed: (f) => void failed.push(`${f.recovery.key}: ${String(f.error)}`),
    });
    manager.register({ kind: "ConfigMap", informer, reconcile: async (key) => void reconciled.push(key) });
    await manager.start();
    await flush();
    expect(failed).toEqual(["ns/bad: Error: stack ns.bad: checkpoint is corrupt"]);
    expect(reconciled).toEqual(["ns/a"]);
    expect(manager.readiness()()).toBeUndefined();
    expect(manager.describe()).toBe("leading (no leader election); controllers running: ConfigMap; 1 object(s) awaiting stack recovery: ConfigMap ns/bad");
    await clock.advance(1000);
    expect(reconciled).toEqual(["ns/a", "ns/bad"]);
    expect(manager.recoveryState()).toEqual([]);
    await manager.stop();
  });

  it("retries the read of which objects need a recovery (the holder records) with backoff; no controller starts before it succeeds", async () => {
    const clock = new FakeClock();
    const informer = fakeInformer(clock, [cm("a"), cm("held")]);
    const reconciled: string[] = [];
    const errors: string[] = [];
    const runs: string[] = [];
    let reads = 0;
    const manager = new Manager({
      clock,
      // The holder records' Lease cannot be read at first (the apiserver restarting, say).
      recoveries: async () => {
        if (++reads === 1) throw new Error("holder records: reading Lease kok/kube-on-kube-operator-holders failed: HTTP 503");
        return [flaky("ns/held", 0, runs)];
      },
      onError: (err) => void errors.push(String(err)),
    });
    manager.register({ kind: "ConfigMap", informer, reconcile: async (key) => void reconciled.push(key) });
    await manager.start();
    await flush();
    expect(errors).toEqual(["Error: holder records: reading Lease kok/kube-on-kube-operator-holders failed: HTTP 503"]);
    // Reconciling now could update an object whose stack holds a stale lock: nothing runs yet.
    expect(reconciled).toEqual([]);
    expect(manager.describe()).toMatch(/controllers not running/);
    await clock.advance(1000);
    expect(reads).toBe(2);
    expect(runs).toEqual(["ns/held"]);
    expect(reconciled.sort()).toEqual(["ns/a", "ns/held"]);
    await manager.stop();
  });

  it("on losing the lease: stops handing out keys and closes the fence at once, without waiting for the running reconcile", async () => {
    const clock = new FakeClock();
    const store = new MemoryLeases();
    const informer = fakeInformer(clock, [cm("a"), cm("b")]);
    const fence = new EngineFence({ identity: "replica-a", clock });
    const armed: number[] = [];
    const killed: string[] = [];
    const fenceFailures: string[] = [];
    let release!: () => void;
    const started: string[] = [];
    const manager = new Manager({
      clock,
      election: { api: store.api(), namespace: "kok-system", name: "kube-on-kube-operator", identity: "replica-a", leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, clock },
      fence,
      watchdog: { arm: (ms) => void armed.push(ms), kill: () => void killed.push("kill"), settled: () => Promise.resolve() },
      onFenceFailed: (reason) => void fenceFailures.push(reason),
    });
    let admittedSignal: AbortSignal | undefined;
    manager.register({
      kind: "ConfigMap",
      informer,
      // One reconcile at a time: "a" runs an engine operation that only ends when the fence aborts it.
      reconcile: async (key) => {
        started.push(key);
        const op = fence.admit(`up of ${key}`);
        admittedSignal = op.signal;
        await new Promise<void>((resolve) => {
          release = resolve;
          op.signal.addEventListener("abort", () => resolve());
        });
        op.done();
      },
    });
    await manager.start();
    for (let i = 0; i < 4 && !manager.isLeading(); i++) await clock.advance(250);
    await flush();
    expect(manager.isLeading()).toBe(true);
    expect(fence.isOpened()).toBe(true);
    expect(started).toEqual(["ns/a"]);
    // Re-armed for a little less than the lease duration from the last renewal's start.
    expect(armed[0]).toBeLessThanOrEqual(15_000 - 1000);
    expect(armed[0]).toBeGreaterThan(10_000);
    // The apiserver goes away: renewals fail until the renew deadline.
    store.down = true;
    while (manager.isLeading()) await clock.advance(250);
    await flush();
    expect(killed).toEqual(["kill"]);
    expect(admittedSignal?.aborted).toBe(true);
    expect(fence.isOpened()).toBe(false);
    expect(() => fence.admit("up of ns/b")).toThrow(FencedError);
    // "b" was never handed out: the queue stopped with the term.
    expect(started).toEqual(["ns/a"]);
    expect(fenceFailures).toEqual([]);
    expect(manager.readiness()()).toBeUndefined();
    expect(manager.describe()).toMatch(/^standby; leader: replica-a; controllers not running/);
    release();
    await manager.stop();
  });

  it("opens a term's fence only once the watchdog's last kill is over (the marker outlives the term)", async () => {
    const clock = new FakeClock();
    const store = new MemoryLeases();
    const fence = new EngineFence({ identity: "replica-a", clock });
    const calls: string[] = [];
    let settle!: () => void;
    const manager = new Manager({
      clock,
      election: { api: store.api(), namespace: "kok-system", name: "kube-on-kube-operator", identity: "replica-a", leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, clock },
      fence,
      watchdog: {
        arm: () => void calls.push("arm"),
        kill: () => void calls.push("kill"),
        // Still scanning for the last term's engines until `settle` is called.
        settled: () => new Promise<void>((resolve) => {
          calls.push("settled?");
          settle = resolve;
        }),
      },
    });
    const reconciled: string[] = [];
    manager.register({ kind: "ConfigMap", informer: fakeInformer(clock, [cm("a")]), reconcile: async (key) => void reconciled.push(key) });
    await manager.start();
    for (let i = 0; i < 4 && !manager.isLeading(); i++) await clock.advance(250);
    await flush();
    // Armed for the new term first (so no old timer fires later), then asked to settle.
    expect(calls).toEqual(["arm", "settled?"]);
    expect(fence.isOpened()).toBe(false);
    expect(reconciled).toEqual([]);
    settle();
    await flush();
    expect(fence.isOpened()).toBe(true);
    expect(reconciled).toEqual(["ns/a"]);
    await manager.stop();
  });
});
