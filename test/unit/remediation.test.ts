import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { NodeView } from "../../src/controllers/machine/node-health";
import {
  DEFAULT_REMEDIATION_POLICY as POLICY,
  decideRemediation,
  duration,
  remediationPolicy,
  validateRemediationPolicy,
  type RemediationDecision,
  type RemediationInput,
} from "../../src/controllers/machine/remediation";

const MIN = 60_000;
const T0 = Date.parse("2026-03-01T12:00:00Z");
const at = (ms: number) => new Date(T0 + ms);
const notReady = (sinceMs: number, reason = "KubeletNotReady"): NodeView => ({ name: "worker-0001", ready: false, readySince: at(sinceMs), reason });
const input = (over: Partial<RemediationInput> = {}): RemediationInput => ({
  node: notReady(0),
  nodeExpected: true,
  status: {},
  cluster: { unhealthy: 1, total: 10 },
  now: at(0),
  policy: POLICY,
  ...over,
});
const repaired = (atMs: number, count: number, result: "running" | "succeeded" | "failed" = "succeeded") => ({
  remediationCount: count,
  lastRemediation: { at: at(atMs).toISOString(), reason: "earlier repair", result },
});

describe("decideRemediation: the cases", () => {
  it("leaves Ready nodes and machines not yet installed alone", () => {
    expect(decideRemediation(input({ node: { name: "worker-0001", ready: true, readySince: at(-MIN) } }))).toEqual({ action: "healthy" });
    expect(decideRemediation(input({ node: undefined, nodeExpected: false }))).toEqual({ action: "healthy" });
    // A Ready node is healthy even when the probe could not see its services, or the cluster is on fire.
    expect(decideRemediation(input({ node: { name: "w", ready: true }, services: { containerd: false, kubelet: false }, cluster: { unhealthy: 9, total: 10 } }))).toEqual({ action: "healthy" });
  });

  it("waits out the NotReady timeout, rechecking exactly when it ends", () => {
    expect(decideRemediation(input({ now: at(2 * MIN) }))).toEqual({
      action: "wait",
      recheckAfterMs: 3 * MIN,
      reason: "node worker-0001 has been NotReady (KubeletNotReady) for 2m; it is repaired once unhealthy for 5m",
    });
  });

  it("restarts the services first once the timeout has passed, saying what the probe saw", () => {
    expect(decideRemediation(input({ now: at(5 * MIN + 30_000), services: { containerd: true, kubelet: false } }))).toEqual({
      action: "restart-services",
      reason: "node worker-0001 has been NotReady (KubeletNotReady) for 5m30s; kubelet is not running on the host: restarting containerd and the kubelet (repair 1 of 3)",
      remediationCount: 1,
      // The Node exists: its Pods keep running through the restart.
      stopPods: false,
    });
  });

  it("reinstalls when the restart did not help, but not before the minimum period between repairs", () => {
    const status = repaired(5 * MIN, 1);
    const tooSoon = decideRemediation(input({ now: at(9 * MIN), status }));
    expect(tooSoon).toEqual({
      action: "wait",
      recheckAfterMs: 6 * MIN,
      reason: "node worker-0001 has been NotReady (KubeletNotReady) for 9m; the last repair was 4m ago and repairs are at least 10m apart",
    });
    expect(decideRemediation(input({ now: at(15 * MIN), status }))).toEqual({
      action: "reinstall",
      reason: "node worker-0001 has been NotReady (KubeletNotReady) for 15m, and the repair 10m ago (succeeded) did not help: reinstalling the machine (repair 2 of 3)",
      remediationCount: 2,
    });
  });

  it("treats a restarted kubelet's new NotReady transition as the same incident", () => {
    // The restart at 5m turned Unknown into False at 5m10s: a new transition, but no recovery.
    const decision = decideRemediation(input({ node: notReady(5 * MIN + 10_000), now: at(15 * MIN), status: repaired(5 * MIN, 1) }));
    expect(decision.action).toBe("reinstall");
  });

  it("starts a new incident with a restart when the failure began long after the last repair", () => {
    const decision = decideRemediation(input({ node: notReady(60 * MIN), now: at(66 * MIN), status: repaired(0, 3) }));
    expect(decision).toMatchObject({ action: "restart-services", remediationCount: 1 });
  });

  it("gives up after maxRemediations repairs of one incident", () => {
    const decision = decideRemediation(input({ now: at(40 * MIN), status: repaired(25 * MIN, 3, "failed") }));
    expect(decision).toEqual({
      action: "give-up",
      reason:
        "node worker-0001 has been NotReady (KubeletNotReady) for 40m, and 3 repairs did not bring it back (the limit is 3); it needs a person: check the host, then reset status.remediationCount or replace the machine",
    });
    expect(decideRemediation(input({ now: at(6 * MIN), policy: { ...POLICY, maxRemediations: 0 } }))).toMatchObject({ action: "give-up", reason: expect.stringContaining("automatic repair is off") });
  });

  it("short-circuits when more than the share of machines is unhealthy, but always repairs a lone one", () => {
    expect(decideRemediation(input({ now: at(6 * MIN), cluster: { unhealthy: 5, total: 10 } }))).toEqual({
      action: "short-circuit",
      reason:
        "node worker-0001 has been NotReady (KubeletNotReady) for 6m, but 5 of 10 machines of the cluster are unhealthy (more than 40%): that looks like an outage rather than a bad node, so nothing is repaired until fewer are",
    });
    expect(decideRemediation(input({ now: at(6 * MIN), cluster: { unhealthy: 4, total: 10 } })).action).toBe("restart-services");
    // One machine alone (100% of a one-machine cluster, 50% of two) is a bad node, not an outage.
    expect(decideRemediation(input({ now: at(6 * MIN), cluster: { unhealthy: 1, total: 1 } })).action).toBe("restart-services");
    expect(decideRemediation(input({ now: at(6 * MIN), cluster: { unhealthy: 1, total: 2 } })).action).toBe("restart-services");
    expect(decideRemediation(input({ now: at(6 * MIN), cluster: { unhealthy: 2, total: 2 } })).action).toBe("short-circuit");
  });

  it("times a missing Node from when the machine was first seen unhealthy", () => {
    const missing = input({ node: undefined, nodeName: "worker-0007", unhealthySince: at(0), now: at(MIN) });
    expect(decideRemediation(missing)).toEqual({
      action: "wait",
      recheckAfterMs: 4 * MIN,
      reason: "node worker-0007 has been missing from the business cluster for 1m; it is repaired once unhealthy for 5m",
    });
    // A deleted Node's Pods belong to no Node: they are ended before the kubelet registers again.
    expect(decideRemediation({ ...missing, now: at(5 * MIN) })).toMatchObject({
      action: "restart-services",
      stopPods: true,
      reason: expect.stringContaining("ending its Pods' containers and restarting containerd and the kubelet"),
    });
    // Without any time, it was just noticed: the whole timeout is ahead.
    expect(decideRemediation(input({ node: undefined, now: at(MIN) }))).toMatchObject({ action: "wait", recheckAfterMs: 5 * MIN });
    expect(decideRemediation(input({ node: { name: "new", ready: false }, now: at(MIN) }))).toMatchObject({
      action: "wait",
      reason: "node new has reported no Ready condition for 0ms; it is repaired once unhealthy for 5m",
    });
  });

  it("waits for a repair still running, and treats one running for too long as interrupted", () => {
    expect(decideRemediation(input({ now: at(8 * MIN), status: repaired(6 * MIN, 1, "running") }))).toEqual({
      action: "wait",
      recheckAfterMs: 8 * MIN,
      reason: "node worker-0001 has been NotReady (KubeletNotReady) for 8m; a repair started 2m ago is still running",
    });
    expect(decideRemediation(input({ now: at(17 * MIN), status: repaired(6 * MIN, 1, "running") })).action).toBe("reinstall");
  });
});

describe("decideRemediation: properties", () => {
  const policy = fc.record({
    notReadyTimeoutMs: fc.integer({ min: 1, max: 60 * MIN }),
    maxRemediations: fc.integer({ min: 0, max: 5 }),
    minHealthyPeriodMs: fc.integer({ min: 0, max: 60 * MIN }),
    maxUnhealthyShare: fc.double({ min: 0, max: 1, noNaN: true }),
  });
  const anyInput = fc
    .record({
      policy,
      ready: fc.boolean(),
      present: fc.boolean(),
      sinceMs: fc.option(fc.integer({ min: -120 * MIN, max: 0 }), { nil: undefined }),
      last: fc.option(fc.record({ atMs: fc.integer({ min: -120 * MIN, max: 0 }), count: fc.integer({ min: 0, max: 6 }), result: fc.constantFrom("running", "succeeded", "failed") as fc.Arbitrary<"running" | "succeeded" | "failed"> }), { nil: undefined }),
      total: fc.integer({ min: 1, max: 50 }),
      unhealthyShare: fc.double({ min: 0, max: 1, noNaN: true }),
      services: fc.option(fc.record({ containerd: fc.boolean(), kubelet: fc.boolean() }), { nil: undefined }),
    })
    .map((g): RemediationInput => ({
      node: g.present ? { name: "worker-0001", ready: g.ready, readySince: g.sinceMs === undefined ? undefined : at(g.sinceMs) } : undefined,
      nodeExpected: true,
      services: g.services,
      status: g.last ? repaired(g.last.atMs, g.last.count, g.last.result) : {},
      cluster: { unhealthy: Math.max(1, Math.round(g.unhealthyShare * g.total)), total: g.total },
      now: at(0),
      policy: g.policy,
      unhealthySince: g.present ? undefined : g.sinceMs === undefined ? undefined : at(g.sinceMs),
      nodeName: "worker-0001",
    }));
  const isRepair = (d: RemediationDecision) => d.action === "restart-services" || d.action === "reinstall";
  const unhealthyFor = (i: RemediationInput) => i.now.getTime() - (i.node?.readySince ?? i.unhealthySince ?? i.now).getTime();
  const lastAt = (i: RemediationInput) => (i.status.lastRemediation ? Date.parse(i.status.lastRemediation.at) : undefined);

  it("never repairs before the timeout, nor sooner than minHealthyPeriod after a repair, nor in an outage", () => {
    fc.assert(
      fc.property(anyInput, (i) => {
        const d = decideRemediation(i);
        if (i.node?.ready) {
          expect(d).toEqual({ action: "healthy" });
          return;
        }
        expect(d.action).not.toBe("healthy");
        if (!isRepair(d)) return;
        expect(unhealthyFor(i)).toBeGreaterThanOrEqual(i.policy.notReadyTimeoutMs);
        const last = lastAt(i);
        if (last !== undefined) expect(i.now.getTime() - last).toBeGreaterThanOrEqual(i.policy.minHealthyPeriodMs);
        const { unhealthy, total } = i.cluster;
        expect(unhealthy > 1 && unhealthy / total > i.policy.maxUnhealthyShare).toBe(false);
        expect((d as { remediationCount: number }).remediationCount).toBeLessThanOrEqual(i.policy.maxRemediations);
        expect(d.reason).toContain("worker-0001");
      }),
      { numRuns: 2000 },
    );
  });

  it("waits a positive time, never longer than the timeout or the period between repairs", () => {
    fc.assert(
      fc.property(anyInput, (i) => {
        const d = decideRemediation(i);
        if (d.action !== "wait") return;
        expect(d.recheckAfterMs).toBeGreaterThan(0);
        expect(d.recheckAfterMs).toBeLessThanOrEqual(Math.max(i.policy.notReadyTimeoutMs, i.policy.minHealthyPeriodMs, 1));
      }),
      { numRuns: 2000 },
    );
  });

  it("a node that never recovers is restarted, reinstalled until the limit, then given up, each step when the last wait ends", () => {
    fc.assert(
      fc.property(policy, (p) => {
        let now = 0;
        let status: RemediationInput["status"] = {};
        const actions: string[] = [];
        for (let step = 0; step < 20; step++) {
          const d = decideRemediation(input({ node: notReady(0), now: at(now), status, policy: p }));
          if (d.action === "wait") {
            now += d.recheckAfterMs;
            continue;
          }
          actions.push(d.action);
          if (d.action === "give-up") break;
          expect(isRepair(d)).toBe(true);
          status = repaired(now, (d as { remediationCount: number }).remediationCount, "succeeded");
        }
        const repairs = Array.from({ length: p.maxRemediations }, (_, k) => (k === 0 ? "restart-services" : "reinstall"));
        expect(actions).toEqual([...repairs, "give-up"]);
      }),
      { numRuns: 300 },
    );
  });
});

describe("policy", () => {
  it("lists every problem, naming the field", () => {
    expect(validateRemediationPolicy({})).toEqual([]);
    expect(validateRemediationPolicy(POLICY)).toEqual([]);
    expect(validateRemediationPolicy({ notReadyTimeoutMs: 0, maxRemediations: 1.5, minHealthyPeriodMs: Number.NaN, maxUnhealthyShare: 1.2, bogus: 1 } as never)).toEqual([
      "notReadyTimeoutMs: must be a positive number of milliseconds, got 0",
      "maxRemediations: must be a whole number, 0 or more (0 turns repair off), got 1.5",
      "minHealthyPeriodMs: must be a number of milliseconds, 0 or more, got null",
      "maxUnhealthyShare: must be a share between 0 and 1 (0.4 = 40%), got 1.2",
      "bogus: unknown field; the policy has notReadyTimeoutMs, maxRemediations, minHealthyPeriodMs, maxUnhealthyShare",
    ]);
  });

  it("fills in the defaults and throws one error for a bad policy", () => {
    expect(POLICY).toEqual({ notReadyTimeoutMs: 300_000, maxRemediations: 3, minHealthyPeriodMs: 600_000, maxUnhealthyShare: 0.4 });
    expect(remediationPolicy({ maxRemediations: 5, notReadyTimeoutMs: undefined })).toEqual({ ...POLICY, maxRemediations: 5 });
    expect(() => remediationPolicy({ maxUnhealthyShare: -1, notReadyTimeoutMs: -1 })).toThrow(/^invalid remediation policy: notReadyTimeoutMs: .*; maxUnhealthyShare: /);
  });

  it("formats durations for people", () => {
    expect([0, 450, 1000, 45_000, 270_000, 300_000, 3_600_000, 3_900_000, 3_661_000].map(duration)).toEqual(["0ms", "450ms", "1s", "45s", "4m30s", "5m", "1h", "1h5m", "1h1m1s"]);
  });
});
