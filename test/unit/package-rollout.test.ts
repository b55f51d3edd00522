/**
 * The gray release of a ClusterPackageVersion, step by step on an in-memory fleet: what each
 * Machine is told to run (desiredPackages) and what each CPV reconcile decides (rolloutStep).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { RolloutSpec } from "../../src/api/v1alpha1";
import { planRollout, resolveMaxUnavailable } from "../../src/components/rollout-plan";
import { desiredPackages, RESUME_ANNOTATION, ROLLED_BACK_FROM_ANNOTATION } from "../../src/controllers/packageversion/rollout";
import { PACKAGES_ADMITTED_AT_ANNOTATION, PACKAGES_REVISION_ANNOTATION } from "../../src/controllers/packageversion/revision";
import { cpvOf, host, P0, P1, P2, R0, R1, R2, START, steadyAt, World } from "../support/rollout-world";

const names = (n: number, prefix = "w") => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(2, "0")}`);
const fleet = (n: number, revision = R0) => names(n).map((name) => host(name, revision));
const canary = { selector: { matchLabels: { canary: "true" } }, count: 1 };

describe("desiredPackages", () => {
  const rollingOut = cpvOf({ packages: P1 }, { revision: R1, currentRevision: R0, currentPackages: P0 });

  it("gives a Machine its explicit packages, whatever the CPV says", () => {
    const m = { ...host("w00", R0), spec: { packages: P2 } };
    expect(desiredPackages(m, rollingOut)).toMatchObject({ packages: P2, revision: R2 });
  });

  it("gives the new catalog to an admitted machine and the current one to a machine waiting for its batch", () => {
    const admitted = host("w00", R0);
    admitted.metadata.annotations = { [PACKAGES_REVISION_ANNOTATION]: R1 };
    expect(desiredPackages(admitted, rollingOut)).toMatchObject({ packages: P1, revision: R1 });
    expect(desiredPackages(host("w01", R0), rollingOut)).toMatchObject({ packages: P0, revision: R0, reason: expect.stringContaining("waits for its batch") });
  });

  it("puts a machine annotated with the current revision back on the current catalog (a rollback)", () => {
    const m = host("w00", R1);
    m.metadata.annotations = { [PACKAGES_REVISION_ANNOTATION]: R0 };
    expect(desiredPackages(m, rollingOut)).toMatchObject({ packages: P0, revision: R0 });
  });

  it("gives a never-installed machine the newest catalog mid-rollout, and keeps it there once installed", () => {
    expect(desiredPackages(host("new"), rollingOut)).toMatchObject({ packages: P1, revision: R1 });
    // Without the "runs rev" rule it would flip back to P0 on its next reconcile.
    expect(desiredPackages(host("new", R1), rollingOut)).toMatchObject({ packages: P1, revision: R1 });
  });

  it("holds a machine that runs a catalog this CPV is not rolling out, until it is admitted", () => {
    expect(desiredPackages(host("switched", R2), rollingOut)).toEqual({ packages: undefined, revision: R2, reason: expect.stringContaining(`runs catalog ${R2}`) });
    expect(desiredPackages(host("w00", R0), undefined)).toMatchObject({ packages: undefined, revision: R0 });
    // No CPV status yet (never reconciled): hold too, rather than upgrade everything at once.
    expect(desiredPackages(host("w00", R0), cpvOf({ packages: P1 }))).toMatchObject({ packages: undefined });
  });

  it("gives the new catalog to everyone once the rollout is complete", () => {
    const complete = cpvOf({ packages: P1 }, { revision: R1, currentRevision: R1, currentPackages: P1 });
    expect(desiredPackages(host("w00", R1), complete)).toMatchObject({ packages: P1, revision: R1 });
  });
});

describe("rolloutStep: first catalog", () => {
  it("needs no admission for new hosts: Pending while they install, Complete once they run it and are Ready", () => {
    const w = new World(cpvOf({ packages: P1 }), [host("a"), host("b")]);
    let d = w.step();
    expect(d.writes).toEqual([]);
    expect(d.status).toMatchObject({ phase: "Pending", revision: R1, currentRevision: R1, currentPackages: P1, updated: 0, ready: 0, total: 2 });
    w.install("a");
    expect(w.step().status).toMatchObject({ phase: "Pending", updated: 1, ready: 1, total: 2 });
    w.install("b");
    d = w.step();
    expect(d.status).toMatchObject({ phase: "Complete", updated: 2, ready: 2, total: 2 });
    expect(d.status.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "True", observedGeneration: 1 });
  });

  it("gray-releases hosts that already run another catalog (switched from explicit packages)", () => {
    const w = new World(cpvOf({ packages: P1, rollout: { maxUnavailable: 1 } }), [host("a", R2), host("b", R2), host("c")]);
    const d = w.step();
    expect(d.writes.map((x) => x.machine)).toEqual(["a"]);
    expect(d.status).toMatchObject({ phase: "RollingOut", currentBatch: 0 });
    expect(d.status.currentRevision).toBeUndefined();
    expect(w.desired("b").packages).toBeUndefined();
    expect(w.desired("c").packages).toEqual(P1);
  });
});

describe("rolloutStep: a new catalog", () => {
  it("admits the canary first, then each batch once the previous one runs the catalog and is Ready", () => {
    const machines = fleet(5);
    machines[3].spec.labels = { canary: "true" };
    const w = new World(steadyAt(P1, { canary, maxUnavailable: 2 }), machines);
    let d = w.step();
    expect(d.writes).toEqual([{ kind: "admit", machine: "w03", revision: R1, admittedAt: new Date(START).toISOString() }]);
    expect(d.events.map((e) => e.reason)).toEqual(["RolloutStarted", "BatchAdmitted"]);
    expect(d.status).toMatchObject({ phase: "RollingOut", currentBatch: 0, currentRevision: R0, updated: 0, total: 5 });
    expect(w.converge()).toEqual(["w03"]);

    expect(w.step().writes.map((x) => x.machine)).toEqual(["w00", "w01"]);
    w.install("w00");
    d = w.step();
    expect(d.writes).toEqual([]);
    expect(d.status).toMatchObject({ currentBatch: 1, updated: 2, ready: 2 });
    w.install("w01");
    expect(w.step().writes.map((x) => x.machine)).toEqual(["w02", "w04"]);
    w.converge();
    d = w.step();
    expect(d.status).toMatchObject({ phase: "Complete", currentRevision: R1, currentPackages: P1, updated: 5, ready: 5, total: 5 });
    expect(d.status.currentBatch).toBeUndefined();
    expect(d.events.map((e) => e.reason)).toEqual(["RolloutComplete"]);
    expect(w.step().events).toEqual([]);
  });

  it("sizes batches from a maxUnavailable percentage of the pool, rounded down, at least one", () => {
    expect(new World(steadyAt(P1, { maxUnavailable: "30%" }), fleet(10)).step().writes).toHaveLength(3);
    expect(new World(steadyAt(P1, { maxUnavailable: "5%" }), fleet(10)).step().writes).toHaveLength(1);
    expect(new World(steadyAt(P1, { maxUnavailable: "100%" }), fleet(10)).step().writes).toHaveLength(10);
  });

  it("pauses after the canary until the resume annotation names this revision (or says true)", () => {
    const machines = fleet(3);
    machines[0].spec.labels = { canary: "true" };
    const w = new World(steadyAt(P1, { canary, pauseAfterCanary: true }), machines);
    w.step();
    w.install("w00");
    let d = w.step();
    expect(d.writes).toEqual([]);
    expect(d.status.phase).toBe("Paused");
    expect(d.status.conditions?.find((c) => c.type === "Progressing")).toMatchObject({ reason: "PausedAfterCanary", message: expect.stringContaining(`${RESUME_ANNOTATION}=${R1}`) });
    expect(d.events.map((e) => e.reason)).toEqual(["RolloutPaused"]);
    expect(w.step().events).toEqual([]);

    w.cpv.metadata.annotations = { [RESUME_ANNOTATION]: R0 };
    expect(w.step().status.phase).toBe("Paused");
    w.cpv.metadata.annotations = { [RESUME_ANNOTATION]: R1 };
    d = w.step();
    expect(d.status.phase).toBe("RollingOut");
    expect(d.writes.map((x) => x.machine)).toEqual(["w01"]);
    expect(d.events.map((e) => e.reason)).toContain("RolloutResumed");
  });

  it("pauses rather than roll out without a canary when the canary selector matches nothing", () => {
    const w = new World(steadyAt(P1, { canary }), fleet(3));
    const d = w.step();
    expect(d.writes).toEqual([]);
    expect(d.status.conditions?.find((c) => c.type === "Progressing")?.reason).toBe("CanaryNotFound");
    w.cpv.metadata.annotations = { [RESUME_ANNOTATION]: "true" };
    expect(w.step().writes.map((x) => x.machine)).toEqual(["w00"]);
  });
});

describe("rolloutStep: failures", () => {
  function canaryFleet(rollout = {}) {
    const machines = fleet(4);
    machines[0].spec.labels = { canary: "true" };
    return new World(steadyAt(P1, { canary, maxUnavailable: 2, ...rollout }), machines);
  }

  it("halts on a failed canary, names it and why, and touches no other machine", () => {
    const w = canaryFleet();
    w.step();
    w.fail("w00");
    let d = w.step();
    expect(d.status).toMatchObject({ phase: "Halted", failedMachines: ["w00"], currentBatch: 0, currentRevision: R0 });
    expect(d.writes).toEqual([]);
    const event = d.events.find((e) => e.reason === "RolloutHalted")!;
    expect(event.type).toBe("Warning");
    expect(event.message).toMatch(/w00: install of \w+ failed: sha256 mismatch/);
    expect(d.status.conditions?.find((c) => c.type === "Degraded")).toMatchObject({ status: "True", reason: "MachinesFailed" });
    d = w.step();
    expect(d.writes).toEqual([]);
    expect(d.events).toEqual([]);
    expect(w.admitted(R1)).toEqual(["w00"]);
    expect(["w01", "w02", "w03"].map((n) => w.desired(n).packages)).toEqual([P0, P0, P0]);

    // The user fixes the host; the Machine reconciler's retry succeeds; the rollout goes on.
    w.install("w00");
    d = w.step();
    expect(d.status.phase).toBe("RollingOut");
    expect(d.writes.map((x) => x.machine)).toEqual(["w01", "w02"]);
    expect(d.events.map((e) => e.reason)).toContain("RolloutResumed");
  });

  it("with rollbackOnFailure puts only the failed machines back on the current catalog, once", () => {
    const w = canaryFleet({ rollbackOnFailure: true });
    w.step();
    w.install("w00");
    w.step();
    w.fail("w01");
    let d = w.step();
    expect(d.status.phase).toBe("Halted");
    expect(d.writes).toEqual([{ kind: "rollback", machine: "w01", revision: R0, from: R1, at: new Date(START).toISOString() }]);
    expect(d.events.find((e) => e.reason === "RolloutHalted")?.message).toContain(`Rolling back w01 to ${R0}`);
    expect(w.get("w01").metadata.annotations).toMatchObject({ [PACKAGES_REVISION_ANNOTATION]: R0, [ROLLED_BACK_FROM_ANNOTATION]: R1 });
    expect(w.desired("w01").packages).toEqual(P0);
    expect(w.desired("w02").packages).toEqual(P1);

    // Healthy again on the old catalog, but still failed for this revision: no retry loop.
    w.install("w01");
    w.install("w02");
    d = w.step();
    expect(d.writes).toEqual([]);
    expect(d.status).toMatchObject({ phase: "Halted", failedMachines: ["w01"] });
    expect(w.get("w03").metadata.annotations).toBeUndefined();

    // Removing the marker is how a user asks for that machine to be tried again.
    delete w.get("w01").metadata.annotations![ROLLED_BACK_FROM_ANNOTATION];
    d = w.step();
    expect(d.status.phase).toBe("RollingOut");
    expect(d.writes.map((x) => x.machine)).toEqual(["w01"]);
  });

  it("counts a machine that is not Ready within the health gate as failed (injected clock)", () => {
    const w = canaryFleet({ healthGate: { readyTimeoutSeconds: 120 } });
    expect(w.step().requeueAfterMs).toBe(30_000);
    w.now += 100_000;
    let d = w.step();
    expect(d.status.phase).toBe("RollingOut");
    expect(d.requeueAfterMs).toBe(20_000);
    w.now += 20_000;
    d = w.step();
    expect(d.status).toMatchObject({ phase: "Halted", failedMachines: ["w00"] });
    expect(d.events[0].message).toContain("w00: does not run");
    expect(d.events[0].message).toContain("120s after admission (phase Ready; health gate 120s)");
    expect(d.requeueAfterMs).toBeUndefined();
  });

  it("with haltOnFailure false goes on past failed machines and lists them, but does not call it complete", () => {
    const w = canaryFleet({ haltOnFailure: false });
    w.step();
    w.fail("w00");
    let d = w.step();
    expect(d.status).toMatchObject({ phase: "RollingOut", failedMachines: ["w00"] });
    expect(d.writes.map((x) => x.machine)).toEqual(["w01", "w02"]);
    expect(d.events.find((e) => e.reason === "MachinesFailed")?.type).toBe("Warning");
    for (const n of ["w01", "w02"]) w.install(n);
    expect(w.step().writes.map((x) => x.machine)).toEqual(["w03"]);
    w.install("w03");
    d = w.step();
    expect(d.status).toMatchObject({ phase: "RollingOut", currentRevision: R0, updated: 3, failedMachines: ["w00"] });
    expect(d.status.conditions?.find((c) => c.type === "Progressing")?.reason).toBe("WaitingForFailedMachines");
    w.install("w00");
    expect(w.step().status).toMatchObject({ phase: "Complete", currentRevision: R1 });
  });

  it("resumes a halted rollout with a new rollout when spec.packages changes", () => {
    const w = canaryFleet();
    w.step();
    w.fail("w00");
    w.step();
    w.cpv = { ...w.cpv, spec: { ...w.cpv.spec, packages: P2 } };
    const d = w.step();
    expect(d.status).toMatchObject({ phase: "RollingOut", revision: R2, currentRevision: R0 });
    expect(d.status.failedMachines).toBeUndefined();
    expect(d.writes.map((x) => x.machine)).toEqual(["w00"]);
    expect(d.events[0]).toMatchObject({ reason: "RolloutStarted", message: expect.stringContaining(`${R0} → ${R2}`) });
  });
});

describe("rolloutStep: a changing fleet", () => {
  it("installs a machine added mid-rollout with the new catalog without waiting for it or counting it twice", () => {
    const w = new World(steadyAt(P1, { maxUnavailable: 1 }), fleet(2));
    w.step();
    w.machines.push(host("w00a"));
    expect(w.desired("w00a").packages).toEqual(P1);
    w.install("w00a");
    let d = w.step();
    expect(d.writes).toEqual([]);
    expect(d.status).toMatchObject({ updated: 1, total: 3 });
    w.install("w00");
    d = w.step();
    expect(d.writes.map((x) => x.machine)).toEqual(["w01"]);
    expect(d.status).toMatchObject({ updated: 2, ready: 2, total: 3 });
    w.install("w01");
    expect(w.step().status).toMatchObject({ phase: "Complete", updated: 3, ready: 3, total: 3 });
    expect(w.admitted(R1)).toEqual(["w00", "w01"]);
  });

  it("does not wait for a new machine still installing: the rollout completes, the phase stays Pending", () => {
    const w = new World(steadyAt(P1), [host("w00", R0), host("w01")]);
    w.step();
    w.install("w00");
    const d = w.step();
    expect(d.status).toMatchObject({ phase: "Pending", currentRevision: R1, updated: 1, total: 2 });
    expect(d.events.map((e) => e.reason)).toEqual(["RolloutComplete"]);
  });

  it("ignores a deleting machine: never admitted, not counted, not waited for", () => {
    const machines = fleet(2);
    machines[0].metadata.deletionTimestamp = "2026-11-25T11:00:00Z";
    const w = new World(steadyAt(P1), machines);
    expect(w.step().writes.map((x) => x.machine)).toEqual(["w01"]);
    w.install("w01");
    expect(w.step().status).toMatchObject({ phase: "Complete", updated: 1, total: 1 });
  });

  it("holds machines of a superseded rollout where they are, then admits them to the newest catalog", () => {
    const w = new World(steadyAt(P1, { maxUnavailable: 1 }), fleet(2));
    w.step();
    w.install("w00");
    w.cpv = { ...w.cpv, spec: { ...w.cpv.spec, packages: P2 } };
    expect(w.desired("w00")).toMatchObject({ packages: undefined, revision: R1 });
    expect(w.desired("w01").packages).toEqual(P0);
    expect(w.step().writes.map((x) => x.machine)).toEqual(["w00"]);
    expect(w.desired("w00").packages).toEqual(P2);
  });

  it("restarts the health gate of an admission whose time cannot be read", () => {
    const w = new World(steadyAt(P1), fleet(1));
    w.get("w00").metadata.annotations = { [PACKAGES_REVISION_ANNOTATION]: R1, [PACKAGES_ADMITTED_AT_ANNOTATION]: "yesterday" };
    const d = w.step();
    expect(d.writes).toEqual([{ kind: "admit", machine: "w00", revision: R1, admittedAt: new Date(START).toISOString() }]);
    expect(d.events).toEqual([expect.objectContaining({ reason: "RolloutStarted" })]);
  });
});

describe("rolloutStep (property: a healthy fleet)", () => {
  const rolloutArb: fc.Arbitrary<RolloutSpec> = fc.record(
    {
      maxUnavailable: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 100 }).map((n) => `${n}%`)),
      canary: fc.oneof(
        fc.record({ selector: fc.constant({ matchLabels: { canary: "true" } }), count: fc.integer({ min: 1, max: 4 }) }),
        fc.record({ count: fc.integer({ min: 1, max: 4 }) }),
      ),
      pauseAfterCanary: fc.boolean(),
    },
    { requiredKeys: ["maxUnavailable"] },
  );
  const scenarioArb = fc.record({
    size: fc.integer({ min: 1, max: 40 }),
    canaryLabels: fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
    rollout: rolloutArb,
    // Machines that appear mid-rollout: brand-new hosts, or hosts switched over from another
    // catalog, whose names land between existing ones and so shift the batch boundaries.
    added: fc.array(fc.record({ tick: fc.integer({ min: 0, max: 30 }), switched: fc.boolean() }), { maxLength: 4 }),
    seed: fc.integer(),
  });

  it("ends Complete with every machine on the new catalog, never more than maxUnavailable out at once", () => {
    fc.assert(
      fc.property(scenarioArb, ({ size, canaryLabels, rollout, added, seed }) => {
        const machines = fleet(size);
        machines.forEach((m, i) => (m.spec.labels = { canary: String(canaryLabels[i]) }));
        const w = new World(steadyAt(P1, rollout), machines);
        let random = seed;
        const coin = () => ((random = (Math.imul(random, 1103515245) + 12345) | 0) >>> 16) % 2 === 0;
        const done = (n: string) => w.get(n).status?.packagesRevision === R1;
        const complete = () => w.cpv.status?.phase === "Complete" && w.cpv.status.revision === R1;

        for (let tick = 0; tick < 2000 && !complete(); tick++) {
          added.forEach((a, i) => {
            if (a.tick !== tick) return;
            const name = `${machines[tick % size].metadata.name}s${tick}-${i}`;
            w.machines.push(a.switched ? host(name, R2, { canary: "false" }) : host(`new-${tick}-${i}`));
          });
          const d = w.step();
          expect(d.status.phase).not.toBe("Halted");
          if (d.status.phase === "Paused") w.cpv.metadata.annotations = { [RESUME_ANNOTATION]: R1 };
          // The plan as the controller sees it now: every installed machine but the new hosts.
          const planned = w.machines.filter((m) => !m.metadata.name.startsWith("new-"));
          const batches = planRollout(planned.map((m) => ({ name: m.metadata.name, labels: m.spec.labels })), rollout);
          const canaries = new Set(batches[0]?.kind === "canary" ? batches[0].machines : []);
          const outNow = w.admitted(R1).filter((n) => !canaries.has(n) && !done(n));
          expect(outNow.length).toBeLessThanOrEqual(resolveMaxUnavailable(rollout.maxUnavailable, planned.length));
          for (const m of w.machines) {
            const before = m.status?.packagesRevision;
            if (!coin()) continue;
            // Only an admitted or a brand-new machine ever moves to the new catalog.
            if (w.install(m.metadata.name) === R1 && before !== R1) {
              expect(before === undefined || w.admitted(R1).includes(m.metadata.name)).toBe(true);
            }
          }
          w.now += 1000;
        }
        expect(w.cpv.status).toMatchObject({ phase: "Complete", currentRevision: R1, updated: w.machines.length, ready: w.machines.length });
        expect(w.machines.every((m) => done(m.metadata.name))).toBe(true);
      }),
      { numRuns: 200 },
    );
    // Whole rollouts are simulated tick by tick: give a loaded CI machine room.
  }, 30_000);
});
