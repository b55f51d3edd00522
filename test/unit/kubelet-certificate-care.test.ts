/**
 * The certificate care of healthy Machines (certificate-care.ts) with in-memory stand-ins for the
 * store and the `up`: how many renew at once per Cluster, when the CA Secret is read, and a
 * renewal that re-issued nothing not run again in a loop.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { ClusterObject, MachineCertificates, MachineObject, MachineStatus } from "../../src/api/v1alpha1";
import { CertificateCare } from "../../src/controllers/machine/certificate-care";
import { DEFAULT_RENEWAL_POLICY } from "../../src/controllers/machine/certificate-renewal";
import type { MachineCatalog, MachineContext } from "../../src/controllers/machine/context";
import type { ConditionInput, MachineReconcilerOptions } from "../../src/controllers/machine/options";
import { certificateFingerprint } from "../../src/runtime/certificates";
import { testCa, type TestCa } from "../support/test-pki";
import { machine as machineSpec, packages } from "../support/worker-fixtures";

const NOW = new Date("2026-12-05T12:00:00Z");
let ca: TestCa;
beforeAll(async () => {
  ca = await testCa("kubernetes-ca");
});

/** Certificates issued a year ago: past any point of the default window. */
const due = (): MachineCertificates => {
  const issuer = certificateFingerprint(ca.pem);
  const c = { notBefore: "2025-12-05T12:00:00Z", notAfter: "2026-12-20T12:00:00Z", issuer };
  return { kubeletClient: c, kubeletServing: c };
};

function world(machines: number, certificates: () => MachineCertificates | undefined = due) {
  const cluster = { apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { namespace: "fleet", name: "prod-a" }, spec: {}, status: { phase: "Ready" } } as unknown as ClusterObject;
  const all: MachineObject[] = Array.from({ length: machines }, (_, i) => ({
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Machine",
    metadata: { namespace: "fleet", name: `w${i}`, uid: `uid-${i}`, generation: 1 },
    spec: machineSpec({ hostname: `w${i}`, packages: packages() }),
    status: { phase: "Ready", certificates: certificates() },
  }));
  const conditions = new Map<string, ConditionInput[]>();
  const installs: { name: string; renew: boolean; finish: () => void }[] = [];
  let secretReads = 0;
  const o = { store: { machinesOfCluster: () => all, getLive: async (_ns: string, name: string) => all.find((m) => m.metadata.name === name) } } as unknown as MachineReconcilerOptions;
  const care = new CertificateCare({
    o,
    now: () => NOW,
    policy: DEFAULT_RENEWAL_POLICY,
    status: async (m: MachineObject, fields: Partial<MachineStatus>, c: ConditionInput[]) => {
      m.status = { ...m.status, ...fields };
      conditions.set(m.metadata.name, c);
    },
    waiting: async () => ({ requeueAfter: 15_000 }),
    install: (m, _ctx, _why, renew) => new Promise((resolve) => installs.push({ name: m.metadata.name, renew, finish: () => resolve({ requeueAfter: 300_000 }) })),
  });
  const catalog = { clusterKey: "fleet/prod-a", cluster } as unknown as MachineCatalog;
  const secrets = async () => {
    secretReads++;
    return { cluster: { caCertificate: ca.pem, trustBundle: ca.pem } } as unknown as MachineContext;
  };
  const look = (m: MachineObject, secretsRead = false) => care.look(`fleet/${m.metadata.name}`, m, catalog, secrets, secretsRead);
  return { all, cluster, conditions, installs, look, care, reads: () => secretReads };
}

const settle = () => new Promise((r) => setImmediate(r));

describe("CertificateCare", () => {
  it("lets a tenth of a Cluster's Machines renew at once; the others wait their turn, saying so", async () => {
    const w = world(20);
    const looks = w.all.slice(0, 5).map((m) => w.look(m));
    await settle();
    expect(w.installs.map((i) => i.name)).toEqual(["w0", "w1"]);
    expect(w.installs.every((i) => i.renew)).toBe(true);
    const waiting = await Promise.all(looks.slice(2));
    expect(waiting).toEqual([{ recheckAfterMs: 30_000 }, { recheckAfterMs: 30_000 }, { recheckAfterMs: 30_000 }]);
    expect(w.conditions.get("w2")).toEqual([expect.objectContaining({ type: "CertificatesCurrent", status: "False", reason: "WaitingForTurn", message: expect.stringContaining("2 of at most 2 Machines of Cluster fleet/prod-a renew now") })]);
    // One done: the next in line gets its turn.
    w.installs[0].finish();
    expect(await looks[0]).toEqual({ ran: { requeueAfter: 300_000 } });
    const next = w.look(w.all[2]);
    await settle();
    expect(w.installs.map((i) => i.name)).toEqual(["w0", "w1", "w2"]);
    w.installs[1].finish();
    w.installs[2].finish();
    await Promise.all([looks[1], next]);
  });

  it("reads the CA Secret only when the look read the Machine's Secrets anyway or the Cluster's status.certificates moved", async () => {
    const w = world(1, () => ({ ...due(), kubeletClient: { ...due().kubeletClient!, notBefore: "2026-12-05T11:00:00Z", notAfter: "2027-12-05T11:00:00Z" }, kubeletServing: undefined, trustBundle: undefined }));
    const m = w.all[0];
    await w.look(m); // first look of this process: compared once
    await w.look(m);
    expect(w.reads()).toBe(1);
    await w.look(m, true);
    expect(w.reads()).toBe(2);
    (w.cluster.status as Record<string, unknown>).certificates = { rotation: { token: "t1", phase: "TrustNew" } };
    await w.look(m);
    await w.look(m);
    expect(w.reads()).toBe(3);
    expect(w.installs).toEqual([]);
    // The planned point is written back and looked at again then, not before.
    expect(m.status?.certificates?.renewAfter).toMatch(/^2027-0[89]-/);
  });

  it("does not repeat a renewal whose `up` re-issued nothing", async () => {
    const w = world(1);
    const m = w.all[0];
    const first = w.look(m);
    await settle();
    w.installs[0].finish();
    await first;
    // The stack reported the same certificates (status unchanged): no second `up`.
    expect(await w.look(m)).toEqual({ recheckAfterMs: 3_600_000 });
    expect(w.installs).toHaveLength(1);
    expect(w.conditions.get("w0")).toEqual([expect.objectContaining({ reason: "RenewalIneffective" })]);
  });
});
