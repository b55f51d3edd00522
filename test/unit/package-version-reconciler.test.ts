/**
 * The ClusterPackageVersion reconciler with in-memory stand-ins for the API: what it writes, in
 * which order, what it tells (Events, metrics), and how it treats an invalid spec or a gone CPV.
 * The rollout decisions themselves are tested in package-rollout.test.ts.
 */
import { beforeEach, describe, expect, it } from "vitest";
import type { ClusterPackageVersionStatus, PackageVersionObject } from "../../src/api/v1alpha1";
import { TerminalError } from "../../src/runtime/controller";
import { ROLLED_BACK_FROM_ANNOTATION } from "../../src/controllers/packageversion/rollout";
import { PACKAGES_ADMITTED_AT_ANNOTATION, PACKAGES_REVISION_ANNOTATION } from "../../src/controllers/packageversion/revision";
import {
  packageVersionKeyOf,
  PackageVersionReconciler,
  type PackageVersionMachine,
  type RolloutProgress,
} from "../../src/controllers/packageversion/reconciler";
import { cpvOf, host, P0, P1, R0, R1, START, type Host } from "../support/rollout-world";

function harness() {
  let time = START;
  const cpvs = new Map<string, PackageVersionObject>();
  const machines: Host[] = [];
  const calls: string[] = [];
  const events: { type: string; reason: string; message: string }[] = [];
  const progress: [string, RolloutProgress | undefined][] = [];
  const reconciler = new PackageVersionReconciler({
    now: () => new Date(time),
    onRolloutProgress: (key, p) => progress.push([key, p]),
    events: {
      record: async (_cpv, type, reason, message) => {
        calls.push(`event ${reason}`);
        events.push({ type, reason, message });
      },
    },
    store: {
      getLive: async (ns, name) => structuredClone(cpvs.get(`${ns}/${name}`)),
      machinesOf: (ns, name) =>
        machines.filter((m) => m.metadata.namespace === ns && m.spec.packageVersionRef?.name === name).map((m) => structuredClone(m)),
      annotateMachine: async (machine: PackageVersionMachine, annotations) => {
        calls.push(`annotate ${machine.metadata.name}`);
        const stored = machines.find((m) => m.metadata.name === machine.metadata.name)!;
        const merged = { ...(stored.metadata.annotations ?? {}) };
        for (const [k, v] of Object.entries(annotations)) {
          if (v === null) delete merged[k];
          else merged[k] = v;
        }
        stored.metadata.annotations = merged;
      },
      writeStatus: async (cpv, compute: (fresh: ClusterPackageVersionStatus | undefined) => ClusterPackageVersionStatus) => {
        calls.push("status");
        const key = `${cpv.metadata.namespace}/${cpv.metadata.name}`;
        cpvs.set(key, { ...cpvs.get(key)!, status: structuredClone(compute(cpvs.get(key)!.status)) });
      },
    },
  });
  const put = (spec: Parameters<typeof cpvOf>[0], status?: ClusterPackageVersionStatus) =>
    cpvs.set("fleet/prod-a-packages", { apiVersion: "kubeonkube.io/v1alpha1", kind: "ClusterPackageVersion", ...cpvOf(spec, status) });
  return {
    reconciler,
    cpvs,
    machines,
    calls,
    events,
    progress,
    put,
    advance: (ms: number) => (time += ms),
    status: () => cpvs.get("fleet/prod-a-packages")!.status!,
    reconcile: () => reconciler.reconcile("fleet/prod-a-packages"),
  };
}

let h: ReturnType<typeof harness>;
beforeEach(() => (h = harness()));

describe("PackageVersionReconciler", () => {
  it("admits through Machine annotations, records its Events, then writes the status (whoever sees the phase finds why)", async () => {
    h.machines.push(host("w00", R0), host("w01", R0));
    h.put({ packages: P1, rollout: { maxUnavailable: 1 } }, { phase: "Complete", revision: R0, currentRevision: R0, currentPackages: P0 });
    const result = await h.reconcile();
    expect(h.calls).toEqual(["annotate w00", "event RolloutStarted", "event BatchAdmitted", "status"]);
    expect(h.machines[0].metadata.annotations).toEqual({
      [PACKAGES_REVISION_ANNOTATION]: R1,
      [PACKAGES_ADMITTED_AT_ANNOTATION]: new Date(START).toISOString(),
    });
    expect(h.machines[1].metadata.annotations).toBeUndefined();
    expect(h.status()).toMatchObject({ phase: "RollingOut", revision: R1, observedGeneration: 1, updated: 0, total: 2 });
    expect(h.events.map((e) => e.reason)).toEqual(["RolloutStarted", "BatchAdmitted"]);
    expect(result).toEqual({ requeueAfter: 30_000 });
    expect(h.progress).toEqual([["fleet/prod-a-packages", { phase: "RollingOut", updated: 0, ready: 0, total: 2 }]]);
  });

  it("only counts the Machines that reference it", async () => {
    const other = host("elsewhere", R1);
    other.spec.packageVersionRef = { name: "another" };
    h.machines.push(other, host("w00"));
    h.put({ packages: P1 });
    expect(await h.reconcile()).toEqual({});
    expect(h.status()).toMatchObject({ phase: "Pending", total: 1, currentRevision: R1 });
    expect(h.calls).toEqual(["status"]);
  });

  it("writes the rollback marker and removes it again when the machine is admitted anew", async () => {
    const m = host("w00", R0);
    m.metadata.annotations = { [PACKAGES_REVISION_ANNOTATION]: R1, [PACKAGES_ADMITTED_AT_ANNOTATION]: new Date(START).toISOString() };
    m.status = { ...m.status, phase: "Failed", targetRevision: R1 };
    h.machines.push(m);
    h.put({ packages: P1, rollout: { rollbackOnFailure: true } }, { phase: "RollingOut", revision: R1, currentRevision: R0, currentPackages: P0 });
    await h.reconcile();
    expect(m.metadata.annotations).toMatchObject({ [PACKAGES_REVISION_ANNOTATION]: R0, [ROLLED_BACK_FROM_ANNOTATION]: R1 });
    delete m.metadata.annotations![ROLLED_BACK_FROM_ANNOTATION];
    m.status = { ...m.status, phase: "Ready" };
    await h.reconcile();
    expect(m.metadata.annotations![PACKAGES_REVISION_ANNOTATION]).toBe(R1);
    expect(m.metadata.annotations).not.toHaveProperty(ROLLED_BACK_FROM_ANNOTATION);
  });

  it("reports an invalid spec in conditions and one Warning Event, admits nobody, and does not retry", async () => {
    h.machines.push(host("w00", R0));
    const bad = { ...P1, kubelet: { ...P1.kubelet, url: "ftp://mirror.local/kubelet", sha256: "ABC" } };
    h.put({ packages: bad, rollout: { maxUnavailable: 0 } }, { phase: "RollingOut", revision: R0, currentRevision: R0, updated: 1, total: 1 });
    await expect(h.reconcile()).rejects.toBeInstanceOf(TerminalError);
    expect(h.calls).toEqual(["event InvalidSpec", "status"]);
    expect(h.status()).toMatchObject({ phase: "RollingOut", updated: 1 });
    expect(h.status().conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "InvalidSpec" });
    const message = h.events.find((e) => e.reason === "InvalidSpec")?.message ?? "";
    for (const path of ["spec.packages.kubelet.url", "spec.packages.kubelet.sha256", "spec.rollout.maxUnavailable"]) expect(message).toContain(path);
    await expect(h.reconcile()).rejects.toBeInstanceOf(TerminalError);
    expect(h.events).toHaveLength(1);
    expect(h.machines[0].metadata.annotations).toBeUndefined();
  });

  it("does nothing for a CPV that is gone, and drops its metrics", async () => {
    h.machines.push(host("w00", R0));
    expect(await h.reconcile()).toEqual({});
    expect(h.calls).toEqual([]);
    expect(h.progress).toEqual([["fleet/prod-a-packages", undefined]]);
  });

  it("notices a health-gate timeout on the requeue it asked for", async () => {
    h.machines.push(host("w00", R0));
    h.put({ packages: P1, rollout: { healthGate: { readyTimeoutSeconds: 45 } } }, { phase: "Complete", revision: R0, currentRevision: R0, currentPackages: P0 });
    expect(await h.reconcile()).toEqual({ requeueAfter: 30_000 });
    h.advance(30_000);
    expect(await h.reconcile()).toEqual({ requeueAfter: 15_000 });
    h.advance(15_000);
    expect(await h.reconcile()).toEqual({});
    expect(h.status()).toMatchObject({ phase: "Halted", failedMachines: ["w00"] });
    expect(h.events.at(-1)).toMatchObject({ type: "Warning", reason: "RolloutHalted" });
  });
});

describe("packageVersionKeyOf", () => {
  it("maps a Machine to the key of the CPV it references, or nothing with explicit packages", () => {
    expect(packageVersionKeyOf(host("w00"))).toBe("fleet/prod-a-packages");
    expect(packageVersionKeyOf({ metadata: { namespace: "fleet" }, spec: {} })).toBeUndefined();
  });
});
