/**
 * The CA rotation of a Cluster, between the pure phase machine (ca-rotation-machine.ts) and the
 * reconciler: what to write before an update (the next phase, the CertificateRotation condition,
 * an Event per phase), and `status.certificates` after a successful one (each authority's
 * fingerprint and expiry from the stack's outputs, the phase moved on).
 */
import { createHash, createPublicKey } from "node:crypto";
import {
  CERTIFICATE_ROTATION_CONDITION,
  ROTATE_CA_ANNOTATION,
  type AuthorityStatus,
  type CertificatesStatus,
  type ClusterObject,
  type ClusterStatus,
  type MachineCertificateReport,
  type RotationStatus,
} from "../../api/v1alpha1";
import type { CertificateAuthorityPems } from "../../components/control-plane-outputs";
import { etcdDataOutlivesPods } from "../../components/etcd";
import { bundleFingerprint, certificateFingerprint, certificateNotAfter } from "../../runtime/certificates";
import type { ConditionInput } from "../../runtime/conditions";
import { afterUpdate, decideRotation, serviceAccountKeyRetentionMs } from "./ca-rotation-machine";

export interface CaRotationDeps {
  readonly now: () => Date;
  readonly status: (cluster: ClusterObject, fields: Partial<ClusterStatus>, conditions: ConditionInput[]) => Promise<void>;
  readonly event: (cluster: ClusterObject, type: "Normal" | "Warning", reason: string, message: string) => Promise<void>;
  /** The Machines of a Cluster with their certificate reports; default none. */
  readonly machines?: (namespace: string, cluster: string) => readonly MachineCertificateReport[];
}

/** What the reconciler does next for the rotation: run the update now, or look again later. */
export interface RotationCheck {
  readonly update: boolean;
  readonly requeueAfter?: number;
}

/** The condition of each phase; False only once the rotation completed. */
function phaseCondition(rotation: RotationStatus, message: string): ConditionInput {
  const done = rotation.phase === "Completed";
  return { type: CERTIFICATE_ROTATION_CONDITION, status: done ? "False" : "True", reason: rotation.phase, message };
}

/**
 * Decides the rotation's next step for `cluster` and writes what comes before an update. Called
 * by the reconciler once the spec is known valid and the Cluster not paused or being deleted.
 */
export async function checkRotation(d: CaRotationDeps, cluster: ClusterObject): Promise<RotationCheck> {
  const { namespace, name } = cluster.metadata;
  const decision = decideRotation({
    token: cluster.metadata.annotations?.[ROTATE_CA_ANNOTATION],
    certificates: cluster.status?.certificates,
    provisioned: cluster.status?.version !== undefined,
    machines: d.machines?.(namespace, name) ?? [],
    now: d.now(),
    serviceAccountKeyRetentionMs: serviceAccountKeyRetentionMs(cluster.spec),
    etcdDataOutlivesPods: etcdDataOutlivesPods(cluster.spec.etcd.storage),
  });
  const before = cluster.status?.conditions?.find((c) => c.type === CERTIFICATE_ROTATION_CONDITION);
  switch (decision.kind) {
    case "update":
      return { update: true };
    case "step": {
      const certificates: CertificatesStatus = { ...cluster.status?.certificates, rotation: decision.rotation };
      await d.status(cluster, { certificates }, [phaseCondition(decision.rotation, decision.message)]);
      await d.event(cluster, "Normal", `Rotation${decision.rotation.phase}`, decision.message);
      return { update: true };
    }
    case "wait": {
      const rotation = cluster.status!.certificates!.rotation!;
      if (before?.message !== decision.message) await d.status(cluster, {}, [phaseCondition(rotation, decision.message)]);
      return { update: false, requeueAfter: decision.requeueAfterMs };
    }
    case "none":
      // A refused token is told once: the condition keeps the message, the Event follows its change.
      if (decision.note && before?.message !== decision.note) {
        const rotation = cluster.status?.certificates?.rotation;
        await d.status(cluster, {}, [{ type: CERTIFICATE_ROTATION_CONDITION, status: rotation && rotation.phase !== "Completed" ? "True" : "False", reason: "RotationRefused", message: decision.note }]);
        await d.event(cluster, "Warning", "RotationRefused", decision.note);
      }
      return { update: false };
  }
}

/**
 * `status.certificates` once an update of `applied` (the rotation in status when it started)
 * succeeded, with the condition and Event of a phase that moved on. The authorities come from the
 * stack's outputs; without them none are written, and phase 2 waits.
 */
export function certificatesAfterUpdate(
  cluster: ClusterObject,
  applied: RotationStatus | undefined,
  pems: CertificateAuthorityPems | undefined,
  now: Date,
): { certificates: CertificatesStatus; condition?: ConditionInput; event?: { reason: string; message: string } } {
  const rotation = afterUpdate(applied, now, serviceAccountKeyRetentionMs(cluster.spec));
  const authorities = pems ? readAuthorities(pems) : undefined;
  // Never the previous authorities: after a step they would name the old CA and bundle, and the
  // Machines' gate would let phase 2 through on stale reports.
  const certificates: CertificatesStatus = {
    ...(authorities ? { authorities: authorities.list, trustBundle: authorities.trustBundle } : {}),
    ...(rotation ? { rotation } : {}),
  };
  if (!rotation || rotation.phase === applied?.phase) return { certificates };
  const message = phaseMessage(rotation);
  return { certificates, condition: phaseCondition(rotation, message), event: { reason: `Rotation${rotation.phase}`, message } };
}

function phaseMessage(rotation: RotationStatus): string {
  switch (rotation.phase) {
    case "WaitingForMachines":
      return `phase 1 applied: every trust bundle holds CA generations ${rotation.generation - 1} and ${rotation.generation}; waiting for every Machine to trust them`;
    case "DroppingOldEtcdCa":
      return rotation.etcdGeneration === undefined || rotation.etcdCaKept
        ? `phase 2 applied: CA generation ${rotation.generation} alone is trusted${rotation.etcdCaKept ? " (the etcd CA is kept)" : ""}`
        : `phase 2 applied: CA generation ${rotation.generation} alone is trusted, and etcd CA generation ${rotation.etcdGeneration} signs every etcd certificate; dropping etcd CA generation ${rotation.etcdGeneration - 1}`;
    case "KeepingOldServiceAccountKey": {
      const etcd = rotation.etcdGeneration === undefined || rotation.etcdCaKept ? "" : ` and etcd CA generation ${rotation.etcdGeneration}`;
      return `phase 2 applied: CA generation ${rotation.generation}${etcd} alone trusted; the old service-account public key verifies tokens until ${rotation.serviceAccountKeyRetiresAt}`;
    }
    default:
      return `rotation to CA generation ${rotation.generation} completed (started ${rotation.startedAt})`;
  }
}

/**
 * The authorities, or undefined when an output cannot be read: the update did succeed, and failing
 * the reconcile here would only run it again. Phase 2 then waits (no fingerprint to compare with).
 */
function readAuthorities(pems: CertificateAuthorityPems): ReturnType<typeof authoritiesOf> | undefined {
  try {
    return authoritiesOf(pems);
  } catch {
    return undefined;
  }
}

/** Each authority's fingerprint (and a CA's expiry), and the cluster bundle's fingerprint. */
export function authoritiesOf(p: CertificateAuthorityPems): { list: AuthorityStatus[]; trustBundle: string } {
  const ca = (name: AuthorityStatus["name"], pem: string): AuthorityStatus => ({
    name,
    fingerprint: certificateFingerprint(pem, `the ${name} CA`),
    notAfter: certificateNotAfter(pem, `the ${name} CA`),
  });
  return {
    list: [ca("cluster", p.cluster), ca("etcd", p.etcd), ca("front-proxy", p.frontProxy), { name: "service-account", fingerprint: publicKeyFingerprint(p.serviceAccount) }],
    trustBundle: bundleFingerprint(p.clusterBundle, "the cluster trust bundle"),
  };
}

/** `sha256:<hex>` of a public key's SubjectPublicKeyInfo DER. */
export function publicKeyFingerprint(pem: string): string {
  let der: Buffer;
  try {
    der = createPublicKey(pem).export({ type: "spki", format: "der" });
  } catch {
    throw new Error("the service-account public key is not a valid PEM public key");
  }
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}
