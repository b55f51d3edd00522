/**
 * What a Cluster's stack deploys at each step of a CA rotation (docs/operations.md, "Rotating
 * CAs"). The operator passes the step as `CaRotationInput` (from status.certificates.rotation,
 * src/controllers/cluster/ca-rotation-machine.ts); this file turns it into which CA generation
 * signs what and which generations each trust bundle lists. The cluster CA and the front-proxy CA
 * rotate together; the etcd CA does not rotate yet (its members would need the same two phases
 * between peers, see the runbook).
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
  return problems;
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
