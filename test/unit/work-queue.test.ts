import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { WorkQueue } from "../../src/runtime/work-queue";
import { FakeClock, flush } from "../support/fake-clock";

function newQueue(clock = new FakeClock(), extra: ConstructorParameters<typeof WorkQueue>[0] = {}) {
  return { clock, queue: new WorkQueue({ clock, backoff: { baseMs: 1000, capMs: 300_000 }, ...extra }) };
}

describe("WorkQueue", () => {
  it("de-duplicates a key queued twice", async () => {
    const { queue } = newQueue();
    queue.add("ns/a");
    queue.add("ns/a");
    queue.add("ns/b");
    expect(queue.len()).toBe(2);
    expect(await queue.get()).toBe("ns/a");
    expect(await queue.get()).toBe("ns/b");
    expect(queue.len()).toBe(0);
  });

  it("holds a key added while processing until done, then hands it out once", async () => {
    const { queue } = newQueue();
    queue.add("ns/a");
    expect(await queue.get()).toBe("ns/a");
    queue.add("ns/a");
    queue.add("ns/a");
    expect(queue.len()).toBe(0);
    queue.done("ns/a");
    expect(queue.len()).toBe(1);
    expect(await queue.get()).toBe("ns/a");
    queue.done("ns/a");
    expect(queue.len()).toBe(0);
  });

  it("wakes a waiting get() when a key arrives", async () => {
    const { queue } = newQueue();
    const pending = queue.get();
    queue.add("ns/a");
    expect(await pending).toBe("ns/a");
  });

  it("adds after a delay; the earliest of two delays wins", async () => {
    const { clock, queue } = newQueue();
    queue.addAfter("ns/a", 5000);
    queue.addAfter("ns/a", 2000);
    queue.addAfter("ns/a", 9000);
    expect(queue.delayedLen()).toBe(1);
    await clock.advance(1999);
    expect(queue.len()).toBe(0);
    await clock.advance(1);
    expect(queue.len()).toBe(1);
    expect(clock.pending()).toBe(0);
  });

  it("backs off per key exponentially up to the cap, and forget resets it", () => {
    const { queue } = newQueue(new FakeClock(), { backoff: { baseMs: 1000, capMs: 10_000 } });
    const delays = Array.from({ length: 6 }, () => queue.addRateLimited("ns/a"));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(queue.numRequeues("ns/a")).toBe(6);
    expect(queue.addRateLimited("ns/b")).toBe(1000);
    queue.forget("ns/a");
    expect(queue.numRequeues("ns/a")).toBe(0);
    expect(queue.addRateLimited("ns/a")).toBe(1000);
  });

  it("spaces retries of many keys by the global token bucket once the burst is spent", async () => {
    const { clock, queue } = newQueue(new FakeClock(), { backoff: { baseMs: 1, capMs: 1 }, rateLimit: { qps: 10, burst: 2 } });
    const delays = ["a", "b", "c", "d"].map((k) => queue.addRateLimited(`ns/${k}`));
    expect(delays).toEqual([1, 1, 100, 200]);
    await clock.advance(1000);
    // A second refilled the bucket to its burst of 2.
    expect(["e", "f", "g"].map((k) => queue.addRateLimited(`ns/${k}`))).toEqual([1, 1, 100]);
  });

  it("reports depth and retries through its hooks", async () => {
    const depths: number[] = [];
    const retried: string[] = [];
    const { queue } = newQueue(new FakeClock(), { onDepth: (d) => depths.push(d), onRetry: (k) => retried.push(k) });
    queue.add("ns/a");
    queue.add("ns/b");
    await queue.get();
    queue.addRateLimited("ns/c");
    expect(depths).toEqual([1, 2, 1]);
    expect(retried).toEqual(["ns/c"]);
  });

  it("reports adds, the time a key waited and the time it was worked on, as client-go's queue metrics do", async () => {
    const events: string[] = [];
    const { clock, queue } = newQueue(new FakeClock(), {
      onAdd: (k) => events.push(`add ${k}`),
      onGet: (k, ms) => events.push(`get ${k} waited ${ms}`),
      onDone: (k, ms) => events.push(`done ${k} worked ${ms}`),
    });
    queue.add("ns/a");
    queue.add("ns/a"); // already waiting: not an add
    await clock.advance(300);
    expect(await queue.get()).toBe("ns/a");
    await clock.advance(50);
    queue.add("ns/a"); // while processing: an add, handed out after done
    await clock.advance(1000);
    queue.done("ns/a");
    await clock.advance(5);
    expect(await queue.get()).toBe("ns/a");
    queue.done("ns/a");
    queue.done("ns/never-handed-out");
    expect(events).toEqual(["add ns/a", "get ns/a waited 300", "add ns/a", "done ns/a worked 1050", "get ns/a waited 1005", "done ns/a worked 0"]);
  });

  it("on shutdown releases waiting getters, drops pending keys and ignores new ones", async () => {
    const { clock, queue } = newQueue();
    const waiting = queue.get();
    queue.shutDown();
    expect(await waiting).toBeUndefined();
    queue.add("ns/a");
    queue.addAfter("ns/b", 10);
    expect(queue.len()).toBe(0);
    expect(clock.pending()).toBe(0);
    expect(await queue.get()).toBeUndefined();
  });

  it("never hands one key to two workers at once and never loses a key (property)", async () => {
    const keys = ["ns/a", "ns/b", "ns/c"];
    const op = fc.oneof(
      fc.record({ op: fc.constant("add" as const), key: fc.constantFrom(...keys) }),
      fc.record({ op: fc.constant("addAfter" as const), key: fc.constantFrom(...keys), ms: fc.integer({ min: 0, max: 5000 }) }),
      fc.record({ op: fc.constant("addRateLimited" as const), key: fc.constantFrom(...keys) }),
      fc.record({ op: fc.constant("get" as const) }),
      fc.record({ op: fc.constant("done" as const), pick: fc.nat() }),
      fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 3000 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 80 }), async (ops) => {
        const clock = new FakeClock();
        const queue = new WorkQueue({ clock, backoff: { baseMs: 100, capMs: 2000 }, rateLimit: { qps: 5, burst: 2 } });
        const inFlight = new Set<string>();
        // Keys added since they were last handed out: each must be handed out again.
        const owed = new Set<string>();
        const take = (key: string | undefined) => {
          if (key === undefined) throw new Error("queue handed out undefined before shutdown");
          expect(inFlight.has(key), `${key} handed out while processing`).toBe(false);
          inFlight.add(key);
          owed.delete(key);
        };
        for (const step of ops) {
          switch (step.op) {
            case "add":
              queue.add(step.key);
              owed.add(step.key);
              break;
            case "addAfter":
              queue.addAfter(step.key, step.ms);
              owed.add(step.key);
              break;
            case "addRateLimited":
              queue.addRateLimited(step.key);
              owed.add(step.key);
              break;
            case "get":
              // Waiting getters are resolved by later adds; their check runs then.
              void queue.get().then(take);
              break;
            case "done": {
              const list = [...inFlight];
              if (list.length === 0) break;
              const key = list[step.pick % list.length]!;
              inFlight.delete(key);
              queue.done(key);
              break;
            }
            case "advance":
              await clock.advance(step.ms);
              break;
          }
          await flush();
          expect(queue.len()).toBeLessThanOrEqual(keys.length);
        }
        // Drain: finish everything, let every delay pass, take whatever is ready.
        for (let round = 0; round < 10; round++) {
          for (const key of [...inFlight]) {
            inFlight.delete(key);
            queue.done(key);
          }
          await clock.advance(10_000);
          while (queue.len() > 0) take(await queue.get());
          await flush();
        }
        expect([...owed]).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });
});
