/**
 * The etcd membership state machine (src/controllers/cluster/etcd-membership.ts), alone and driven
 * against a model of etcd and the StatefulSet: from any member count to any other, with the
 * operator killed at any point (a Job never created, an `up` half done, a result never recorded
 * and the step repeated from the stale status), it reaches the spec's count, and on the way never
 * leaves a voter without its Pod, never runs two learners, never loses quorum, and a learner only
 * starts when the ConfigMap lists exactly the membership it joins (etcd's own check).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { EtcdMemberRecord } from "../../src/api/v1alpha1";
import { lostMembers, memberName, memberOrdinal, nextMembershipStep, recordMembers, renderOf, type MembershipInput } from "../../src/controllers/cluster/etcd-membership";

const C = "ops";
const rec = (ordinal: number, o: Partial<EtcdMemberRecord> = {}): EtcdMemberRecord => ({ name: memberName(C, ordinal), id: `a${ordinal}`, learner: false, started: true, healthy: true, volumeUid: `v${ordinal}`, ...o });
const input = (o: Partial<MembershipInput>): MembershipInput => ({ cluster: C, desired: 3, members: [rec(0), rec(1), rec(2)], rendered: { replicas: 3, configMembers: 3, state: "existing" }, volumes: { "ops-etcd-0": "v0", "ops-etcd-1": "v1", "ops-etcd-2": "v2" }, ...o });

describe("nextMembershipStep", () => {
  it("observes first, then has the stack render the observed members as an existing cluster", () => {
    expect(nextMembershipStep(input({ members: undefined })).kind).toBe("observe");
    const step = nextMembershipStep(input({ members: [rec(0)], desired: 1, rendered: { replicas: 1, configMembers: 1, state: "new" } }));
    expect(step).toMatchObject({ kind: "apply", render: { members: 1, state: "existing" } });
  });

  it("is stable at the spec's count with every member a healthy voter", () => {
    expect(nextMembershipStep(input({}))).toMatchObject({ kind: "stable", reason: "Stable" });
  });

  it("scales up by one learner at a time: add, then the Pod, then promote once started", () => {
    const one = { members: [rec(0)], rendered: { replicas: 1, configMembers: 1, state: "existing" }, desired: 3 };
    expect(nextMembershipStep(input(one))).toMatchObject({ kind: "add", member: "ops-etcd-1", reason: "Scaling" });
    const learner = [rec(0), rec(1, { learner: true, started: false, healthy: false, volumeUid: undefined })];
    expect(nextMembershipStep(input({ ...one, members: learner }))).toMatchObject({ kind: "apply", render: { members: 2 } });
    expect(nextMembershipStep(input({ ...one, members: learner, rendered: { replicas: 2, configMembers: 2, state: "existing" } }))).toMatchObject({ kind: "observe" });
    learner[1] = { ...learner[1], started: true };
    expect(nextMembershipStep(input({ ...one, members: learner, rendered: { replicas: 2, configMembers: 2, state: "existing" } }))).toMatchObject({ kind: "promote", member: "ops-etcd-1" });
  });

  it("scales down by removing the highest member first, then the StatefulSet follows", () => {
    expect(nextMembershipStep(input({ desired: 1 }))).toMatchObject({ kind: "remove", member: "ops-etcd-2", reason: "Scaling" });
    expect(nextMembershipStep(input({ desired: 1, members: [rec(0), rec(1)] }))).toMatchObject({ kind: "apply", render: { members: 2 } });
  });

  it("replaces a member whose volume uid changed, only when every other member is healthy", () => {
    const lost = { volumes: { "ops-etcd-0": "v0", "ops-etcd-1": "new", "ops-etcd-2": "v2" } };
    expect(nextMembershipStep(input(lost))).toMatchObject({ kind: "remove", member: "ops-etcd-1", reason: "Replacing" });
    // The lost member itself may look healthy (it rejoined empty): still replaced.
    expect(nextMembershipStep(input({ ...lost, members: [rec(0), rec(1, { healthy: false }), rec(2)] }))).toMatchObject({ kind: "remove" });
    // After the removal the gap is filled at the same ordinal, as a learner.
    expect(nextMembershipStep(input({ ...lost, members: [rec(0), rec(2)] }))).toMatchObject({ kind: "add", member: "ops-etcd-1", reason: "Replacing" });
  });

  it("does nothing but tell when more than one member is lost or unhealthy: a quorum incident", () => {
    const twoLost = nextMembershipStep(input({ volumes: { "ops-etcd-0": "x", "ops-etcd-1": "y", "ops-etcd-2": "v2" } }));
    expect(twoLost).toMatchObject({ kind: "incident", reason: "QuorumAtRisk" });
    const lostAndSick = nextMembershipStep(input({ volumes: { "ops-etcd-0": "v0", "ops-etcd-1": "y", "ops-etcd-2": "v2" }, members: [rec(0), rec(1), rec(2, { healthy: false })] }));
    expect(lostAndSick).toMatchObject({ kind: "incident" });
    expect(nextMembershipStep(input({ members: [rec(0, { healthy: false }), rec(1, { healthy: false }), rec(2)] }))).toMatchObject({ kind: "incident" });
    // The only member lost: nothing to copy from.
    expect(nextMembershipStep(input({ desired: 1, members: [rec(0)], rendered: { replicas: 1, configMembers: 1, state: "existing" }, volumes: { "ops-etcd-0": "z" } }))).toMatchObject({ kind: "incident" });
    // One unhealthy member: no change until it is looked at again.
    expect(nextMembershipStep(input({ desired: 1, members: [rec(0), rec(1), rec(2, { healthy: false })] }))).toMatchObject({ kind: "observe" });
  });

  it("names members by ordinal and refuses names that are not the cluster's", () => {
    expect(memberOrdinal(C, "ops-etcd-6")).toBe(6);
    for (const bad of ["ops-etcd-", "ops-etcd-01", "other-etcd-1", "ops-etcd-1x", "ops-etcd-100"]) expect(memberOrdinal(C, bad)).toBeUndefined();
    expect(renderOf(C, [{ name: "ops-etcd-0" }, { name: "ops-etcd-2" }])).toEqual({ members: 3, state: "existing" });
  });

  it("records a volume uid only for a healthy voter, and forgets it when the member's ID changes", () => {
    const observed = [
      { name: "ops-etcd-0", id: "a0", learner: false, started: true, healthy: true },
      { name: "ops-etcd-1", id: "b1", learner: false, started: true, healthy: true },
      { name: "ops-etcd-2", id: "a2", learner: true, started: true, healthy: true },
    ];
    const recorded = recordMembers(observed, [rec(0), rec(1)], { "ops-etcd-0": "now0", "ops-etcd-1": "now1", "ops-etcd-2": "now2" });
    expect(recorded.map((m) => m.volumeUid)).toEqual(["v0", "now1", undefined]);
    expect(lostMembers(recorded, { "ops-etcd-0": "v0", "ops-etcd-1": undefined })).toEqual([]);
  });
});

/** etcd, the StatefulSet, the ConfigMap and the volumes, as the operator's steps change them. */
interface World {
  members: { ordinal: number; id: number; learner: boolean; started: boolean }[];
  replicas: number;
  config: { members: number; state: string };
  volumes: Record<number, number>;
  nextId: number;
  nextVolume: number;
}

function newWorld(count: number): World {
  const members = Array.from({ length: count }, (_, ordinal) => ({ ordinal, id: ordinal + 1, learner: false, started: true }));
  return { members, replicas: count, config: { members: count, state: "new" }, volumes: Object.fromEntries(members.map((m) => [m.ordinal, m.ordinal + 100])), nextId: count + 1, nextVolume: 1000 };
}

/** Pods run ordinals below replicas; a learner starts once its Pod runs and etcd's check of the ConfigMap passes. */
function settle(w: World): void {
  const expected = Math.max(...w.members.map((m) => m.ordinal)) + 1;
  for (const m of w.members) {
    if (!m.started && m.ordinal < w.replicas && w.config.state === "existing" && w.config.members === expected) m.started = true;
  }
}

function observe(w: World) {
  return [...w.members]
    .sort((a, b) => a.ordinal - b.ordinal)
    .map((m) => ({ name: memberName(C, m.ordinal), id: m.id.toString(16), learner: m.learner, started: m.started, healthy: m.started && m.ordinal < w.replicas }));
}

function volumesOf(w: World): Record<string, string> {
  return Object.fromEntries(Object.entries(w.volumes).filter(([o]) => Number(o) < w.replicas).map(([o, v]) => [memberName(C, Number(o)), `u${v}`]));
}

function checkInvariants(w: World): void {
  const voters = w.members.filter((m) => !m.learner);
  // Every voter has its Pod: no step takes a voter's Pod away before etcd forgot the voter.
  expect(voters.every((m) => m.ordinal < w.replicas)).toBe(true);
  expect(w.members.filter((m) => m.learner).length).toBeLessThanOrEqual(1);
  const running = voters.filter((m) => m.started && m.ordinal < w.replicas).length;
  expect(running).toBeGreaterThan(voters.length / 2);
}

type Kill = "none" | "before-step" | "half-apply" | "lose-result";

/** Runs the operator until stable; `kills` says, step by step, where it dies. Returns the steps taken. */
function drive(w: World, desired: number, kills: Kill[], op: { status?: EtcdMemberRecord[] } = {}, loseVolumeAt?: number): number {
  let status = op.status;
  for (let i = 0; i < 200; i++) {
    if (loseVolumeAt === i && w.members.length >= 3) {
      // A member's volume is replaced by an empty one: it starts again on it (as etcd would, as the same member).
      const victim = w.members.find((m) => m.ordinal === 1 && !m.learner);
      if (victim) w.volumes[1] = w.nextVolume++;
    }
    settle(w);
    // Killed at the first steps as planned; an operator that never survives a step never finishes.
    const kill = kills[i] ?? "none";
    const step = nextMembershipStep({
      cluster: C,
      desired,
      members: status,
      rendered: { replicas: w.replicas, configMembers: w.config.members, state: w.config.state },
      volumes: volumesOf(w),
    });
    op.status = status;
    if (step.kind === "stable") return i;
    if (step.kind === "incident") throw new Error(`incident: ${step.message}`);
    if (kill === "before-step") continue;
    if (step.kind === "apply") {
      w.replicas = step.render.members;
      if (kill !== "half-apply") w.config = { ...step.render };
      checkInvariants(w);
      continue;
    }
    const target = "member" in step ? memberOrdinal(C, step.member)! : -1;
    const existing = w.members.find((m) => m.ordinal === target);
    let wiped = false;
    if (step.kind === "add" && !existing && !w.members.some((m) => m.learner)) {
      w.members.push({ ordinal: target, id: w.nextId++, learner: true, started: false });
    } else if (step.kind === "promote" && existing?.learner && existing.started) {
      existing.learner = false;
    } else if (step.kind === "remove" && existing) {
      const others = w.members.filter((m) => m !== existing && !m.learner);
      if (others.every((m) => m.started && m.ordinal < w.replicas)) {
        w.members = w.members.filter((m) => m !== existing);
        // A lost member's data goes with it (the check deletes its Pod and PVC).
        if (status?.some((m) => m.name === step.member && m.volumeUid !== undefined && volumesOf(w)[m.name] !== m.volumeUid)) {
          w.volumes[target] = w.nextVolume++;
          wiped = true;
        }
      }
    }
    checkInvariants(w);
    // Killed before the result was recorded: the next pass decides again from the old status.
    if (kill === "lose-result" && !wiped) continue;
    settle(w);
    status = recordMembers(observe(w), status, volumesOf(w));
    op.status = status;
  }
  throw new Error("no stable membership after 200 steps");
}

describe("the membership state machine against a model of etcd", () => {
  const counts = fc.constantFrom(1, 3, 5, 7);
  const kills = fc.array(fc.constantFrom<Kill>("none", "none", "before-step", "half-apply", "lose-result"), { minLength: 1, maxLength: 12 });

  it("reaches any member count from any other, killed anywhere, without losing quorum", () => {
    fc.assert(
      fc.property(counts, counts, kills, (from, to, plan) => {
        const w = newWorld(from);
        drive(w, to, plan);
        expect(w.members.filter((m) => !m.learner).map((m) => m.ordinal).sort()).toEqual(Array.from({ length: to }, (_, i) => i));
        expect(w.replicas).toBe(to);
        expect(w.config).toEqual({ members: to, state: "existing" });
      }),
      { numRuns: 300 },
    );
  });

  it("replaces a member whose volume was lost, killed anywhere, and ends with a new member at that ordinal", () => {
    fc.assert(
      fc.property(fc.constantFrom(3, 5, 7), kills, (count, plan) => {
        const w = newWorld(count);
        const op = {};
        drive(w, count, ["none"], op);
        const before = w.members.find((m) => m.ordinal === 1)!.id;
        drive(w, count, plan, op, 0);
        expect(w.members.find((m) => m.ordinal === 1)!.id).not.toBe(before);
        expect(w.members.every((m) => !m.learner && m.started)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe("the Cluster CRD", () => {
  it("lets spec.etcd.replicas change among odd counts up to 7, and records the observed members in status", async () => {
    const { allCustomResourceDefinitions } = await import("../../src/api/v1alpha1/crds");
    type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const cluster = (allCustomResourceDefinitions() as Json[]).find((c) => c.spec.names.kind === "Cluster")!.spec.versions[0].schema.openAPIV3Schema as Json;
    const replicas = cluster.properties.spec.properties.etcd.properties.replicas;
    const rules = (replicas["x-kubernetes-validations"] as { rule: string }[]).map((r) => r.rule);
    expect(rules).toEqual(["self % 2 == 1"]);
    expect(replicas.maximum).toBe(7);
    const member = cluster.properties.status.properties.etcd.properties.memberList.items;
    expect(Object.keys(member.properties).sort()).toEqual(["healthy", "id", "learner", "name", "started", "volumeUid"]);
    expect(member.properties.id.pattern).toBe("^[0-9a-f]{1,16}$");
  });
});
