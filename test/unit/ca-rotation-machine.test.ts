/**
 * The CA rotation's phase machine (src/controllers/cluster/ca-rotation-machine.ts): each phase's
 * next step, the Machines' gate before phase 2, the service-account key's retention, refused and
 * queued tokens; and, as properties, an operator killed at any point (before its status write,
 * before or after its update) resumes and finishes, the stack only ever takes the allowed steps,
 * and phase 2 is applied only when every Machine trusts the bundle and holds a certificate of
 * the new CA.
 */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { CertificatesStatus, MachineCertificateReport, RotationStatus } from "../../src/api/v1alpha1";
import { etcdCaPlan, rotationPlan, type CaRotationInput } from "../../src/components/ca-rotation";
import {
  afterUpdate,
  decideRotation,
  DEFAULT_SERVICE_ACCOUNT_KEY_RETENTION_MS,
  goDurationMs,
  machinesBehind,
  serviceAccountKeyRetentionMs,
  stackInputOf,
  type RotationObservation,
} from "../../src/controllers/cluster/ca-rotation-machine";

const T0 = new Date("2026-12-05T12:00:00Z");
const HOUR = 3_600_000;
const fp = (text: string) => `sha256:${createHash("sha256").update(text).digest("hex")}`;
/** What the stack's outputs say of a step: the signing CA's and the bundle's fingerprints. */
const published = (input: CaRotationInput) => {
  const plan = rotationPlan(input);
  return { signing: fp(`ca-${plan.clientSigner}`), bundle: fp(plan.trusted.map((g) => `ca-${g}`).sort().join()) };
};
const statusOf = (input: CaRotationInput, rotation?: RotationStatus): CertificatesStatus => {
  const p = published(input);
  return { authorities: [{ name: "cluster", fingerprint: p.signing }], trustBundle: p.bundle, ...(rotation ? { rotation } : {}) };
};
const observe = (o: Partial<RotationObservation>): RotationObservation => ({
  provisioned: true,
  machines: [],
  now: T0,
  serviceAccountKeyRetentionMs: DEFAULT_SERVICE_ACCOUNT_KEY_RETENTION_MS,
  ...o,
});
const rotation = (phase: RotationStatus["phase"], extra: Partial<RotationStatus> = {}): RotationStatus => ({ token: "t1", phase, generation: 1, startedAt: T0.toISOString(), ...extra });
const machine = (name: string, input: CaRotationInput | undefined): MachineCertificateReport => {
  if (!input) return { name };
  const p = published(input);
  return { name, certificates: { trustBundle: p.bundle, kubeletClient: { issuer: p.signing }, kubeletServing: { issuer: p.signing } } };
};
const PHASE1: CaRotationInput = { generation: 1, trusting: true, previousServiceAccountKey: false };

describe("the CA rotation's phases", () => {
  it("starts on a new token of a running Cluster, at the next generation, and not before the Cluster runs", () => {
    expect(decideRotation(observe({ token: "t1" }))).toMatchObject({ kind: "step", rotation: { token: "t1", phase: "Preparing", generation: 1 } });
    expect(decideRotation(observe({ token: "t1", provisioned: false }))).toEqual({ kind: "none" });
    expect(decideRotation(observe({}))).toEqual({ kind: "none" });
    // The token handled last starts nothing; a new one after a completed rotation starts the next generation.
    const done = statusOf({ generation: 1, trusting: false, previousServiceAccountKey: false }, rotation("Completed"));
    expect(decideRotation(observe({ token: "t1", certificates: done }))).toEqual({ kind: "none" });
    expect(decideRotation(observe({ token: "t2", certificates: done }))).toMatchObject({ kind: "step", rotation: { token: "t2", phase: "Preparing", generation: 2 } });
    // The etcd CA counts its own generations: after a rotation that left it alone, it is still at 0.
    expect(decideRotation(observe({ token: "t1" }))).toMatchObject({ rotation: { generation: 1, etcdGeneration: 1 } });
    expect(decideRotation(observe({ token: "t2", certificates: done }))).toMatchObject({ rotation: { generation: 2, etcdGeneration: 1 } });
    const doneBoth = { ...done, rotation: rotation("Completed", { etcdGeneration: 1 }) };
    expect(decideRotation(observe({ token: "t2", certificates: doneBoth }))).toMatchObject({ rotation: { generation: 2, etcdGeneration: 2 } });
    // etcd's data in emptyDirs: its CA is kept at the generation it has, and the message says why.
    const kept = decideRotation(observe({ token: "t2", certificates: doneBoth, etcdDataOutlivesPods: false }));
    expect(kept).toMatchObject({ kind: "step", rotation: { generation: 2, etcdGeneration: 1, etcdCaKept: true } });
    expect(kept.kind === "step" && kept.message).toContain("The etcd CA is kept: etcd's data lives in emptyDir volumes");
    for (const phase of ["Preparing", "Completing", "DroppingOldEtcdCa", "Completed"] as const) {
      expect(stackInputOf(rotation(phase, { etcdGeneration: 1, etcdCaKept: true })).etcd, phase).toEqual({ generation: 1, step: "stable" });
    }
  });

  it("refuses an empty or too long token with a note, and starts nothing", () => {
    for (const token of ["", "x".repeat(257)]) {
      const d = decideRotation(observe({ token }));
      expect(d.kind).toBe("none");
      expect(d.kind === "none" && d.note).toContain(`1 to 256 characters (it has ${token.length})`);
    }
  });

  it("re-runs the update of a pending phase, whatever the token says", () => {
    for (const phase of ["Preparing", "Completing", "DroppingOldEtcdCa", "DroppingOldServiceAccountKey"] as const) {
      expect(decideRotation(observe({ token: "t9", certificates: statusOf(PHASE1, rotation(phase)) }))).toEqual({ kind: "update" });
    }
  });

  it("moves to phase 2 only when every Machine trusts the bundle and holds kubelet certificates of the new CA", () => {
    const certificates = statusOf(PHASE1, rotation("WaitingForMachines"));
    const old: CaRotationInput = { generation: 0, trusting: false, previousServiceAccountKey: false };
    const waiting = decideRotation(observe({ certificates, machines: [machine("w1", PHASE1), machine("w2", old), machine("w3", undefined)] }));
    expect(waiting).toMatchObject({ kind: "wait", requeueAfterMs: 30_000 });
    expect(waiting.kind === "wait" && waiting.message).toContain("2 Machine(s): w2 (trusts another bundle), w3 (reports no certificates yet)");
    // The right bundle but a kubelet certificate of the old CA: not yet.
    const stale = { name: "w4", certificates: { trustBundle: published(PHASE1).bundle, kubeletClient: { issuer: published(old).signing } } };
    expect(machinesBehind([stale], certificates)).toEqual(["w4 (kubelet client certificate of another CA)"]);
    const staleServing = { name: "w5", certificates: { ...machine("w5", PHASE1).certificates, kubeletServing: { issuer: published(old).signing } } };
    expect(machinesBehind([staleServing], certificates)).toEqual(["w5 (kubelet serving certificate of another CA)"]);
    // A Machine being deleted is not waited for.
    expect(machinesBehind([{ ...machine("w2", old), deleting: true }], certificates)).toEqual([]);
    expect(decideRotation(observe({ certificates, machines: [machine("w1", PHASE1)] }))).toMatchObject({ kind: "step", rotation: { phase: "Completing", generation: 1 } });
    expect(decideRotation(observe({ certificates }))).toMatchObject({ kind: "step", rotation: { phase: "Completing" } });
  });

  it("names at most five Machines and counts the rest; without the new CA in status every Machine waits", () => {
    const certificates = statusOf(PHASE1, rotation("WaitingForMachines"));
    const many = Array.from({ length: 8 }, (_, i) => machine(`w${i}`, undefined));
    const d = decideRotation(observe({ certificates, machines: many }));
    expect(d.kind === "wait" && d.message).toMatch(/8 Machine\(s\): w0 .*w4 \(reports no certificates yet\) and 3 more$/);
    expect(machinesBehind([machine("w1", PHASE1)], { rotation: rotation("WaitingForMachines") })).toEqual(["the new CA's fingerprint is not in status yet"]);
  });

  it("drops the old etcd CA in the update after phase 2, then keeps the old service-account key for the retention, then drops it", () => {
    const switched = afterUpdate(rotation("Completing"), T0, 2 * HOUR)!;
    expect(switched).toMatchObject({ phase: "DroppingOldEtcdCa" });
    expect(switched.serviceAccountKeyRetiresAt).toBeUndefined();
    expect(decideRotation(observe({ certificates: statusOf(PHASE1, switched) }))).toEqual({ kind: "update" });
    const applied = afterUpdate(switched, T0, 2 * HOUR)!;
    expect(applied).toMatchObject({ phase: "KeepingOldServiceAccountKey", serviceAccountKeyRetiresAt: "2026-12-05T14:00:00.000Z" });
    const certificates = statusOf({ generation: 1, trusting: false, previousServiceAccountKey: true }, applied);
    expect(decideRotation(observe({ certificates, now: new Date(T0.getTime() + HOUR) }))).toEqual({
      kind: "wait",
      requeueAfterMs: HOUR,
      message: "phase 2 applied; the old service-account public key verifies tokens until 2026-12-05T14:00:00.000Z",
    });
    // A retention of weeks is looked at again hourly.
    const far = statusOf({ generation: 1, trusting: false, previousServiceAccountKey: true }, afterUpdate(rotation("DroppingOldEtcdCa"), T0, 30 * 24 * HOUR));
    expect(decideRotation(observe({ certificates: far }))).toMatchObject({ kind: "wait", requeueAfterMs: HOUR });
    const asked = decideRotation(observe({ token: "t2", certificates, now: new Date(T0.getTime() + HOUR) }));
    expect(asked.kind === "wait" && asked.message).toContain("asks for another rotation, which starts once this one completed");
    expect(decideRotation(observe({ certificates, now: new Date(T0.getTime() + 2 * HOUR) }))).toMatchObject({ kind: "step", rotation: { phase: "DroppingOldServiceAccountKey" } });
    expect(afterUpdate(rotation("DroppingOldServiceAccountKey", { serviceAccountKeyRetiresAt: "x" }), T0, HOUR)).toMatchObject({ phase: "Completed", serviceAccountKeyRetiresAt: undefined });
  });

  it("maps each phase to the stack's step, and an update of a settled phase leaves it", () => {
    expect(stackInputOf(undefined)).toEqual({ generation: 0, trusting: false, previousServiceAccountKey: false });
    expect(stackInputOf(rotation("Preparing"))).toEqual(PHASE1);
    expect(stackInputOf(rotation("WaitingForMachines"))).toEqual(PHASE1);
    expect(stackInputOf(rotation("Completing"))).toEqual({ generation: 1, trusting: false, previousServiceAccountKey: true });
    expect(stackInputOf(rotation("KeepingOldServiceAccountKey"))).toEqual({ generation: 1, trusting: false, previousServiceAccountKey: true });
    expect(stackInputOf(rotation("DroppingOldServiceAccountKey"))).toEqual({ generation: 1, trusting: false, previousServiceAccountKey: false });
    expect(stackInputOf(rotation("Completed"))).toEqual({ generation: 1, trusting: false, previousServiceAccountKey: false });
    // With the etcd CA's generation (every rotation begun now), etcd takes three steps of its own;
    // without it (a rotation begun before etcd's CA rotated) etcd stays as it was, above.
    const etcd = (phase: RotationStatus["phase"]) => stackInputOf(rotation(phase, { generation: 3, etcdGeneration: 1 })).etcd;
    expect(etcd("Preparing")).toEqual({ generation: 1, step: "trusting" });
    expect(etcd("WaitingForMachines")).toEqual({ generation: 1, step: "trusting" });
    expect(etcd("Completing")).toEqual({ generation: 1, step: "switching" });
    expect(stackInputOf(rotation("DroppingOldEtcdCa"))).toEqual({ generation: 1, trusting: false, previousServiceAccountKey: true });
    for (const phase of ["DroppingOldEtcdCa", "KeepingOldServiceAccountKey", "DroppingOldServiceAccountKey", "Completed"] as const) {
      expect(etcd(phase), phase).toEqual({ generation: 1, step: "stable" });
    }
    for (const phase of ["WaitingForMachines", "KeepingOldServiceAccountKey", "Completed"] as const) expect(afterUpdate(rotation(phase), T0, HOUR)).toEqual(rotation(phase));
  });

  it("reads the retention from the apiserver's max token expiration, a Go duration", () => {
    expect(serviceAccountKeyRetentionMs({ apiServer: { extraArgs: { "service-account-max-token-expiration": "1h30m" } } })).toBe(1.5 * HOUR);
    expect(serviceAccountKeyRetentionMs({})).toBe(24 * HOUR);
    expect(goDurationMs("48h")).toBe(48 * HOUR);
    expect(goDurationMs("500ms")).toBe(500);
    for (const bad of ["", "1d", "h", "-1h", "0s", "1h junk"]) expect(goDurationMs(bad), bad).toBeUndefined();
  });
});

/** One operator step of the model world, or what else happens meanwhile. */
type Act =
  | { readonly kind: "reconcile"; readonly killAt: "never" | "beforeStatus" | "beforeUp" | "afterUp" }
  | { readonly kind: "machine"; readonly index: number }
  | { readonly kind: "time"; readonly ms: number }
  | { readonly kind: "token"; readonly token: string };

const act: fc.Arbitrary<Act> = fc.oneof(
  fc.record({ kind: fc.constant("reconcile" as const), killAt: fc.constantFrom("never" as const, "beforeStatus" as const, "beforeUp" as const, "afterUp" as const) }),
  fc.record({ kind: fc.constant("machine" as const), index: fc.nat(2) }),
  fc.record({ kind: fc.constant("time" as const), ms: fc.oneof(fc.integer({ min: 1, max: 30 * HOUR }), fc.constantFrom(HOUR / 2, 19.5 * HOUR)) }),
  fc.record({ kind: fc.constant("token" as const), token: fc.constantFrom("t1", "t2", "t3") }),
);

const etcdOf = (i: CaRotationInput) => i.etcd ?? { generation: 0, step: "stable" as const };
const key = (i: CaRotationInput) => `${i.generation}/${i.trusting ? "T" : "S"}/${i.previousServiceAccountKey ? "prev" : "-"}/etcd ${etcdOf(i).generation} ${etcdOf(i).step}`;
/** The steps a stack may take from one applied input to the next; `keptEtcd`: etcd's data in emptyDirs, its CA never rotates. */
function allowed(from: CaRotationInput, to: CaRotationInput, keptEtcd: boolean): boolean {
  const e = etcdOf(from);
  const at = (etcdGeneration: number, step: "trusting" | "switching" | "stable", rest: Omit<CaRotationInput, "etcd">) => key({ ...rest, etcd: { generation: etcdGeneration, step } });
  if (!from.trusting && !from.previousServiceAccountKey) {
    const rest = { generation: from.generation + 1, trusting: true, previousServiceAccountKey: false };
    return key(to) === (keptEtcd ? at(e.generation, "stable", rest) : at(e.generation + 1, "trusting", rest));
  }
  if (from.trusting) return key(to) === at(e.generation, keptEtcd ? "stable" : "switching", { generation: from.generation, trusting: false, previousServiceAccountKey: true });
  if (e.step === "switching") return key(to) === at(e.generation, "stable", { generation: from.generation, trusting: false, previousServiceAccountKey: true });
  return key(to) === at(e.generation, "stable", { generation: from.generation, trusting: false, previousServiceAccountKey: false });
}

/**
 * Whether etcd's members survive the roll from one step to the next: during it, members of both
 * steps talk to each other, so each side's signer must be trusted by both sides.
 */
function etcdRollSafe(from: CaRotationInput, to: CaRotationInput): boolean {
  const a = etcdCaPlan(from.etcd);
  const b = etcdCaPlan(to.etcd);
  return [a.signer, b.signer].every((signer) => a.trusted.includes(signer) && b.trusted.includes(signer));
}

/**
 * The world around the phase machine: the status (what survives the operator), the stack's last
 * applied step, the Machines (each re-installs trust from the live CA Secret when it runs, as the
 * machine controller does) and the clock. A reconcile may be killed at each of its writes.
 */
function world(machineCount: number, keptEtcd = false) {
  const retention = 20 * HOUR;
  let now = T0.getTime();
  let token: string | undefined = "t1";
  let stack: CaRotationInput = { generation: 0, trusting: false, previousServiceAccountKey: false };
  let status: CertificatesStatus = statusOf(stack);
  const machines = Array.from({ length: machineCount }, (_, i) => machine(`w${i}`, stack));
  const history: CaRotationInput[] = [];
  const violations: string[] = [];

  const apply = (input: CaRotationInput) => {
    if (key(input) === key(stack)) return;
    if (!allowed(stack, input, keptEtcd)) violations.push(`step ${key(stack)} → ${key(input)}`);
    if (!etcdRollSafe(stack, input)) violations.push(`etcd members of ${key(stack)} and ${key(input)} refuse each other's certificates`);
    // Phase 2 (the old CA leaves): every Machine must trust the bundle and hold the new CA's certificates.
    if (stack.trusting && !input.trusting) {
      const p = published(stack);
      for (const m of machines) {
        const c = m.certificates;
        if (c?.trustBundle !== p.bundle || c.kubeletClient?.issuer !== p.signing) violations.push(`phase 2 with ${m.name} behind`);
      }
    }
    if (stack.previousServiceAccountKey && !input.previousServiceAccountKey) {
      const until = Date.parse(status.rotation?.serviceAccountKeyRetiresAt ?? "");
      if (!(now >= until)) violations.push(`old service-account key dropped at ${new Date(now).toISOString()}, before ${status.rotation?.serviceAccountKeyRetiresAt}`);
    }
    stack = input;
    history.push(input);
  };

  const reconcile = (killAt: Extract<Act, { kind: "reconcile" }>["killAt"]) => {
    const d = decideRotation({ token, certificates: status, provisioned: true, machines, now: new Date(now), serviceAccountKeyRetentionMs: retention, etcdDataOutlivesPods: !keptEtcd });
    if (d.kind === "step") {
      if (killAt === "beforeStatus") return;
      status = { ...status, rotation: d.rotation };
    }
    if (d.kind !== "step" && d.kind !== "update") return;
    if (killAt === "beforeUp") return;
    const input = stackInputOf(status.rotation);
    apply(input);
    if (killAt === "afterUp") return;
    status = { ...statusOf(input), rotation: afterUpdate(status.rotation, new Date(now), retention) };
  };

  return {
    run(a: Act) {
      if (a.kind === "reconcile") reconcile(a.killAt);
      else if (a.kind === "machine" && a.index < machines.length) machines[a.index] = machine(machines[a.index].name, stack);
      else if (a.kind === "time") now += a.ms;
      else if (a.kind === "token") token = a.token;
    },
    /** Without kills: reconcile, let every Machine catch up, let time pass, until nothing is left to do. */
    settle() {
      // Half-hour steps: a key dropped up to an hour early is seen.
      for (let i = 0; i < 200; i++) {
        reconcile("never");
        for (let m = 0; m < machines.length; m++) machines[m] = machine(machines[m].name, stack);
        now += HOUR / 2;
      }
    },
    get: () => ({ status, stack, history, violations, token }),
  };
}

describe("the CA rotation under an operator killed at any step", () => {
  it("knows a roll of etcd members that would refuse each other: two etcd steps at once", () => {
    const at = (generation: number, step: "trusting" | "switching" | "stable"): CaRotationInput => ({ ...PHASE1, etcd: { generation, step } });
    expect(etcdRollSafe(at(0, "stable"), at(1, "trusting"))).toBe(true);
    expect(etcdRollSafe(at(1, "trusting"), at(1, "switching"))).toBe(true);
    expect(etcdRollSafe(at(1, "switching"), at(1, "stable"))).toBe(true);
    // Switching and dropping in one roll: a rolled member trusts only 1, an old one presents 0.
    expect(etcdRollSafe(at(1, "trusting"), at(1, "stable"))).toBe(false);
    expect(etcdRollSafe(at(0, "stable"), at(1, "switching"))).toBe(false);
  });

  it("takes only allowed steps, never rolls etcd members that refuse each other, never starts phase 2 ahead of a Machine nor drops the old key early, and finishes the last token asked for", () => {
    fc.assert(
      fc.property(fc.array(act, { maxLength: 60 }), fc.integer({ min: 0, max: 3 }), fc.boolean(), (acts, machineCount, keptEtcd) => {
        const w = world(machineCount, keptEtcd);
        for (const a of acts) w.run(a);
        w.settle();
        const { status, stack, history, violations, token } = w.get();
        expect(violations).toEqual([]);
        expect(status.rotation).toMatchObject({ token, phase: "Completed" });
        // Each handled token is one full rotation: four steps per generation (three when the
        // etcd CA is kept: its drop changes nothing).
        expect(history).toHaveLength((keptEtcd ? 3 : 4) * status.rotation!.generation);
        expect(stack).toEqual({
          generation: status.rotation!.generation,
          trusting: false,
          previousServiceAccountKey: false,
          etcd: { generation: keptEtcd ? 0 : status.rotation!.generation, step: "stable" },
        });
        expect(status).toEqual(statusOf(stack, status.rotation));
      }),
      { numRuns: 300 },
    );
  });

  it("never leaves phase 1 while a Machine stays behind", () => {
    fc.assert(
      fc.property(fc.array(act.filter((a) => a.kind !== "machine" && a.kind !== "token"), { maxLength: 40 }), (acts) => {
        const w = world(1);
        for (const a of acts) w.run(a);
        const { stack, violations } = w.get();
        expect(violations).toEqual([]);
        // The one Machine never caught up: the stack is at most at phase 1.
        expect(stack.generation === 0 || stack.trusting).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
