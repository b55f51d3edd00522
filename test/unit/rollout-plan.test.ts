import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { RolloutSpec } from "../../src/api/v1alpha1";
import { planRollout, resolveMaxUnavailable, type PlannedMachine } from "../../src/components/rollout-plan";

const machineArb = fc.record({
  name: fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/),
  labels: fc.record({ canary: fc.constantFrom("true", "false"), zone: fc.constantFrom("a", "b") }),
});
const poolArb = fc.uniqueArray(machineArb, { selector: (m) => m.name, minLength: 1, maxLength: 60 });
const maxUnavailableArb = fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 100 }).map((n) => `${n}%`));
const rolloutArb: fc.Arbitrary<RolloutSpec> = fc.record(
  {
    maxUnavailable: maxUnavailableArb,
    canary: fc.record(
      { selector: fc.constant({ matchLabels: { canary: "true" } }), count: fc.integer({ min: 0, max: 10 }) },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: [] },
);

describe("planRollout (properties)", () => {
  it("updates every machine exactly once", () => {
    fc.assert(
      fc.property(poolArb, rolloutArb, (pool, rollout) => {
        const planned = planRollout(pool, rollout).flatMap((b) => b.machines);
        expect([...planned].sort()).toEqual(pool.map((m) => m.name).sort());
      }),
    );
  });

  it("never takes more than maxUnavailable machines at once after the canary, and only the last batch is short", () => {
    fc.assert(
      fc.property(poolArb, rolloutArb, (pool, rollout) => {
        const size = resolveMaxUnavailable(rollout.maxUnavailable, pool.length);
        const batches = planRollout(pool, rollout).filter((b) => b.kind === "batch");
        batches.forEach((b, i) => {
          expect(b.machines.length).toBeGreaterThanOrEqual(1);
          if (i < batches.length - 1) expect(b.machines.length).toBe(size);
          else expect(b.machines.length).toBeLessThanOrEqual(size);
        });
      }),
    );
  });

  it("puts the canary first, only matching machines, at most count of them", () => {
    fc.assert(
      fc.property(poolArb, rolloutArb, (pool, rollout) => {
        const batches = planRollout(pool, rollout);
        batches.slice(1).forEach((b) => expect(b.kind).toBe("batch"));
        const canary = batches[0].kind === "canary" ? batches[0].machines : [];
        const selector = rollout.canary?.selector;
        const matching = selector ? pool.filter((m) => m.labels.canary === "true").length : pool.length;
        if (rollout.canary) {
          expect(canary.length).toBe(Math.min(rollout.canary.count ?? (selector ? matching : 0), matching));
        } else {
          expect(canary).toEqual([]);
        }
        const labels = new Map(pool.map((m) => [m.name, m.labels]));
        if (selector) canary.forEach((name) => expect(labels.get(name)?.canary).toBe("true"));
      }),
    );
  });

  it("is deterministic: any order of the pool gives the same plan", () => {
    fc.assert(
      fc.property(poolArb, rolloutArb, fc.infiniteStream(fc.nat()), (pool, rollout, randoms) => {
        const shuffled = [...pool];
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = randoms.next().value % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
        }
        expect(planRollout(shuffled, rollout)).toEqual(planRollout(pool, rollout));
      }),
    );
  });

  it("numbers batches 0..n-1 in order", () => {
    fc.assert(
      fc.property(poolArb, rolloutArb, (pool, rollout) => {
        planRollout(pool, rollout).forEach((b, i) => expect(b.index).toBe(i));
      }),
    );
  });
});

describe("planRollout (examples)", () => {
  const pool = (n: number): PlannedMachine[] =>
    Array.from({ length: n }, (_, i) => ({ name: `w${String(i).padStart(2, "0")}`, labels: (i % 4 === 0 ? { canary: "true" } : {}) as Record<string, string> }));

  it("plans the design's example: canary of 2 by selector, then 10% batches", () => {
    const plan = planRollout(pool(20), { canary: { selector: { matchLabels: { canary: "true" } }, count: 2 }, maxUnavailable: "10%" });
    expect(plan[0]).toEqual({ index: 0, kind: "canary", machines: ["w00", "w04"] });
    expect(plan.slice(1).map((b) => b.machines.length)).toEqual([2, 2, 2, 2, 2, 2, 2, 2, 2]);
    expect(plan[1].machines).toEqual(["w01", "w02"]);
  });

  it("takes the first machines by name as canaries when only a count is given", () => {
    expect(planRollout(pool(3), { canary: { count: 1 } }).map((b) => b.machines)).toEqual([["w00"], ["w01"], ["w02"]]);
  });

  it("rounds a percentage down but never below one machine", () => {
    expect(resolveMaxUnavailable("10%", 5)).toBe(1);
    expect(resolveMaxUnavailable("50%", 5)).toBe(2);
    expect(resolveMaxUnavailable(undefined, 5)).toBe(1);
    expect(() => resolveMaxUnavailable("0%", 5)).toThrow(/at least 1/);
  });

  it("refuses a pool with a duplicate name", () => {
    expect(() => planRollout([{ name: "a" }, { name: "a" }])).toThrow(/appears twice/);
  });
});
