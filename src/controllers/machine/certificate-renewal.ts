/**
 * When a Machine's kubelet certificates are re-issued, as pure functions of its status, the clock
 * and the cluster CA (unit-tested without an engine):
 *
 * - **renewal**: inside the renewal window, which opens at `windowStart` of the certificates'
 *   lifetime; each Machine's point is spread over the next `spread` of it by a stable hash of its
 *   uid, so hosts installed together (same notBefore) do not renew together. Recorded as
 *   `status.certificates.renewAfter`; the `up` then bumps `renewals`, which replaces the keys
 *   (kubelet-certificates.ts), so it re-issues whatever the TLS provider's own early renewal says.
 * - **re-issue**: the CA Secret's signing CA is not the CA that signed a certificate (a CA rotation).
 * - **trust**: the CA Secret's bundle is not the one installed on the host.
 * - **record**: a Machine installed before its stack reported certificates: a plain `up` records them.
 *
 * How many run at once per Cluster is bounded (`maxConcurrentPerCluster`): each one restarts a
 * kubelet. The defaults follow the kubelet's own client rotation (70–90 % of the lifetime).
 */
import { createHash } from "node:crypto";
import type { IssuedCertificate, MachineCertificates } from "../../api/v1alpha1";
import { bundleFingerprint, certificateFingerprint, certificateNotAfter, parseCertificates } from "../../runtime/certificates";

export interface RenewalPolicy {
  /** Fraction of the lifetime at which the renewal window opens. */
  readonly windowStart: number;
  /** Fraction of the lifetime over which Machines' renewal points are spread. */
  readonly spread: number;
  /** Renewals and trust re-installs at once per Cluster; undefined: a tenth of its Machines, at least 1. */
  readonly maxConcurrentPerCluster?: number;
}

export const DEFAULT_RENEWAL_POLICY: RenewalPolicy = { windowStart: 0.7, spread: 0.15 };

/** The policy with its overrides; every problem of them named at once (the operator refuses to start). */
export function renewalPolicy(overrides: Partial<RenewalPolicy> = {}): RenewalPolicy {
  const p = { ...DEFAULT_RENEWAL_POLICY, ...overrides };
  const problems: string[] = [];
  const fraction = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v >= 0 && v < 1;
  if (!fraction(p.windowStart)) problems.push(`windowStart must be a number in [0, 1) (got ${JSON.stringify(p.windowStart)})`);
  if (!fraction(p.spread)) problems.push(`spread must be a number in [0, 1) (got ${JSON.stringify(p.spread)})`);
  if (problems.length === 0 && p.windowStart + p.spread >= 1) problems.push(`windowStart + spread must stay below 1 (the certificates' end); got ${p.windowStart + p.spread}`);
  if (p.maxConcurrentPerCluster !== undefined && !(Number.isInteger(p.maxConcurrentPerCluster) && p.maxConcurrentPerCluster >= 1)) {
    problems.push(`maxConcurrentPerCluster must be an integer ≥ 1 (got ${JSON.stringify(p.maxConcurrentPerCluster)})`);
  }
  if (problems.length) throw new Error(`worker defaults certificateRenewal: ${problems.join("; ")}`);
  return p;
}

/** How many of a Cluster's `machines` may renew at once. */
export function renewalConcurrency(policy: RenewalPolicy, machines: number): number {
  return policy.maxConcurrentPerCluster ?? Math.max(1, Math.floor(machines / 10));
}

/** A stable point in [0, 1) for a Machine: the first 48 bits of sha256(uid). */
export function spreadPoint(uid: string): number {
  return createHash("sha256").update(uid).digest().readUIntBE(0, 6) / 2 ** 48;
}

/** The PEMs the Machine's stack reports (worker-node.ts, WorkerCertificates). */
export interface ReportedCertificates {
  readonly kubeletClient?: { readonly certPem: string; readonly caCertPem: string };
  readonly kubeletServing?: { readonly certPem: string; readonly caCertPem: string };
  readonly trustBundle?: string;
}

/** Status facts of the reported PEMs: validity and the fingerprint of the signing CA, never a PEM. */
export function observedCertificates(reported: ReportedCertificates | undefined, what: string): Pick<MachineCertificates, "kubeletClient" | "kubeletServing" | "trustBundle"> {
  if (!reported) return {};
  const issued = (c: { certPem: string; caCertPem: string } | undefined, role: string): IssuedCertificate | undefined => {
    if (!c) return undefined;
    const [cert] = parseCertificates(c.certPem, `${what}: the kubelet ${role} certificate`);
    return {
      notBefore: new Date(cert.validFrom).toISOString().replace(/\.\d{3}Z$/, "Z"),
      notAfter: certificateNotAfter(c.certPem, `${what}: the kubelet ${role} certificate`),
      issuer: certificateFingerprint(c.caCertPem, `${what}: the CA of the kubelet ${role} certificate`),
    };
  };
  const client = issued(reported.kubeletClient, "client");
  const serving = issued(reported.kubeletServing, "serving");
  return {
    ...(client ? { kubeletClient: client } : {}),
    ...(serving ? { kubeletServing: serving } : {}),
    ...(reported.trustBundle ? { trustBundle: bundleFingerprint(reported.trustBundle, `${what}: the trust bundle`) } : {}),
  };
}

/**
 * The planned renewal: the earliest of the certificates' lifetimes, at windowStart plus the
 * Machine's share of the spread. Undefined with no certificate recorded.
 */
export function renewAfter(certs: MachineCertificates | undefined, policy: RenewalPolicy, uid: string): string | undefined {
  const planned = [certs?.kubeletClient, certs?.kubeletServing]
    .filter((c): c is IssuedCertificate => c !== undefined)
    .map((c) => {
      const end = Date.parse(c.notAfter);
      // Without notBefore (written by another version), the default validity of a year.
      const start = c.notBefore ? Date.parse(c.notBefore) : end - 8760 * 3_600_000;
      return start + (end - start) * (policy.windowStart + policy.spread * spreadPoint(uid));
    });
  if (planned.length === 0) return undefined;
  return new Date(Math.min(...planned)).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The cluster CA as the CA Secret holds it now (from the Machine's context). */
export interface ClusterTrust {
  readonly caCertificate: string;
  readonly trustBundle: string;
}

export type CertificateAction =
  | { readonly action: "none"; readonly renewAfter?: string }
  /** An `up` that bumps `renewals`: new keys, new certificates. */
  | { readonly action: "renew" | "reissue"; readonly reason: string }
  /** A plain `up`: the trust bundle re-installed, or the certificates recorded. */
  | { readonly action: "trust" | "record"; readonly reason: string };

/**
 * What the Machine's certificates need now. `trust` is the CA Secret's content when it was read in
 * this look (undefined: only the clock is looked at); a CA change wins over the clock.
 */
export function certificateAction(args: { certs: MachineCertificates | undefined; now: Date; policy: RenewalPolicy; uid: string; trust?: ClusterTrust }): CertificateAction {
  const { certs, trust } = args;
  const recorded = certs?.kubeletClient !== undefined || certs?.kubeletServing !== undefined;
  if (!recorded) {
    // Only with the CA read (so the `up` has what it needs) and never in a loop: a stack that
    // reports no certificate (a bootstrap token) leaves trustBundle alone in status.
    if (trust && certs?.trustBundle === undefined) return { action: "record", reason: "the kubelet's certificates were issued before the Machine's stack reported them: recording them" };
  } else if (trust) {
    const signing = certificateFingerprint(trust.caCertificate, "the cluster CA");
    const stale = (["kubeletClient", "kubeletServing"] as const).filter((k) => certs?.[k] && certs[k]!.issuer !== signing);
    if (stale.length) return { action: "reissue", reason: `the cluster CA is now ${signing.slice(0, 19)}…; ${stale.join(" and ")} signed by ${certs![stale[0]]!.issuer.slice(0, 19)}…` };
  }
  if (trust && certs?.trustBundle !== undefined) {
    const bundle = bundleFingerprint(trust.trustBundle, "the cluster trust bundle");
    if (bundle !== certs.trustBundle) return { action: "trust", reason: `the cluster trust bundle is now ${bundle.slice(0, 19)}…, the host trusts ${certs.trustBundle.slice(0, 19)}…` };
  }
  const at = renewAfter(certs, args.policy, args.uid);
  if (at !== undefined && args.now.getTime() >= Date.parse(at)) return { action: "renew", reason: `the kubelet's certificates reached their planned renewal (${at})` };
  return { action: "none", renewAfter: at };
}
