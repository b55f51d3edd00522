import { describe, expect, it } from "vitest";
import { formatTime, getCondition, isTrue, removeCondition, setCondition, statusPatch } from "../../src/runtime/conditions";

const T0 = Date.parse("2026-11-25T10:00:00Z");
const ready = { type: "Ready", reason: "Provisioned", message: "control plane answers", observedGeneration: 3 } as const;

describe("conditions", () => {
  it("adds a new condition with the transition time now", () => {
    const list = setCondition(undefined, { ...ready, status: "True" }, T0 + 123);
    expect(list).toEqual([{ ...ready, status: "True", lastTransitionTime: "2026-11-25T10:00:00Z" }]);
  });

  it("keeps lastTransitionTime when only reason, message or generation change", () => {
    const first = setCondition([], { ...ready, status: "True" }, T0);
    const second = setCondition(first, { ...ready, status: "True", reason: "Upgraded", message: "now 1.36", observedGeneration: 4 }, T0 + 60_000);
    expect(second[0]).toMatchObject({ reason: "Upgraded", message: "now 1.36", observedGeneration: 4, lastTransitionTime: "2026-11-25T10:00:00Z" });
  });

  it("moves lastTransitionTime when the status flips", () => {
    const first = setCondition([], { ...ready, status: "True" }, T0);
    const second = setCondition(first, { ...ready, status: "False", reason: "ApiserverDown" }, T0 + 60_000);
    expect(second[0]!.lastTransitionTime).toBe("2026-11-25T10:01:00Z");
  });

  it("replaces in place, keeps other conditions and does not mutate its input", () => {
    const base = setCondition(setCondition([], { ...ready, status: "True" }, T0), { type: "Drifted", status: "False", reason: "NoDrift", message: "" }, T0);
    const frozen = JSON.stringify(base);
    const next = setCondition(base, { ...ready, status: "False", reason: "X" }, T0 + 1000);
    expect(JSON.stringify(base)).toBe(frozen);
    expect(next.map((c) => c.type)).toEqual(["Ready", "Drifted"]);
    expect(isTrue(next, "Ready")).toBe(false);
    expect(isTrue(base, "Ready")).toBe(true);
    expect(getCondition(next, "Drifted")?.reason).toBe("NoDrift");
    expect(getCondition(next, "Missing")).toBeUndefined();
    expect(removeCondition(next, "Drifted").map((c) => c.type)).toEqual(["Ready"]);
  });

  it("formats times at seconds precision as the apiserver stores them", () => {
    expect(formatTime(Date.parse("2026-01-02T03:04:05.999Z"))).toBe("2026-01-02T03:04:05Z");
  });
});

describe("statusPatch", () => {
  interface S { phase?: string; version?: string; conditions?: ReturnType<typeof setCondition> }
  const t0 = Date.parse("2026-12-05T10:00:00Z");

  it("sets fields and conditions at the generation, over whatever status is stored", () => {
    const patch = statusPatch<S>({ phase: "Ready" }, [{ type: "Ready", status: "True", reason: "Applied", message: "ok" }], 3, t0);
    // A newer stored copy (another write landed first): its fields this patch does not set survive.
    const stored: S = { phase: "Provisioning", version: "v1.36.3", conditions: [] };
    const next = patch(stored);
    expect(next.phase).toBe("Ready");
    expect(next.version).toBe("v1.36.3");
    expect(next.conditions).toEqual([{ type: "Ready", status: "True", reason: "Applied", message: "ok", observedGeneration: 3, lastTransitionTime: "2026-12-05T10:00:00Z" }]);
    expect(stored.conditions).toEqual([]);
  });

  it("keeps a condition's transition time when its status does not change", () => {
    const first = statusPatch<S>({}, [{ type: "Ready", status: "False", reason: "A", message: "a" }], 1, t0)(undefined);
    const later = statusPatch<S>({}, [{ type: "Ready", status: "False", reason: "B", message: "b" }], 2, t0 + 60_000)(first);
    expect(later.conditions?.[0]).toMatchObject({ reason: "B", observedGeneration: 2, lastTransitionTime: "2026-12-05T10:00:00Z" });
  });
});
