/**
 * The `ClusterPackageVersion` kind: the version catalog of a cluster's machines (what to install
 * on a worker host) and how a new catalog rolls out over the machines (gray release).
 */
import { Type, type Static } from "@sinclair/typebox";
import { Condition, LocalObjectReference, StringEnum, StringMap } from "./common";
import { RegistryMirrors, SandboxImage } from "./registry-mirrors";
import { ARTIFACT_URL_PATTERN, MAX_PACKAGE_VERSION_LENGTH, MAX_URL_LENGTH, PACKAGE_VERSION_PATTERN, SHA256_PATTERN } from "./patterns";

/** One artifact on the package mirror. */
export const PackageArtifact = Type.Object(
  {
    version: Type.String({
      minLength: 1,
      maxLength: MAX_PACKAGE_VERSION_LENGTH,
      pattern: PACKAGE_VERSION_PATTERN,
      description: "The version the host reports back, e.g. 1.7.22 or v1.36.3: letters and digits joined by . _ + ~ - (it names a directory on the host).",
    }),
    url: Type.String({ maxLength: MAX_URL_LENGTH, pattern: ARTIFACT_URL_PATTERN, description: "http(s) URL of the artifact on the mirror (see `kok mirror`), without credentials." }),
    sha256: Type.String({ pattern: SHA256_PATTERN, description: "Lowercase hex SHA-256 of the artifact; checked on the host before anything is replaced." }),
  },
  { additionalProperties: false },
);
export type PackageArtifact = Static<typeof PackageArtifact>;

/**
 * What a worker host runs. Artifact formats: containerd is a tarball with `bin/*` (the upstream
 * release layout), kubelet and runc are single binaries, cni is a tarball of plugin binaries.
 */
export const WorkerPackages = Type.Object(
  {
    containerd: PackageArtifact,
    kubelet: PackageArtifact,
    cni: PackageArtifact,
    runc: Type.Optional(PackageArtifact),
  },
  { additionalProperties: false },
);
export type WorkerPackages = Static<typeof WorkerPackages>;

/** The package names, in install order. */
export const PACKAGE_NAMES = ["containerd", "runc", "kubelet", "cni"] as const;
export type PackageName = (typeof PACKAGE_NAMES)[number];

export const LabelSelector = Type.Object(
  { matchLabels: Type.Optional(StringMap("Machines whose labels contain all of these.")) },
  { additionalProperties: false },
);
export type LabelSelector = Static<typeof LabelSelector>;

export const CanarySpec = Type.Object(
  {
    selector: Type.Optional(LabelSelector),
    count: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 100000,
        description: "Canary machines; with a selector, at most this many of the matching ones. Default: all matching, or 0 without a selector.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type CanarySpec = Static<typeof CanarySpec>;

/** An integer or a percentage string ("10%"), as Kubernetes IntOrString. */
export const IntOrPercent = Type.Union([Type.Integer({ minimum: 0, maximum: 100000 }), Type.String({ pattern: "^[0-9]{1,3}%$" })], {
  description:
    'Machines updated at once after the canary: a count (e.g. 2) or a percentage of the pool ("10%", rounded down, at least 1). Default 1.',
});
export type IntOrPercent = Static<typeof IntOrPercent>;

export const RolloutSpec = Type.Object(
  {
    canary: Type.Optional(CanarySpec),
    maxUnavailable: Type.Optional(IntOrPercent),
    pauseAfterCanary: Type.Optional(
      Type.Boolean({ default: false, description: "Stop after the canary batch until the pause is lifted." }),
    ),
    healthGate: Type.Optional(
      Type.Object(
        {
          readyTimeoutSeconds: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 86400, default: 600, description: "How long a machine may take to report Ready (at most a day)." }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    haltOnFailure: Type.Optional(
      Type.Boolean({ default: true, description: "A failed machine stops the rollout; later batches are not started." }),
    ),
    rollbackOnFailure: Type.Optional(
      Type.Boolean({
        default: false,
        description: "When the rollout halts, put the machines that failed back on the previous catalog (status.currentPackages). Operator only.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type RolloutSpec = Static<typeof RolloutSpec>;

export const ClusterPackageVersionSpec = Type.Object(
  {
    clusterRef: LocalObjectReference,
    packages: WorkerPackages,
    rollout: Type.Optional(RolloutSpec),
    sandboxImage: Type.Optional(SandboxImage),
    registryMirrors: Type.Optional(RegistryMirrors),
  },
  { additionalProperties: false },
);
export type ClusterPackageVersionSpec = Static<typeof ClusterPackageVersionSpec>;

export const RolloutPhase = StringEnum(["Pending", "RollingOut", "Paused", "Complete", "Halted"] as const);
export type RolloutPhase = Static<typeof RolloutPhase>;

export const ClusterPackageVersionStatus = Type.Object(
  {
    phase: Type.Optional(RolloutPhase),
    observedGeneration: Type.Optional(Type.Integer()),
    updated: Type.Optional(Type.Integer({ minimum: 0, description: "Machines running this catalog." })),
    ready: Type.Optional(Type.Integer({ minimum: 0, description: "Updated machines whose Node is Ready." })),
    total: Type.Optional(Type.Integer({ minimum: 0, description: "Machines that reference this catalog." })),
    currentBatch: Type.Optional(Type.Integer({ minimum: 0, description: "Index of the batch being rolled out (0 is the canary)." })),
    revision: Type.Optional(Type.String({ description: "Revision (a hash) of spec.packages: the catalog being or last rolled out." })),
    currentRevision: Type.Optional(
      Type.String({ description: "Revision every machine runs once a rollout is complete; machines outside the rollout's batches stay on it." }),
    ),
    currentPackages: Type.Optional(WorkerPackages),
    failedMachines: Type.Optional(Type.Array(Type.String(), { description: "Machines whose update to `revision` failed or did not become Ready in time." })),
    conditions: Type.Optional(Type.Array(Condition)),
  },
  { additionalProperties: false },
);
export type ClusterPackageVersionStatus = Static<typeof ClusterPackageVersionStatus>;
