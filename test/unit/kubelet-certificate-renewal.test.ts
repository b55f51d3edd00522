/**
 * When a Machine's kubelet certificates are re-issued (certificate-renewal.ts): the spread renewal
 * point, the CA and trust bundle changes of a CA rotation, and the facts read from what the stack
 * reports, over real certificates (test-pki.ts). The clock is a parameter; nothing waits.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { MachineCertificates } from "../../src/api/v1alpha1";
import {
  certificateAction,
  DEFAULT_RENEWAL_POLICY,
  observedCertificates,
  renewalConcurrency,
  renewalPolicy,
  renewAfter,
  spreadPoint,
  type ClusterTrust,
} from "../../src/controllers/machine/certificate-renewal";
import { bundleFingerprint, certificateFingerprint } from "../../src/runtime/certificates";
import { testCa, type TestCa } from "../support/test-pki";

const HOUR = 3_600_000;
const ISSUED = new Date("2026-12-01T00:00:00Z");
const YEAR_END = new Date(ISSUED.getTime() + 8760 * HOUR);
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

let oldCa: TestCa;
let newCa: TestCa;
beforeAll(async () => {
  [oldCa, newCa] = await Promise.all([testCa("kubernetes-ca"), testCa("kubernetes-ca-g1")]);
});

/** status.certificates as the stack reports them after an `up` with this CA and bundle. */
async function issuedBy(ca: TestCa, bundle: string, notBefore = ISSUED, notAfter = YEAR_END): Promise<MachineCertificates> {
  const pem = await ca.leaf("system:node:worker-0001", notBefore, notAfter);
  return observedCertificates({ kubeletClient: { certPem: pem, caCertPem: ca.pem }, kubeletServing: { certPem: pem, caCertPem: ca.pem }, trustBundle: bundle }, "test");
}

describe("renewalPolicy", () => {
  it("defaults to the kubelet's own window (from 70 % of the lifetime, spread over 15 %) and names every bad override", () => {
    expect(renewalPolicy()).toEqual(DEFAULT_RENEWAL_POLICY);
    expect(renewalPolicy({ windowStart: 0.5, spread: 0.2, maxConcurrentPerCluster: 3 })).toMatchObject({ windowStart: 0.5, spread: 0.2, maxConcurrentPerCluster: 3 });
    expect(() => renewalPolicy({ windowStart: 1.2, spread: -1, maxConcurrentPerCluster: 0 })).toThrow(
      /windowStart must be a number in \[0, 1\) \(got 1.2\); spread must be a number in \[0, 1\) \(got -1\); maxConcurrentPerCluster must be an integer ≥ 1 \(got 0\)/,
    );
    expect(() => renewalPolicy({ windowStart: 0.9, spread: 0.1 })).toThrow(/windowStart \+ spread must stay below 1/);
  });

  it("lets a tenth of a Cluster's Machines renew at once unless told, at least one", () => {
    expect(renewalConcurrency(DEFAULT_RENEWAL_POLICY, 3)).toBe(1);
    expect(renewalConcurrency(DEFAULT_RENEWAL_POLICY, 250)).toBe(25);
    expect(renewalConcurrency({ ...DEFAULT_RENEWAL_POLICY, maxConcurrentPerCluster: 2 }, 250)).toBe(2);
  });
});

describe("the planned renewal", () => {
  it("falls inside the window at the Machine's own point, the same on every look", async () => {
    const certs = await issuedBy(oldCa, oldCa.pem);
    const at = Date.parse(renewAfter(certs, DEFAULT_RENEWAL_POLICY, "uid-a")!);
    const life = YEAR_END.getTime() - ISSUED.getTime();
    expect(at).toBeGreaterThanOrEqual(ISSUED.getTime() + 0.7 * life - 1000);
    expect(at).toBeLessThan(ISSUED.getTime() + 0.85 * life);
    expect(renewAfter(certs, DEFAULT_RENEWAL_POLICY, "uid-a")).toBe(iso(at));
  });

  it("spreads hosts installed together over the window: no hour of it holds more than a few of a thousand", () => {
    const certs: MachineCertificates = { kubeletClient: { notBefore: iso(ISSUED.getTime()), notAfter: iso(YEAR_END.getTime()), issuer: `sha256:${"0".repeat(64)}` } };
    const points = Array.from({ length: 1000 }, (_, i) => Date.parse(renewAfter(certs, DEFAULT_RENEWAL_POLICY, `5f0c1d2e-0000-4000-8000-${String(i).padStart(12, "0")}`)!));
    // The spread is 15 % of a year (1314 h): a thousand hosts, spread evenly, are under one per hour.
    const perHour = new Map<number, number>();
    for (const p of points) perHour.set(Math.floor(p / HOUR), (perHour.get(Math.floor(p / HOUR)) ?? 0) + 1);
    expect(Math.max(...perHour.values())).toBeLessThanOrEqual(5);
    expect(Math.max(...points) - Math.min(...points)).toBeGreaterThan(0.9 * 1314 * HOUR);
    for (const uid of ["a", "b", "c"]) {
      expect(spreadPoint(uid)).toBeGreaterThanOrEqual(0);
      expect(spreadPoint(uid)).toBeLessThan(1);
    }
  });

  it("is the earliest of the client and serving certificates' points", () => {
    const issuer = `sha256:${"1".repeat(64)}`;
    const early = { notBefore: iso(ISSUED.getTime()), notAfter: iso(ISSUED.getTime() + 100 * HOUR), issuer };
    const late = { notBefore: iso(ISSUED.getTime()), notAfter: iso(YEAR_END.getTime()), issuer };
    expect(renewAfter({ kubeletClient: late, kubeletServing: early }, DEFAULT_RENEWAL_POLICY, "u")).toBe(renewAfter({ kubeletServing: early }, DEFAULT_RENEWAL_POLICY, "u"));
    expect(renewAfter({ trustBundle: `sha256:${"2".repeat(64)}` }, DEFAULT_RENEWAL_POLICY, "u")).toBeUndefined();
  });
});

describe("observedCertificates", () => {
  it("reads validity and the signing CA's fingerprint from the reported PEMs, and keeps no PEM", async () => {
    const certs = await issuedBy(oldCa, `${oldCa.pem}${newCa.pem}`);
    expect(certs.kubeletClient).toEqual({ notBefore: "2026-12-01T00:00:00Z", notAfter: iso(YEAR_END.getTime()), issuer: certificateFingerprint(oldCa.pem) });
    expect(certs.trustBundle).toBe(bundleFingerprint(`${newCa.pem}${oldCa.pem}`));
    expect(JSON.stringify(certs)).not.toContain("BEGIN");
    expect(observedCertificates(undefined, "test")).toEqual({});
  });

  it("refuses a report that is no certificate, naming the Machine and never quoting it", () => {
    const bad = "-----BEGIN CERTIFICATE-----\nbm90LWEtY2VydA==\n-----END CERTIFICATE-----\n";
    expect(() => observedCertificates({ kubeletClient: { certPem: bad, caCertPem: bad } }, "Machine fleet/w0")).toThrow(/^Machine fleet\/w0: the kubelet client certificate: certificate 1 of 1 is not a valid X.509 certificate$/);
  });
});

describe("certificateAction", () => {
  const policy = DEFAULT_RENEWAL_POLICY;
  const trust = (signing: TestCa, ...bundle: TestCa[]): ClusterTrust => ({ caCertificate: signing.pem, trustBundle: (bundle.length ? bundle : [signing]).map((c) => c.pem).join("") });

  it("does nothing before the planned point and renews from it, with or without the CA read", async () => {
    const certs = await issuedBy(oldCa, oldCa.pem);
    const at = Date.parse(renewAfter(certs, policy, "u")!);
    expect(certificateAction({ certs, now: new Date(at - 1000), policy, uid: "u", trust: trust(oldCa) })).toEqual({ action: "none", renewAfter: iso(at) });
    expect(certificateAction({ certs, now: new Date(at), policy, uid: "u" })).toMatchObject({ action: "renew" });
    expect(certificateAction({ certs, now: new Date(at + 1000), policy, uid: "u", trust: trust(oldCa) })).toMatchObject({ action: "renew" });
  });

  it("re-issues as soon as the CA Secret's signing CA is not the one that signed them, before the clock says so", async () => {
    const certs = await issuedBy(oldCa, oldCa.pem);
    const decision = certificateAction({ certs, now: ISSUED, policy, uid: "u", trust: trust(newCa, oldCa, newCa) });
    expect(decision).toMatchObject({ action: "reissue" });
    expect((decision as { reason: string }).reason).toMatch(/kubeletClient and kubeletServing signed by sha256:/);
    // Without the CA read nothing is known of it: only the clock.
    expect(certificateAction({ certs, now: ISSUED, policy, uid: "u" })).toMatchObject({ action: "none" });
  });

  it("re-installs the trust bundle when only the bundle changed (a rotation's last phase drops the old CA)", async () => {
    const certs = await issuedBy(newCa, `${oldCa.pem}${newCa.pem}`);
    expect(certificateAction({ certs, now: ISSUED, policy, uid: "u", trust: trust(newCa) })).toMatchObject({ action: "trust" });
    expect(certificateAction({ certs, now: ISSUED, policy, uid: "u", trust: trust(newCa, newCa, oldCa) })).toMatchObject({ action: "none" });
  });

  it("records the certificates of a Machine installed before its stack reported them, only with the CA read", () => {
    expect(certificateAction({ certs: undefined, now: ISSUED, policy, uid: "u", trust: trust(oldCa) })).toMatchObject({ action: "record" });
    expect(certificateAction({ certs: undefined, now: ISSUED, policy, uid: "u" })).toEqual({ action: "none", renewAfter: undefined });
    // A stack that reports a bundle but no certificate (a bootstrap token) is not recorded again and again.
    expect(certificateAction({ certs: { trustBundle: bundleFingerprint(oldCa.pem) }, now: ISSUED, policy, uid: "u", trust: trust(oldCa) })).toMatchObject({ action: "none" });
  });

  it("takes a Machine through a two-phase CA rotation with one `up` per change, ending where the Cluster side waits for it", async () => {
    // The CA Secret at each step of a rotation (docs/operations.md): A alone; B signs, both trusted; B alone.
    const steps: ClusterTrust[] = [trust(oldCa), trust(newCa, oldCa, newCa), trust(newCa)];
    let certs = await issuedBy(oldCa, oldCa.pem);
    const ups: string[] = [];
    for (const step of steps) {
      for (let look = 0; look < 3; look++) {
        const decision = certificateAction({ certs, now: ISSUED, policy, uid: "u", trust: step });
        if (decision.action === "none") break;
        ups.push(decision.action);
        // The `up` installs what the context held: certificates signed by its CA, its bundle.
        certs = await issuedBy(step.caCertificate === oldCa.pem ? oldCa : newCa, step.trustBundle);
      }
      // What the Cluster side compares (the fixed status fields of docs/operations.md).
      expect(certs.trustBundle).toBe(bundleFingerprint(step.trustBundle));
      expect(certs.kubeletClient?.issuer).toBe(certificateFingerprint(step.caCertificate));
      expect(certs.kubeletServing?.issuer).toBe(certificateFingerprint(step.caCertificate));
    }
    expect(ups).toEqual(["reissue", "trust"]);
  });
});
