/**
 * The certificate fields of a Cluster's status (`status.certificates`) and the fixed names of the
 * CA rotation: the annotation that starts one, the condition, the phases. The phase machine is in
 * src/controllers/cluster/ca-rotation-machine.ts; what each phase deploys in
 * src/components/ca-rotation.ts; docs/operations.md ("Rotating CAs") is the runbook.
 */
import { Type, type Static } from "@sinclair/typebox";
import { StringEnum } from "./common";

/** Annotation on a Cluster: a value different from `status.certificates.rotation.token` starts a rotation. */
export const ROTATE_CA_ANNOTATION = "kubeonkube.io/rotate-ca";
/**
 * The key of the CA Secret (status.caSecretRef) that holds the cluster trust bundle: the signing
 * CA and, during a rotation, the other one. Written by the Cluster's stack, read by Machines.
 */
export const CA_BUNDLE_KEY = "ca-bundle.crt";
/** Condition type on a rotated Cluster: True while a rotation runs, False once it completed. */
export const CERTIFICATE_ROTATION_CONDITION = "CertificateRotation";

/**
 * The phases of a rotation, in order.
 * - Preparing: phase 1 is being applied: the new cluster, front-proxy and etcd CAs join every
 *   trust bundle, client certificates of the apiserver are re-issued from the new cluster and
 *   front-proxy CAs, the new service-account key verifies.
 * - WaitingForMachines: phase 1 is applied; every Machine must report the new bundle and a
 *   kubelet certificate of the new CA.
 * - Completing: phase 2 is being applied: servers switch to the new CA, the old cluster and
 *   front-proxy CAs leave the bundles, the new service-account key signs, every etcd
 *   certificate is re-issued from the new etcd CA (the old one is still trusted: members not yet
 *   rolled present it).
 * - DroppingOldEtcdCa: the update that removes the old etcd CA from etcd's bundles is being
 *   applied (every etcd certificate is of the new CA since Completing).
 * - KeepingOldServiceAccountKey: the old service-account public key still verifies tokens until
 *   `serviceAccountKeyRetiresAt`.
 * - DroppingOldServiceAccountKey: the update that drops it is being applied.
 * - Completed.
 */
export const ROTATION_PHASES = [
  "Preparing",
  "WaitingForMachines",
  "Completing",
  "DroppingOldEtcdCa",
  "KeepingOldServiceAccountKey",
  "DroppingOldServiceAccountKey",
  "Completed",
] as const;
export const RotationPhase = StringEnum(ROTATION_PHASES);
export type RotationPhase = Static<typeof RotationPhase>;

export const AUTHORITY_NAMES = ["cluster", "etcd", "front-proxy", "service-account"] as const;

const FINGERPRINT = { pattern: "^sha256:[0-9a-f]{64}$", maxLength: 71 } as const;

export const AuthorityStatus = Type.Object(
  {
    name: StringEnum(AUTHORITY_NAMES),
    fingerprint: Type.String({ ...FINGERPRINT, description: "sha256 of the signing CA certificate's DER (of the public key's DER for service-account)." }),
    notAfter: Type.Optional(Type.String({ format: "date-time", description: "The CA certificate's expiry; none for the service-account key." })),
  },
  { additionalProperties: false },
);
export type AuthorityStatus = Static<typeof AuthorityStatus>;

export const RotationStatus = Type.Object(
  {
    token: Type.String({ maxLength: 256, description: "The last kubeonkube.io/rotate-ca value handled." }),
    phase: RotationPhase,
    generation: Type.Integer({ minimum: 1, description: "The CA generation this rotation introduces (0 is the first CA)." }),
    etcdGeneration: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: "The etcd CA generation this rotation ends with (0 is the first etcd CA). Absent on a rotation begun before etcd's CA could rotate: generation 0, left alone.",
      }),
    ),
    etcdCaKept: Type.Optional(
      Type.Boolean({
        description: "This rotation leaves the etcd CA as it was: etcd's data lives in emptyDir volumes, which the rolls of its members would empty.",
      }),
    ),
    startedAt: Type.String({ format: "date-time" }),
    phaseStartedAt: Type.Optional(Type.String({ format: "date-time" })),
    serviceAccountKeyRetiresAt: Type.Optional(Type.String({ format: "date-time", description: "When the old service-account public key stops verifying tokens." })),
    message: Type.Optional(Type.String({ maxLength: 2048 })),
  },
  { additionalProperties: false },
);
export type RotationStatus = Static<typeof RotationStatus>;

export const CertificatesStatus = Type.Object(
  {
    authorities: Type.Optional(Type.Array(AuthorityStatus, { maxItems: 8, description: "The signing authority of each kind." })),
    trustBundle: Type.Optional(Type.String({ ...FINGERPRINT, description: "bundleFingerprint of the cluster trust bundle (the CA Secret's ca-bundle.crt) the last update wrote." })),
    rotation: Type.Optional(RotationStatus),
  },
  { additionalProperties: false },
);
export type CertificatesStatus = Static<typeof CertificatesStatus>;

/**
 * What the rotation reads of a Machine (the Machine's `status.certificates`, written by the
 * machine controller): the issuers of its kubelet certificates and the bundle its host trusts.
 */
export interface MachineCertificateReport {
  readonly name: string;
  readonly deleting?: boolean;
  readonly certificates?: {
    readonly kubeletClient?: { readonly issuer?: string };
    readonly kubeletServing?: { readonly issuer?: string };
    readonly trustBundle?: string;
  };
}
