import { describe, expect, it } from "vitest";
import { Semaphore } from "../../src/runtime/semaphore";

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
