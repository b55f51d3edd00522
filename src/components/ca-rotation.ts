/**
 * What a Cluster's stack deploys at each step of a CA rotation (docs/operations.md, "Rotating
 * CAs"). The operator passes the step as `CaRotationInput` (from status.certificates.rotation,
 * src/controllers/cluster/ca-rotation-machine.ts); this file turns it into which CA generation
 * signs what and which generations each trust bundle lists. The cluster CA and the front-proxy CA
 * rotate together; the etcd CA rotates in the same rotation in three steps of its own (below).
 *
 * Two phases, after Gardener's GEP-18: a certificate may only be issued by a CA that everyone who
 * checks it already trusts.
 * - Phase 1 (`trusting`): generation G joins every bundle next to G-1. Certificates checked by the
 *   apiserver (admin, controller-manager, scheduler, and the kubelets' client certificates,
 *   via the CA Secret) are issued by G: the apiserver trusts G in the same update, and the
 *   kubeconfigs holding them are written only after its rollout. Certificates checked by someone
 *   who may not trust G yet keep G-1: the apiserver's serving certificate (every client's old
 *   kubeconfig), its kubelet client (kubelets' --client-ca-file) and its front-proxy client
 *   (aggregated apiservers).
 * - Phase 2 (after every Machine trusts the bundle): G issues everything, G-1 leaves the bundles.
 *
 * The service-account key follows: in phase 1 key G verifies next to G-1 but G-1 still signs (an
 * apiserver Pod of the old revision could not verify a token of G during the rollout); in phase 2
 * G signs and G-1 still verifies (`previousServiceAccountKey`) until the tokens it signed expired,
 * then an update drops it.
 *
 * The etcd CA needs three steps, not two, because etcd's members check each other: a peer
 * certificate is both presented and checked by members. In a roll that both switched the leaves to
 * generation E and dropped E-1, a rolled member (E only) would refuse the peer certificate of a
 * member not yet rolled (E-1), and two such refusals lose quorum. So (`EtcdCaStep`):
 * - `trusting`: E joins every etcd bundle (members' client and peer CA, the apiserver's
 *   `--etcd-cafile`, the backup and membership Jobs); E-1 still signs every etcd certificate;
 * - `switching`: E signs every etcd certificate; E-1 is still trusted, as members not yet rolled
 *   still present its certificates;
 * - `stable`: E alone.
 * The operator takes them at phase 1, phase 2 and one update after phase 2 (`DroppingOldEtcdCa`).
 *
 * User kubeconfigs' certificates come from each entry's own CA (pki.ts, `userCas`), which no
 * rotation touches: their kubeconfigs change only in the CA data they trust the apiserver with.
 *
 * Resource names are stable per generation: `ca` for generation 0 (what every stack has today),
 * `ca-g<N>` after, so a step adds or removes whole generations and never renames one.
 */
import type { Problem } from "../api/v1alpha1";

export interface CaRotationInput {
  /** The newest CA generation; 0 is the first CA of the cluster. */
  readonly generation: number;
  /** Phase 1: generation - 1 is still trusted and still signs what is checked by others than the apiserver. */
  readonly trusting: boolean;
  /** After phase 2: the service-account public key of generation - 1 still verifies tokens. */
  readonly previousServiceAccountKey: boolean;
  /** The etcd CA's generation and step; absent: generation 0, never rotated. */
  readonly etcd?: EtcdCaStep;
}

export const ETCD_CA_STEPS = ["trusting", "switching", "stable"] as const;

/** Where the etcd CA's rotation stands (the three steps above); its generations are its own. */
export interface EtcdCaStep {
  /** The newest etcd CA generation; 0 is the cluster's first etcd CA. */
  readonly generation: number;
  /** `trusting` and `switching` keep generation - 1 in every etcd bundle; `trusting` keeps it signing too. */
  readonly step: (typeof ETCD_CA_STEPS)[number];
}

/** No rotation ever: generation 0 alone. */
export const NO_ROTATION: CaRotationInput = { generation: 0, trusting: false, previousServiceAccountKey: false };

export interface RotationPlan {
  /** The CA generations the stack holds (oldest first). */
  readonly caGenerations: readonly number[];
  /** Issues what the apiserver checks, and what the CA Secret hands to Machines. */
  readonly clientSigner: number;
  /** Issues what others than the apiserver check: serving, kubelet client, front-proxy client. */
  readonly serverSigner: number;
  /** Every trust bundle: the generations it lists, the newest first. */
  readonly trusted: readonly number[];
  /** The service-account keys the stack holds (oldest first); each verifies. */
  readonly serviceAccountKeys: readonly number[];
  readonly serviceAccountSigner: number;
}

export function caRotationProblems(input: unknown, path = "rotation"): Problem[] {
  if (input === undefined) return [];
  if (typeof input !== "object" || input === null) return [{ path, message: "must be an object" }];
  const r = input as Partial<Record<keyof CaRotationInput, unknown>>;
  const problems: Problem[] = [];
  if (typeof r.generation !== "number" || !Number.isInteger(r.generation) || r.generation < 0) {
    problems.push({ path: `${path}.generation`, message: `must be a whole number ≥ 0 (got ${String(r.generation)})` });
  }
  for (const key of ["trusting", "previousServiceAccountKey"] as const) {
    if (typeof r[key] !== "boolean") problems.push({ path: `${path}.${key}`, message: "must be true or false" });
  }
  if ((r.trusting === true || r.previousServiceAccountKey === true) && r.generation === 0) {
    problems.push({ path: `${path}.generation`, message: "generation 0 has no previous generation to trust or keep" });
  }
  if (r.trusting === true && r.previousServiceAccountKey === true) {
    problems.push({ path: `${path}.previousServiceAccountKey`, message: "is for after phase 2; in phase 1 (trusting) the previous key still signs" });
  }
  return [...problems, ...etcdCaStepProblems(r.etcd, `${path}.etcd`)];
}

function etcdCaStepProblems(input: unknown, path: string): Problem[] {
  if (input === undefined) return [];
  if (typeof input !== "object" || input === null) return [{ path, message: "must be an object" }];
  const e = input as Partial<Record<keyof EtcdCaStep, unknown>>;
  const problems: Problem[] = [];
  const wholeGeneration = typeof e.generation === "number" && Number.isInteger(e.generation) && e.generation >= 0;
  if (!wholeGeneration) problems.push({ path: `${path}.generation`, message: `must be a whole number ≥ 0 (got ${String(e.generation)})` });
  if (!(ETCD_CA_STEPS as readonly unknown[]).includes(e.step)) {
    problems.push({ path: `${path}.step`, message: `must be one of ${ETCD_CA_STEPS.join(", ")} (got ${String(e.step)})` });
  } else if (e.step !== "stable" && e.generation === 0) {
    problems.push({ path: `${path}.generation`, message: `generation 0 has no previous etcd CA to keep trusting (step ${e.step})` });
  }
  return problems;
}

export interface EtcdCaPlan {
  /** The etcd CA generations the stack holds (oldest first). */
  readonly caGenerations: readonly number[];
  /** Issues every etcd certificate: members' serving and peer, the apiserver's, the Jobs' clients. */
  readonly signer: number;
  /** Every etcd trust bundle: the generations it lists, the newest first. */
  readonly trusted: readonly number[];
}

export function etcdCaPlan(step: EtcdCaStep | undefined): EtcdCaPlan {
  if (!step || step.step === "stable") {
    const g = step?.generation ?? 0;
    return { caGenerations: [g], signer: g, trusted: [g] };
  }
  const g = step.generation;
  return { caGenerations: [g - 1, g], signer: step.step === "trusting" ? g - 1 : g, trusted: [g, g - 1] };
}

export function rotationPlan(input: CaRotationInput): RotationPlan {
  const g = input.generation;
  if (input.trusting) {
    return { caGenerations: [g - 1, g], clientSigner: g, serverSigner: g - 1, trusted: [g, g - 1], serviceAccountKeys: [g - 1, g], serviceAccountSigner: g - 1 };
  }
  return { caGenerations: [g], clientSigner: g, serverSigner: g, trusted: [g], serviceAccountKeys: input.previousServiceAccountKey ? [g - 1, g] : [g], serviceAccountSigner: g };
}

/** The role (resource name part) of a CA or key of one generation: `base` for 0, `base-g<N>` after. */
export function generationRole(base: string, generation: number): string {
  return generation === 0 ? base : `${base}-g${generation}`;
}

/** One PEM text of several: each ends with a newline, in the given order. */
export function pemBundle(pems: readonly string[]): string {
  return pems.map((p) => (p.endsWith("\n") ? p : `${p}\n`)).join("");
}
