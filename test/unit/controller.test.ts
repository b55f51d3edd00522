import { describe, expect, it } from "vitest";
import { Controller, TerminalError, type ReconcileEvent, type ReconcileResult } from "../../src/runtime/controller";
import { WorkQueue } from "../../src/runtime/work-queue";
import { FakeClock, flush } from "../support/fake-clock";

/** A reconcile whose calls stay open until the test settles them. */
class Gate {
  readonly running = new Map<string, Array<(r: ReconcileResult | void) => void>>();
  maxConcurrent = 0;
  calls: string[] = [];
  private active = 0;

  readonly reconcile = (key: string): Promise<ReconcileResult | void> => {
    this.calls.push(key);
    this.active++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.active);
    return new Promise((resolve) => {
      const list = this.running.get(key) ?? [];
      list.push((r) => {
        this.active--;
        resolve(r);
      });
      this.running.set(key, list);
    });
  };

  finish(key: string): void {
    const list = this.running.get(key);
    const next = list?.shift();
    if (!next) throw new Error(`${key} is not running`);
    if (list!.length === 0) this.running.delete(key);
    next();
  }

  inFlight(): number {
    return this.active;
  }
}

function setup(reconcile: (key: string) => Promise<ReconcileResult | void>, concurrency = 1) {
  const clock = new FakeClock();
  const events: ReconcileEvent[] = [];
  const queue = new WorkQueue({ clock, backoff: { baseMs: 1000, capMs: 8000 } });
  const controller = new Controller({ kind: "Test", reconcile, concurrency, queue, clock, onReconcile: (e) => events.push(e) });
  controller.start();
  return { clock, events, queue, controller };
}

describe("Controller", () => {
  it("forgets a key after success", async () => {
    const calls: string[] = [];
    const { controller, events, queue, clock } = setup(async (key) => {
      calls.push(key);
    });
    controller.enqueue("ns/a");
    await flush();
    expect(calls).toEqual(["ns/a"]);
    expect(events.map((e) => e.result)).toEqual(["success"]);
    expect(queue.numRequeues("ns/a")).toBe(0);
    await clock.advance(3_600_000);
    expect(calls).toHaveLength(1);
    await controller.stop();
  });

  it("requeues after requeueAfter", async () => {
    const calls: number[] = [];
    const { controller, events, clock } = setup(async () => {
      calls.push(clock.now());
      return { requeueAfter: 30_000 };
    });
    controller.enqueue("ns/a");
    await flush();
    await clock.advance(29_999);
    expect(calls).toHaveLength(1);
    await clock.advance(1);
    expect(calls).toHaveLength(2);
    expect(calls[1]! - calls[0]!).toBe(30_000);
    expect(events[0]).toMatchObject({ result: "requeue", retryAfterMs: 30_000 });
    await controller.stop();
  });

  it("backs off a failing key exponentially, capped, and resets after a success", async () => {
    let failing = true;
    const { controller, events, clock } = setup(async () => {
      if (failing) throw new Error("meta-cluster unreachable");
    });
    controller.enqueue("ns/a");
    await flush();
    for (let i = 0; i < 5; i++) await clock.advance(events.at(-1)!.retryAfterMs!);
    expect(events.map((e) => e.retryAfterMs)).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(events.every((e) => e.result === "error" && e.error?.message === "meta-cluster unreachable")).toBe(true);
    failing = false;
    await clock.advance(8000);
    expect(events.at(-1)!.result).toBe("success");
    failing = true;
    controller.enqueue("ns/a");
    await flush();
    expect(events.at(-1)!.retryAfterMs).toBe(1000);
    await controller.stop();
  });

  it("does not retry a terminal error", async () => {
    let calls = 0;
    const { controller, events, clock } = setup(async () => {
      calls++;
      throw new TerminalError("spec.version 1.99 is not supported");
    });
    controller.enqueue("ns/a");
    await flush();
    await clock.advance(3_600_000);
    expect(calls).toBe(1);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ result: "terminal", key: "ns/a" });
    expect(events[0]!.error!.message).toContain("1.99");
    await controller.stop();
  });

  it("survives a synchronous throw and a thrown non-Error, retrying both", async () => {
    const reconcile = (key: string): Promise<void> => {
      if (key === "ns/sync") throw new Error("sync boom");
      return Promise.reject({ weird: true });
    };
    const { controller, events } = setup(reconcile, 2);
    controller.enqueue("ns/sync");
    controller.enqueue("ns/other");
    await flush();
    const byKey = Object.fromEntries(events.map((e) => [e.key, e]));
    expect(byKey["ns/sync"]).toMatchObject({ result: "error", retryAfterMs: 1000 });
    expect(byKey["ns/other"]!.result).toBe("error");
    expect(byKey["ns/other"]!.error!.message).toContain('{"weird":true}');
    await controller.stop();
  });

  it("never reconciles one key concurrently; changes during a reconcile cause one more", async () => {
    const gate = new Gate();
    const { controller } = setup(gate.reconcile, 4);
    controller.enqueue("ns/a");
    await flush();
    controller.enqueue("ns/a");
    controller.enqueue("ns/a");
    await flush();
    expect(gate.inFlight()).toBe(1);
    gate.finish("ns/a");
    await flush();
    expect(gate.calls).toEqual(["ns/a", "ns/a"]);
    gate.finish("ns/a");
    await flush();
    expect(gate.calls).toHaveLength(2);
    expect(gate.maxConcurrent).toBe(1);
    await controller.stop();
  });

  it("runs at most `concurrency` reconciles at once", async () => {
    const gate = new Gate();
    const { controller } = setup(gate.reconcile, 3);
    for (let i = 0; i < 10; i++) controller.enqueue(`ns/k${i}`);
    await flush();
    expect(gate.inFlight()).toBe(3);
    for (let i = 0; i < 10; i++) {
      gate.finish(`ns/k${i}`);
      await flush();
    }
    expect(gate.calls).toHaveLength(10);
    expect(gate.maxConcurrent).toBe(3);
    await controller.stop();
  });

  it("stop() waits for in-flight reconciles and starts no new ones", async () => {
    const gate = new Gate();
    const { controller } = setup(gate.reconcile, 1);
    controller.enqueue("ns/a");
    controller.enqueue("ns/b");
    await flush();
    let stopped = false;
    const stopping = controller.stop().then(() => (stopped = true));
    await flush();
    expect(stopped).toBe(false);
    gate.finish("ns/a");
    await stopping;
    expect(gate.calls).toEqual(["ns/a"]);
  });

  it("does not start again once stopped: a new leadership term makes a new controller", async () => {
    const calls: string[] = [];
    const clock = new FakeClock();
    const controller = new Controller({ kind: "Test", clock, reconcile: async (key) => void calls.push(key) });
    controller.start();
    controller.enqueue("ns/a");
    await flush();
    await controller.stop();
    expect(() => controller.start()).toThrow(/^controller Test: it was stopped; a new term makes a new controller$/);
    controller.enqueue("ns/lost");
    await flush();
    expect(calls).toEqual(["ns/a"]);
  });

  it("keeps reconciling when the onReconcile hook throws", async () => {
    const calls: string[] = [];
    const clock = new FakeClock();
    const controller = new Controller({
      kind: "Test",
      clock,
      reconcile: async (key) => void calls.push(key),
      onReconcile: () => {
        throw new Error("metrics broke");
      },
    });
    controller.start();
    controller.enqueue("ns/a");
    controller.enqueue("ns/b");
    await flush();
    expect(calls).toEqual(["ns/a", "ns/b"]);
    await controller.stop();
  });

  it("rejects a concurrency that is not a positive integer", () => {
    expect(() => new Controller({ kind: "Test", reconcile: async () => undefined, concurrency: 0 })).toThrow(/positive integer/);
  });
});
