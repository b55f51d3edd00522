/**
 * The `Machine` kind: one worker host reached over SSH. Its spec is also the argument of the
 * `WorkerNode` component.
 */
import { Type, type Static } from "@sinclair/typebox";
import { Condition, LastOperation, LocalObjectReference, StringEnum, Taint } from "./common";
import { WorkerPackages } from "./package-version";
import { HOST_KEY_PATTERN, HOSTNAME_PATTERN, MAX_HOST_KEY_LENGTH, MAX_HOSTNAME_LENGTH, POSIX_USER_PATTERN } from "./patterns";

export const SshSpec = Type.Object(
  {
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, default: 22 })),
    user: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 32,
        pattern: POSIX_USER_PATTERN,
        default: "root",
        description:
          "A POSIX user name (lowercase, digits, _ and -). A user other than root runs every host script through `sudo -n`, so it needs password-less sudo (a NOPASSWD rule); without it every step fails at once saying so.",
      }),
    ),
    credentialsSecretRef: Type.Optional(
      Type.Object(
        { name: Type.String({ minLength: 1 }) },
        {
          additionalProperties: false,
          description: "Secret with key `privateKey` or `password`. Required on a Machine resource; the WorkerNode component takes `credentials` instead.",
        },
      ),
    ),
    hostKey: Type.Optional(
      Type.String({
        pattern: HOST_KEY_PATTERN,
        maxLength: MAX_HOST_KEY_LENGTH,
        description: 'The host\'s public key as one known_hosts key, e.g. "ssh-ed25519 AAAA...": one line, no marker. Pinned: a host presenting another key is refused.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type SshSpec = Static<typeof SshSpec>;

export const MachineSpec = Type.Object(
  {
    clusterRef: LocalObjectReference,
    ip: Type.String({
      maxLength: 45,
      description: "Address the SSH connection goes to; also the node's InternalIP. Unicast, and inside the admin policy's SSH target ranges.",
    }),
    hostname: Type.String({
      pattern: HOSTNAME_PATTERN,
      maxLength: MAX_HOSTNAME_LENGTH,
      description: "The node name (lowercase DNS subdomain); the kubelet certificate is issued to system:node:<hostname>.",
    }),
    idc: Type.Optional(Type.String({ maxLength: 63, description: "Data center / zone; becomes the node label topology.kubernetes.io/zone." })),
    labels: Type.Optional(
      Type.Record(Type.String(), Type.String({ maxLength: 63 }), { maxProperties: 64, description: "Node labels; also what a rollout's canary selector matches." }),
    ),
    taints: Type.Optional(Type.Array(Taint, { maxItems: 32 })),
    ssh: SshSpec,
    packageVersionRef: Type.Optional(
      Type.Object(
        { name: Type.String({ minLength: 1 }) },
        { additionalProperties: false, description: "A ClusterPackageVersion; mutually exclusive with `packages`." },
      ),
    ),
    packages: Type.Optional(WorkerPackages),
    paused: Type.Optional(Type.Boolean({ description: "The operator makes no change while true." })),
  },
  { additionalProperties: false },
);
export type MachineSpec = Static<typeof MachineSpec>;

export const MachinePhase = StringEnum([
  "Pending",
  "Installing",
  "Ready",
  "Upgrading",
  "NotReady",
  "Remediating",
  "Failed",
  "Deleting",
] as const);
export type MachinePhase = Static<typeof MachinePhase>;

export const ObservedVersions = Type.Object(
  {
    containerd: Type.Optional(Type.String()),
    kubelet: Type.Optional(Type.String()),
    cni: Type.Optional(Type.String()),
    runc: Type.Optional(Type.String()),
  },
  { additionalProperties: false, description: "Versions read back from the host, not copied from the spec." },
);
export type ObservedVersions = Static<typeof ObservedVersions>;

const FINGERPRINT_PATTERN = "^sha256:[0-9a-f]{64}$";

export const IssuedCertificate = Type.Object(
  {
    notBefore: Type.Optional(Type.String({ format: "date-time", description: "The start of the certificate's validity (the renewal window is a fraction of the lifetime)." })),
    notAfter: Type.String({ format: "date-time", description: "The end of the certificate's validity." }),
    issuer: Type.String({ pattern: FINGERPRINT_PATTERN, description: "sha256 fingerprint of the CA certificate that signed it (the same string as the Cluster's status.certificates.authorities[].fingerprint)." }),
  },
  { additionalProperties: false },
);
export type IssuedCertificate = Static<typeof IssuedCertificate>;

export const MachineCertificates = Type.Object(
  {
    kubeletClient: Type.Optional(IssuedCertificate),
    kubeletServing: Type.Optional(IssuedCertificate),
    trustBundle: Type.Optional(
      Type.String({
        pattern: FINGERPRINT_PATTERN,
        description: "sha256 fingerprint of the trust bundle installed on the host (the kubelet kubeconfig's CA data and its --client-ca-file): the sorted fingerprints of its CAs.",
      }),
    ),
    renewAfter: Type.Optional(Type.String({ format: "date-time", description: "When the `up` that renews the kubelet's certificates is planned: a point of the renewal window spread by the Machine's uid." })),
    renewals: Type.Optional(Type.Integer({ minimum: 0, description: "Renewals run so far; an input of the install (a new value re-issues both certificates and their keys)." })),
  },
  { additionalProperties: false, description: "The kubelet's certificates as the Machine's stack issued them (read from its outputs, never a key) and their planned renewal." },
);
export type MachineCertificates = Static<typeof MachineCertificates>;

export const MachineStatus = Type.Object(
  {
    phase: Type.Optional(MachinePhase),
    observedGeneration: Type.Optional(Type.Integer()),
    conditions: Type.Optional(Type.Array(Condition)),
    observedVersions: Type.Optional(ObservedVersions),
    nodeName: Type.Optional(Type.String()),
    lastRemediation: Type.Optional(
      Type.Object(
        {
          at: Type.String({ format: "date-time" }),
          reason: Type.String(),
          action: Type.Optional(StringEnum(["restart-services", "reinstall"] as const)),
          result: StringEnum(["running", "succeeded", "failed"] as const),
        },
        { additionalProperties: false },
      ),
    ),
    remediationCount: Type.Optional(Type.Integer({ minimum: 0, description: "Repairs made so far (restarts and reinstalls)." })),
    reinstalls: Type.Optional(
      Type.Integer({ minimum: 0, description: "Repairs that re-ran the whole install; an input of the install, so later updates do not repeat it." }),
    ),
    packagesRevision: Type.Optional(
      Type.String({ description: "Revision of the catalog the host was last installed with successfully (see ClusterPackageVersion status.revision)." }),
    ),
    targetRevision: Type.Optional(Type.String({ description: "Revision of the catalog of the last install or upgrade attempt." })),
    lastOperation: Type.Optional(LastOperation),
    certificates: Type.Optional(MachineCertificates),
  },
  { additionalProperties: false },
);
export type MachineStatus = Static<typeof MachineStatus>;
