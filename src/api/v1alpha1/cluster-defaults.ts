/**
 * The defaults of a ClusterSpec, applied in one place so the components, the CRD schema and the
 * docs agree on them. The mode decides replica counts and whether HA measures (PDBs, spreading)
 * are rendered.
 */
import type {
  AntiAffinity,
  ClusterMode,
  ClusterSpec,
  EtcdStorage,
  ServiceType,
  UserKubeconfigSpec,
} from "./cluster";
import type { ResourceRequirements, Toleration } from "./common";
import { resolveAddons, type ResolvedAddons } from "./addons";
import {
  DEFAULT_BACKUP_REGION,
  DEFAULT_BACKUP_RETENTION,
  DEFAULT_BACKUP_SCHEDULE,
  type EtcdBackupSpec,
  type EtcdRestoreSpec,
} from "./etcd-backup";

/** spec.etcd.backup with its defaults filled in. */
export interface ResolvedEtcdBackup {
  readonly schedule: string;
  readonly retention: { readonly count: number; readonly maxAge: string };
  readonly store: {
    readonly s3: { readonly bucket: string; readonly prefix: string; readonly endpoint: string; readonly region: string; readonly credentialsSecretRef: { readonly name: string } };
  };
}

export function resolveEtcdBackup(backup: EtcdBackupSpec): ResolvedEtcdBackup {
  const s3 = backup.store.s3;
  return {
    schedule: backup.schedule ?? DEFAULT_BACKUP_SCHEDULE,
    retention: { count: backup.retention?.count ?? DEFAULT_BACKUP_RETENTION.count, maxAge: backup.retention?.maxAge ?? DEFAULT_BACKUP_RETENTION.maxAge },
    store: {
      s3: {
        bucket: s3.bucket,
        prefix: s3.prefix,
        // A trailing "/" is allowed in the spec; the key is `<prefix>/<time>.db` whichever way it is written.
        endpoint: s3.endpoint.replace(/\/$/, ""),
        region: s3.region ?? DEFAULT_BACKUP_REGION,
        credentialsSecretRef: { name: s3.credentialsSecretRef.name },
      },
    },
  };
}

export const DEFAULT_IMAGE_REPOSITORY = "registry.k8s.io";
/**
 * The pause image version of the workers' pod sandboxes: the one the supported kubelets (v1.35,
 * v1.36) and containerd 2.4 default to, and the one `kok images build` builds. A catalog's
 * `spec.sandboxImage` overrides the whole reference.
 */
export const DEFAULT_PAUSE_VERSION = "3.10.2";
/** `<imageRepository>/pause:<DEFAULT_PAUSE_VERSION>`. */
export const defaultSandboxImage = (imageRepository: string = DEFAULT_IMAGE_REPOSITORY): string => `${imageRepository}/pause:${DEFAULT_PAUSE_VERSION}`;
export const DEFAULT_SERVICE_CIDR = "10.96.0.0/12";
export const DEFAULT_POD_CIDR = "10.244.0.0/16";
export const DEFAULT_CLUSTER_DOMAIN = "cluster.local";
export const DEFAULT_APISERVER_PORT = 6443;

/** Replica counts per mode: standard is the HA layout (quorum of 3 etcd members, 2 of every other master). */
export const MODE_REPLICAS: Record<ClusterMode, { etcd: number; apiServer: number; controllerManager: number; scheduler: number }> = {
  standard: { etcd: 3, apiServer: 2, controllerManager: 2, scheduler: 2 },
  minimal: { etcd: 1, apiServer: 1, controllerManager: 1, scheduler: 1 },
};

export const DEFAULT_RESOURCES = {
  etcd: { requests: { cpu: "100m", memory: "256Mi" } },
  apiServer: { requests: { cpu: "250m", memory: "512Mi" } },
  controllerManager: { requests: { cpu: "100m", memory: "128Mi" } },
  scheduler: { requests: { cpu: "50m", memory: "64Mi" } },
} as const satisfies Record<string, ResourceRequirements>;

interface ResolvedComponent {
  readonly replicas: number;
  readonly image: string;
  readonly resources: ResourceRequirements;
  readonly extraArgs: Record<string, string>;
}

/** A ClusterSpec with every default filled in; what the components render from. */
export interface ResolvedClusterSpec {
  readonly mode: ClusterMode;
  readonly kubernetesVersion: string;
  readonly imageRepository: string;
  readonly masterNodeSelector: Record<string, string>;
  readonly masterTolerations: Toleration[];
  readonly masterAntiAffinity: AntiAffinity;
  /** Standard mode: PodDisruptionBudgets and host spreading. */
  readonly highAvailability: boolean;
  readonly etcd: ResolvedComponent & {
    readonly version: string;
    readonly storage: EtcdStorage;
    /** Scheduled snapshots; absent: no backup objects are rendered. */
    readonly backup?: ResolvedEtcdBackup;
    /** The snapshot every member starts from when its data directory is empty. */
    readonly restore?: EtcdRestoreSpec;
  };
  readonly apiServer: ResolvedComponent & {
    readonly service: {
      readonly type: ServiceType;
      readonly externalHost?: string;
      readonly port: number;
      readonly nodePort?: number;
      readonly annotations: Record<string, string>;
    };
    readonly advertiseAddress?: string;
    readonly certSANs: string[];
  };
  readonly controllerManager: ResolvedComponent;
  readonly scheduler: ResolvedComponent;
  readonly network: { readonly serviceCIDR: string; readonly podCIDR: string; readonly clusterDomain: string };
  /** What the stack deploys into the business cluster (addons.ts). */
  readonly addons: ResolvedAddons;
  readonly certificates: { readonly validityDays: number; readonly renewBeforeDays: number; readonly caValidityDays: number };
  readonly kubeconfigs: Required<UserKubeconfigSpec>[];
  readonly paused: boolean;
}

/** Fills in defaults. Call only on a spec that `validateClusterSpec` accepted. */
export function resolveClusterSpec(spec: ClusterSpec): ResolvedClusterSpec {
  const replicas = MODE_REPLICAS[spec.mode];
  const repo = spec.imageRepository ?? DEFAULT_IMAGE_REPOSITORY;
  const kubeImage = (component: string) => `${repo}/${component}:${spec.kubernetesVersion}`;
  const certificates = {
    validityDays: spec.certificates?.validityDays ?? 365,
    renewBeforeDays: spec.certificates?.renewBeforeDays ?? 30,
    caValidityDays: spec.certificates?.caValidityDays ?? 3650,
  };
  const service = spec.apiServer?.service;
  return {
    mode: spec.mode,
    kubernetesVersion: spec.kubernetesVersion,
    imageRepository: repo,
    masterNodeSelector: { ...(spec.masterNodeSelector ?? {}) },
    masterTolerations: [...(spec.masterTolerations ?? [])],
    masterAntiAffinity: spec.masterAntiAffinity ?? "preferred",
    highAvailability: spec.mode === "standard",
    etcd: {
      version: spec.etcd.version,
      replicas: spec.etcd.replicas ?? replicas.etcd,
      image: spec.etcd.image ?? `${repo}/etcd:${spec.etcd.version}-0`,
      storage: spec.etcd.storage,
      resources: spec.etcd.resources ?? DEFAULT_RESOURCES.etcd,
      extraArgs: { ...(spec.etcd.extraArgs ?? {}) },
      ...(spec.etcd.backup ? { backup: resolveEtcdBackup(spec.etcd.backup) } : {}),
      ...(spec.etcd.restore ? { restore: { snapshot: spec.etcd.restore.snapshot } } : {}),
    },
    apiServer: {
      replicas: spec.apiServer?.replicas ?? replicas.apiServer,
      image: kubeImage("kube-apiserver"),
      resources: spec.apiServer?.resources ?? DEFAULT_RESOURCES.apiServer,
      extraArgs: { ...(spec.apiServer?.extraArgs ?? {}) },
      service: {
        type: service?.type ?? "ClusterIP",
        externalHost: service?.externalHost,
        port: service?.port ?? DEFAULT_APISERVER_PORT,
        nodePort: service?.nodePort,
        annotations: { ...(service?.annotations ?? {}) },
      },
      advertiseAddress: spec.apiServer?.advertiseAddress,
      certSANs: [...(spec.apiServer?.certSANs ?? [])],
    },
    controllerManager: {
      replicas: spec.controllerManager?.replicas ?? replicas.controllerManager,
      image: kubeImage("kube-controller-manager"),
      resources: spec.controllerManager?.resources ?? DEFAULT_RESOURCES.controllerManager,
      extraArgs: { ...(spec.controllerManager?.extraArgs ?? {}) },
    },
    scheduler: {
      replicas: spec.scheduler?.replicas ?? replicas.scheduler,
      image: kubeImage("kube-scheduler"),
      resources: spec.scheduler?.resources ?? DEFAULT_RESOURCES.scheduler,
      extraArgs: { ...(spec.scheduler?.extraArgs ?? {}) },
    },
    network: {
      serviceCIDR: spec.network?.serviceCIDR ?? DEFAULT_SERVICE_CIDR,
      podCIDR: spec.network?.podCIDR ?? DEFAULT_POD_CIDR,
      clusterDomain: spec.network?.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN,
    },
    addons: resolveAddons(spec.addons, spec.kubernetesVersion, repo),
    certificates,
    kubeconfigs: (spec.kubeconfigs ?? []).map((k) => ({
      name: k.name,
      user: k.user,
      groups: [...(k.groups ?? [])],
      validityDays: k.validityDays ?? certificates.validityDays,
    })),
    paused: spec.paused ?? false,
  };
}
