import { describe, expect, it } from "vitest";
import { KeyedMutex, Semaphore } from "../../src/runtime/semaphore";

/** A task that stays running until released, so the test controls when slots free up. */
function gate() {
  let release!: () => void;
  const done = new Promise<void>((resolve) => (release = resolve));
  return { done, release };
}
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("Semaphore", () => {
  it("runs at most `limit` at once and starts waiters in arrival order as slots free", async () => {
    const s = new Semaphore(2);
    const gates = Array.from({ length: 4 }, gate);
    const started: number[] = [];
    const tasks = gates.map((g, i) =>
      s.run(async () => {
        started.push(i);
        await g.done;
      }),
    );
    await flush();
    expect(started).toEqual([0, 1]);
    expect(s.state).toEqual({ active: 2, waiting: 2 });
    gates[1].release();
    await flush();
    expect(started).toEqual([0, 1, 2]);
    gates[0].release();
    await flush();
    expect(started).toEqual([0, 1, 2, 3]);
    gates[2].release();
    gates[3].release();
    await Promise.all(tasks);
    expect(s.state).toEqual({ active: 0, waiting: 0 });
  });

  it("never has more than `limit` holders, and frees a slot when the task rejects", async () => {
    const s = new Semaphore(3);
    let inside = 0;
    let most = 0;
    const tasks = Array.from({ length: 20 }, (_, i) =>
      s.run(async () => {
        inside++;
        most = Math.max(most, inside);
        await flush();
        inside--;
        if (i % 5 === 0) throw new Error(`task ${i} failed`);
        return i;
      }),
    );
    const results = await Promise.allSettled(tasks);
    expect(most).toBe(3);
    expect(results.filter((r) => r.status === "rejected")).toHaveLength(4);
    expect(s.state).toEqual({ active: 0, waiting: 0 });
  });

  it("refuses a limit that is not a positive integer", () => {
    expect(() => new Semaphore(0)).toThrow(/positive integer, got 0/);
  });
});

describe("KeyedMutex", () => {
  it("runs one holder per key in arrival order, other keys beside it; a failure does not stop the next", async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const gates: Record<string, () => void> = {};
    const hold = (name: string, fail = false) => () =>
      new Promise<string>((resolve, reject) => {
        log.push(`start ${name}`);
        gates[name] = () => (fail ? reject(new Error(`${name} failed`)) : resolve(name));
      });
    const a1 = m.run("a", hold("a1", true));
    const a2 = m.run("a", hold("a2"));
    const b1 = m.run("b", hold("b1"));
    await flush();
    expect(log).toEqual(["start a1", "start b1"]);
    gates.a1();
    await expect(a1).rejects.toThrow("a1 failed");
    await flush();
    expect(log).toEqual(["start a1", "start b1", "start a2"]);
    gates.a2();
    gates.b1();
    expect(await a2).toBe("a2");
    expect(await b1).toBe("b1");
  });
});
