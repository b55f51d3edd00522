/**
 * The CA rotation's place in the Cluster reconciler (reconciler.ts, ca-rotation.ts, register.ts):
 * a new `kubeonkube.io/rotate-ca` token writes phase 1 before its `up` and moves it on after,
 * with status.certificates read from the stack's outputs (real PEMs: fingerprints and expiry),
 * the CertificateRotation condition and an Event per phase; phase 2 waits for the Cluster's
 * Machines; a failed `up` leaves the phase pending so the next reconcile runs it again; a paused
 * Cluster does not rotate; and the annotation wakes a Cluster.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mastersNamespaceLabels, mastersNamespaceOf, type ClusterObject, type ClusterSpec, type ClusterStatus, type MachineCertificateReport } from "../../src/api/v1alpha1";
import type { CertificateAuthorityPems } from "../../src/components/control-plane-outputs";
import { publicKeyFingerprint } from "../../src/controllers/cluster/ca-rotation";
import { ETCD_CA_KEPT, stackInputOf } from "../../src/controllers/cluster/ca-rotation-machine";
import { ClusterReconciler } from "../../src/controllers/cluster/reconciler";
import { clusterWakes } from "../../src/controllers/cluster/register";
import { ensurePki } from "../../src/dev/pki";
import { bundleFingerprint, certificateFingerprint, certificateNotAfter } from "../../src/runtime/certificates";
import type { StateResource } from "../../src/runtime/stack-runner";
import { minimalSpec } from "../support/specs";

const MASTERS = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "dev" } });
let dir: string;
/** Two real CAs and a service-account key, as a stack's outputs would hold them. */
let pems: CertificateAuthorityPems;
let newCa: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kok-rotation-"));
  await ensurePki(join(dir, "old"), []);
  await ensurePki(join(dir, "new"), []);
  const read = (file: string) => readFileSync(join(dir, file), "utf8");
  newCa = read("new/ca.crt");
  pems = { cluster: newCa, clusterBundle: `${newCa}${read("old/ca.crt")}`, etcd: read("old/ca.crt"), frontProxy: newCa, serviceAccount: read("new/sa.pub") };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** etcd on volumes that outlive its Pods: the rotation rolls its members and rotates its CA too. */
const ON_CLAIMS = minimalSpec({ etcd: { version: "3.6.16", storage: { claimTemplate: { size: "1Gi" } } } });

function harness(spec: ClusterSpec = ON_CLAIMS) {
  const calls: string[] = [];
  const events: string[] = [];
  const eventMessages: string[] = [];
  let machines: MachineCertificateReport[] = [];
  let failUp = false;
  let outputs: CertificateAuthorityPems | undefined;
  let stored: ClusterObject = {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Cluster",
    metadata: { name: "dev", namespace: "fleet", uid: "u1", generation: 1, finalizers: ["kubeonkube.io/cluster-stack"], annotations: { "kubeonkube.io/rotate-ca": "r1" } },
    spec,
    status: { version: spec.kubernetesVersion, observedGeneration: 1, lastOperation: { kind: "up", result: "succeeded", startedAt: "2026-12-05T05:00:00Z" } },
  };
  const state: StateResource[] = [{ type: "kubernetes:core/v1:Namespace", name: "dev-namespace", id: MASTERS }];
  const reconciler = new ClusterReconciler({
    resyncMs: 300_000,
    now: () => new Date("2026-12-05T06:00:00Z"),
    namespaceLabels: async () => mastersNamespaceLabels(stored),
    events: {
      record: async (_c, type, reason, message) => {
        events.push(`${type} ${reason}`);
        eventMessages.push(message);
      },
    },
    machineCertificates: () => machines,
    stacks: {
      up: async () => {
        // What status says when the update starts is the step the program deploys.
        calls.push(`up at ${stored.status?.certificates?.rotation?.phase ?? "none"}`);
        if (failUp) throw new Error("engine killed");
        return { changes: { update: 3 }, outputs: { certificateAuthorities: { value: outputs ?? pems, secret: false }, version: { value: stored.spec.kubernetesVersion, secret: false } } };
      },
      preview: async () => {
        calls.push("preview");
        return { same: 30 };
      },
      destroyAndRemove: async () => undefined,
      resources: async () => structuredClone(state),
      rename: async () => undefined,
    },
    store: {
      getLive: async () => structuredClone(stored),
      setFinalizers: async (c) => c,
      writeStatus: async (_c, compute: (s: ClusterStatus | undefined) => ClusterStatus) => {
        stored = { ...stored, status: compute(stored.status) };
      },
    },
  });
  return {
    calls,
    events,
    eventMessages,
    reconciler,
    get: () => stored,
    set: (f: (c: ClusterObject) => ClusterObject) => (stored = f(stored)),
    machines: (m: MachineCertificateReport[]) => (machines = m),
    failUp: (fail: boolean) => (failUp = fail),
    outputs: (o: CertificateAuthorityPems) => (outputs = o),
  };
}
const condition = (c: ClusterObject) => c.status?.conditions?.find((x) => x.type === "CertificateRotation");

describe("a CA rotation through the Cluster reconciler", () => {
  it("runs phase 1 on a new token and records the authorities, then phase 2 once the Machines caught up", async () => {
    const h = harness();
    const behind = { name: "w1", certificates: { trustBundle: "sha256:" + "0".repeat(64), kubeletClient: { issuer: "sha256:" + "1".repeat(64) } } };
    h.machines([behind]);
    expect(await h.reconciler.reconcile("fleet/dev")).toEqual({ requeueAfter: 1_000 });
    expect(h.calls).toEqual(["up at Preparing"]);
    const certificates = h.get().status!.certificates!;
    expect(certificates.rotation).toMatchObject({ token: "r1", phase: "WaitingForMachines", generation: 1 });
    expect(certificates.trustBundle).toBe(bundleFingerprint(pems.clusterBundle));
    expect(certificates.authorities).toEqual([
      { name: "cluster", fingerprint: certificateFingerprint(newCa), notAfter: certificateNotAfter(newCa) },
      { name: "etcd", fingerprint: certificateFingerprint(pems.etcd), notAfter: certificateNotAfter(pems.etcd) },
      { name: "front-proxy", fingerprint: certificateFingerprint(newCa), notAfter: certificateNotAfter(newCa) },
      { name: "service-account", fingerprint: publicKeyFingerprint(pems.serviceAccount) },
    ]);
    expect(h.events).toEqual(["Normal RotationPreparing", "Normal Applied", "Normal RotationWaitingForMachines"]);
    expect(condition(h.get())).toMatchObject({ status: "True", reason: "WaitingForMachines" });

    // The Machine is behind: no update, the condition names it, a look again soon.
    h.calls.length = 0;
    expect(await h.reconciler.reconcile("fleet/dev")).toEqual({ requeueAfter: 30_000 });
    expect(h.calls.filter((c) => c.startsWith("up"))).toEqual([]);
    expect(condition(h.get())?.message).toContain("w1 (trusts another bundle)");

    // Caught up: phase 2, then the update that drops the old etcd CA, then the old
    // service-account key is kept for its retention.
    h.machines([{ name: "w1", certificates: { trustBundle: certificates.trustBundle, kubeletClient: { issuer: certificateFingerprint(newCa) } } }]);
    h.calls.length = 0;
    expect(await h.reconciler.reconcile("fleet/dev")).toEqual({ requeueAfter: 1_000 });
    expect(h.calls).toEqual(["up at Completing"]);
    expect(h.get().status?.certificates?.rotation).toMatchObject({ phase: "DroppingOldEtcdCa", etcdGeneration: 1 });
    expect(condition(h.get())?.message).toContain("etcd CA generation 1 signs every etcd certificate; dropping etcd CA generation 0");
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls).toEqual(["up at Completing", "up at DroppingOldEtcdCa"]);
    expect(h.get().status?.certificates?.rotation).toMatchObject({ phase: "KeepingOldServiceAccountKey", serviceAccountKeyRetiresAt: "2026-12-06T06:00:00.000Z" });
    expect(h.events.slice(-5)).toEqual(["Normal RotationCompleting", "Normal Applied", "Normal RotationDroppingOldEtcdCa", "Normal Applied", "Normal RotationKeepingOldServiceAccountKey"]);
  });

  it("keeps the etcd CA of a Cluster whose etcd data is in emptyDir volumes, and says why and what to do", async () => {
    const h = harness(minimalSpec());
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls).toEqual(["up at Preparing"]);
    const rotation = h.get().status!.certificates!.rotation!;
    expect(rotation).toMatchObject({ phase: "WaitingForMachines", generation: 1, etcdGeneration: 0, etcdCaKept: true });
    expect(stackInputOf(rotation).etcd).toEqual({ generation: 0, step: "stable" });
    const preparing = h.get().status?.conditions?.find((c) => c.type === "CertificateRotation");
    expect(preparing?.reason).toBe("WaitingForMachines");
    // The Event of phase 1 says the etcd CA stays, why, and how to rotate it.
    expect(h.eventMessages.find((m) => m.startsWith("rotation to CA generation 1 started"))).toContain(ETCD_CA_KEPT);
  });

  it("leaves a phase pending when its update fails, and the next reconcile runs it again", async () => {
    const h = harness();
    h.failUp(true);
    await expect(h.reconciler.reconcile("fleet/dev")).rejects.toThrow("engine killed");
    expect(h.get().status?.certificates?.rotation?.phase).toBe("Preparing");
    h.failUp(false);
    // Even without the annotation (a new leader reads only status), the pending phase runs.
    h.set((c) => ({ ...c, metadata: { ...c.metadata, annotations: {} } }));
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls).toEqual(["up at Preparing", "up at Preparing"]);
    expect(h.get().status?.certificates?.rotation).toMatchObject({ token: "r1", phase: "WaitingForMachines" });
  });

  it("writes no authorities from outputs it cannot read, and phase 2 then waits for the Machines instead of trusting stale ones", async () => {
    const h = harness();
    h.set((c) => ({ ...c, status: { ...c.status, certificates: { trustBundle: bundleFingerprint(pems.etcd), authorities: [{ name: "cluster", fingerprint: certificateFingerprint(pems.etcd) }] } } }));
    h.outputs({ ...pems, clusterBundle: "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n" });
    h.machines([{ name: "w1", certificates: { trustBundle: bundleFingerprint(pems.etcd), kubeletClient: { issuer: certificateFingerprint(pems.etcd) } } }]);
    await h.reconciler.reconcile("fleet/dev");
    expect(h.get().status?.certificates).toEqual({ rotation: expect.objectContaining({ phase: "WaitingForMachines" }) });
    h.calls.length = 0;
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls.filter((c) => c.startsWith("up"))).toEqual([]);
    expect(condition(h.get())?.message).toContain("the new CA's fingerprint is not in status yet");
  });

  it("does not rotate a paused Cluster, and tells a refused token once", async () => {
    const h = harness();
    h.set((c) => ({ ...c, spec: { ...c.spec, paused: true } }));
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls).toEqual([]);
    expect(h.get().status?.certificates).toBeUndefined();
    h.set((c) => ({ ...c, spec: { ...c.spec, paused: false }, metadata: { ...c.metadata, annotations: { "kubeonkube.io/rotate-ca": "x".repeat(300) } } }));
    await h.reconciler.reconcile("fleet/dev");
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls.filter((c) => c.startsWith("up"))).toEqual([]);
    expect(h.events).toEqual(["Warning RotationRefused"]);
    expect(condition(h.get())).toMatchObject({ status: "False", reason: "RotationRefused" });
  });
});

describe("what wakes a Cluster for a rotation", () => {
  const cluster = (annotations: Record<string, string>) => ({ metadata: { name: "dev", namespace: "fleet", generation: 1, annotations } });
  it("is a new rotate-ca token", () => {
    expect(clusterWakes({ key: "fleet/dev", type: "update", old: cluster({}), new: cluster({ "kubeonkube.io/rotate-ca": "r1" }) })).toBe(true);
    expect(clusterWakes({ key: "fleet/dev", type: "update", old: cluster({ "kubeonkube.io/rotate-ca": "r1" }), new: cluster({ "kubeonkube.io/rotate-ca": "r1", x: "y" }) })).toBe(false);
  });
});
