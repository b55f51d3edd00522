/**
 * The `Cluster` kind: one business cluster whose masters run in the meta-cluster.
 * Its spec is also the argument of the `ControlPlane` component.
 */
import { Type, type Static } from "@sinclair/typebox";
import {
  Condition,
  LastOperation,
  ResourceRequirements,
  StringEnum,
  StringMap,
  Toleration,
} from "./common";
import {
  ETCD_VERSION_PATTERN,
  IMAGE_PATTERN,
  IMAGE_REPOSITORY_PATTERN,
  KUBERNETES_VERSION_PATTERN,
  QUANTITY_PATTERN,
} from "./patterns";
import { AddonsSpec } from "./addons";
import { CertificatesStatus } from "./certificates";
import { EtcdBackupSpec, EtcdRestoreSpec, EtcdStatus } from "./etcd-backup";

export const ClusterMode = { Standard: "standard", Minimal: "minimal" } as const;
export type ClusterMode = (typeof ClusterMode)[keyof typeof ClusterMode];

export const ServiceType = { ClusterIP: "ClusterIP", NodePort: "NodePort", LoadBalancer: "LoadBalancer" } as const;
export type ServiceType = (typeof ServiceType)[keyof typeof ServiceType];

export const AntiAffinity = { Required: "required", Preferred: "preferred" } as const;
export type AntiAffinity = (typeof AntiAffinity)[keyof typeof AntiAffinity];

/** A static bound (the CRD refuses more); the admin policy's `caps.maxReplicas` is usually lower. */
export const MAX_MASTER_REPLICAS = 25;
const replicas = (description: string) => Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_MASTER_REPLICAS, description }));
export const MAX_EXTRA_ARGS = 64;
const extraArgs = Type.Optional(
  Type.Record(Type.String(), Type.String({ maxLength: 4096 }), {
    maxProperties: MAX_EXTRA_ARGS,
    description: "Extra command-line flags (without leading dashes); they override the generated ones. The admin policy refuses security-relevant flags.",
  }),
);

/** The path of a hostPath volume and its kind, as core/v1 HostPathVolumeSource. */
export const HostPathVolume = Type.Object(
  {
    path: Type.String({ minLength: 1, maxLength: 4096, pattern: "^/", description: "Absolute path on the meta-cluster node; only under the admin policy's hostPathPrefixes." }),
    type: Type.Optional(
      StringEnum(["", "DirectoryOrCreate", "Directory"] as const, { description: "Only directories: etcd keeps its data in one." }),
    ),
  },
  { additionalProperties: false },
);

/**
 * The volume types etcd data may live on besides a claim, each with its full shape: no field a
 * tenant writes is kept unknown (a preserved object would let any core VolumeSource through).
 */
export const EtcdVolumeSource = Type.Object(
  {
    emptyDir: Type.Optional(
      Type.Object(
        {
          medium: Type.Optional(StringEnum(["", "Memory"] as const)),
          sizeLimit: Type.Optional(Type.String({ pattern: QUANTITY_PATTERN, maxLength: 64 })),
        },
        { additionalProperties: false },
      ),
    ),
    hostPath: Type.Optional(HostPathVolume),
  },
  { additionalProperties: false, description:
      "Exactly one of emptyDir or hostPath (the admin policy lists which are allowed). An emptyDir lives and dies with its Pod: each restart of a member (a leaf certificate renewal, an etcd upgrade, an eviction) starts it empty, and a single member takes the business cluster's whole state with it. For a cluster to keep, use claimTemplate.",
  },
);
export type EtcdVolumeSource = Static<typeof EtcdVolumeSource>;

export const EtcdStorage = Type.Object(
  {
    claimTemplate: Type.Optional(
      Type.Object(
        {
          storageClassName: Type.Optional(Type.String({ description: "Default: the meta-cluster's default class." })),
          size: Type.String({ pattern: QUANTITY_PATTERN, maxLength: 64, description: "Requested capacity per member, e.g. 20Gi (at most the admin policy's caps.maxEtcdStorage)." }),
        },
        { additionalProperties: false, description: "A PersistentVolumeClaim per member (volumeClaimTemplates)." },
      ),
    ),
    volumeSource: Type.Optional(EtcdVolumeSource),
  },
  { additionalProperties: false, description: "Exactly one of claimTemplate or volumeSource." },
);
export type EtcdStorage = Static<typeof EtcdStorage>;

export const EtcdSpec = Type.Object(
  {
    version: Type.String({ pattern: ETCD_VERSION_PATTERN, maxLength: 64, description: "etcd version, e.g. 3.6.16." }),
    image: Type.Optional(
      Type.String({ pattern: IMAGE_PATTERN, maxLength: 512, description: "Default: <imageRepository>/etcd:<version>-0. Only from the admin policy's allowedRegistries." }),
    ),
    replicas: replicas("Members: 1, 3, 5 or 7; may change, the operator adds or removes one member at a time (status.etcd). Default: 3 in standard mode, 1 in minimal."),
    storage: EtcdStorage,
    resources: Type.Optional(ResourceRequirements),
    extraArgs,
    backup: Type.Optional(EtcdBackupSpec),
    restore: Type.Optional(EtcdRestoreSpec),
  },
  { additionalProperties: false },
);
export type EtcdSpec = Static<typeof EtcdSpec>;

export const ApiServerServiceSpec = Type.Object(
  {
    type: Type.Optional(StringEnum(["ClusterIP", "NodePort", "LoadBalancer"] as const, { default: "ClusterIP" })),
    externalHost: Type.Optional(
      Type.String({ maxLength: 253, description: "DNS name or IP clients use; goes into the endpoint and the serving certificate." }),
    ),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, default: 6443 })),
    nodePort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: "Only with type NodePort." })),
    annotations: Type.Optional(
      Type.Record(Type.String(), Type.String({ maxLength: 4096 }), { maxProperties: 64, description: "Annotations of the Service, e.g. for a load-balancer controller." }),
    ),
  },
  { additionalProperties: false },
);
export type ApiServerServiceSpec = Static<typeof ApiServerServiceSpec>;

export const ApiServerSpec = Type.Object(
  {
    replicas: replicas("Default: 2 in standard mode, 1 in minimal."),
    service: Type.Optional(ApiServerServiceSpec),
    advertiseAddress: Type.Optional(
      Type.String({ maxLength: 45, description: "IP the business cluster's `kubernetes` Service points at. Default: the pod IP." }),
    ),
    certSANs: Type.Optional(
      Type.Array(Type.String({ maxLength: 253 }), { maxItems: 100, description: "Extra DNS names or IPs of the serving certificate." }),
    ),
    resources: Type.Optional(ResourceRequirements),
    extraArgs,
  },
  { additionalProperties: false },
);
export type ApiServerSpec = Static<typeof ApiServerSpec>;

export const MasterComponentSpec = Type.Object(
  {
    replicas: replicas("Default: 2 in standard mode, 1 in minimal."),
    resources: Type.Optional(ResourceRequirements),
    extraArgs,
  },
  { additionalProperties: false },
);
export type MasterComponentSpec = Static<typeof MasterComponentSpec>;

export const NetworkSpec = Type.Object(
  {
    serviceCIDR: Type.Optional(
      Type.String({
        default: "10.96.0.0/12",
        maxLength: 64,
        description:
          "The business cluster's Service range, /12 to /28 (IPv6 /108 to /124). The kubernetes Service takes its 1st address, the cluster DNS Service its 10th: the workers' kubelet clusterDNS.",
      }),
    ),
    podCIDR: Type.Optional(
      Type.String({ default: "10.244.0.0/16", maxLength: 64, description: "The Pod range; the controller-manager gives each Node a part of it (the pod network routes them)." }),
    ),
    clusterDomain: Type.Optional(Type.String({ default: "cluster.local", maxLength: 253, description: "The DNS domain of Services and Pods: the workers' kubelet clusterDomain." })),
  },
  { additionalProperties: false },
);
export type NetworkSpec = Static<typeof NetworkSpec>;

export const CertificatesSpec = Type.Object(
  {
    validityDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650, default: 365, description: "Leaf certificates." })),
    renewBeforeDays: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 3650, default: 30, description: "Leaves are re-issued on refresh inside this window." }),
    ),
    caValidityDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 36500, default: 3650 })),
  },
  { additionalProperties: false },
);
export type CertificatesSpec = Static<typeof CertificatesSpec>;

export const UserKubeconfigSpec = Type.Object(
  {
    name: Type.String({ maxLength: 40, description: "Unique; the kubeconfig is the Secret <cluster>.kubeconfig.<name> (key kubeconfig) next to the Cluster, and <cluster>-kubeconfig-<name> in the masters' namespace." }),
    user: Type.String({ minLength: 1, maxLength: 256, description: "The certificate's common name (the Kubernetes user); not a system: user." }),
    groups: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 256 }), {
        maxItems: 1,
        description: "At most one group: the certificate's organization; bind more with RBAC. No system: group (system:masters would be an admin no RBAC can revoke).",
      }),
    ),
    validityDays: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 3650,
        description: "Default: certificates.validityDays. Renewed renewBeforeDays (at most a third of this) before expiry.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type UserKubeconfigSpec = Static<typeof UserKubeconfigSpec>;

export const ClusterSpec = Type.Object(
  {
    mode: StringEnum(["standard", "minimal"] as const, {
      description: "standard: HA masters with anti-affinity and PDBs; minimal: one of each.",
    }),
    kubernetesVersion: Type.String({ pattern: KUBERNETES_VERSION_PATTERN, maxLength: 64, description: "e.g. v1.36.3" }),
    imageRepository: Type.Optional(
      Type.String({ pattern: IMAGE_REPOSITORY_PATTERN, maxLength: 255, default: "registry.k8s.io", description: "Only a registry the admin policy allows." }),
    ),
    masterNodeSelector: Type.Optional(StringMap("Meta-cluster nodes the masters may run on (keys the admin policy allows).")),
    masterTolerations: Type.Optional(Type.Array(Toleration, { maxItems: 20, description: "Only taints the admin policy lists." })),
    masterAntiAffinity: Type.Optional(
      StringEnum(["required", "preferred"] as const, {
        description: "Standard mode spreads replicas over hosts; `required` refuses to co-locate them. Default preferred.",
      }),
    ),
    etcd: EtcdSpec,
    apiServer: Type.Optional(ApiServerSpec),
    controllerManager: Type.Optional(MasterComponentSpec),
    scheduler: Type.Optional(MasterComponentSpec),
    network: Type.Optional(NetworkSpec),
    addons: Type.Optional(AddonsSpec),
    certificates: Type.Optional(CertificatesSpec),
    kubeconfigs: Type.Optional(
      Type.Array(UserKubeconfigSpec, {
        maxItems: 100,
        description: "Client certificates for people and tools, each from a CA of its own entry: removing an entry revokes its certificate (the apiservers roll without it).",
      }),
    ),
    paused: Type.Optional(Type.Boolean({ description: "The operator makes no change while true." })),
  },
  { additionalProperties: false },
);
export type ClusterSpec = Static<typeof ClusterSpec>;

export const ClusterPhase = StringEnum([
  "Provisioning",
  "Ready",
  "Upgrading",
  "Degraded",
  "Deleting",
  "Failed",
] as const);
export type ClusterPhase = Static<typeof ClusterPhase>;

/** A key of a Secret's data, as Kubernetes allows it. */
const SECRET_KEY = { minLength: 1, maxLength: 253, pattern: "^[-._a-zA-Z0-9]+$" } as const;

/**
 * Where the Cluster's stack keeps the cluster CA: a Secret in the masters' namespace and the keys
 * of its certificate and private key. A reference only; the key itself never leaves the Secret.
 */
export const CaSecretReference = Type.Object(
  {
    namespace: Type.String({ maxLength: 63, description: "The masters' namespace; the operator refuses any other." }),
    name: Type.String({ maxLength: 253 }),
    certificateKey: Type.String({ ...SECRET_KEY, description: "Key of the CA certificate (PEM)." }),
    privateKeyKey: Type.String({ ...SECRET_KEY, description: "Key of the CA private key (PEM)." }),
  },
  { additionalProperties: false, description: "The Secret that holds the cluster CA, which signs the kubelet certificates of Machines." },
);
export type CaSecretReference = Static<typeof CaSecretReference>;

export const ClusterStatus = Type.Object(
  {
    phase: Type.Optional(ClusterPhase),
    observedGeneration: Type.Optional(Type.Integer()),
    conditions: Type.Optional(Type.Array(Condition)),
    endpoint: Type.Optional(Type.String()),
    version: Type.Optional(Type.String()),
    certificatesExpireAt: Type.Optional(Type.String({ format: "date-time" })),
    adminKubeconfigSecret: Type.Optional(Type.String()),
    caSecretRef: Type.Optional(CaSecretReference),
    lastOperation: Type.Optional(LastOperation),
    etcd: Type.Optional(EtcdStatus),
    certificates: Type.Optional(CertificatesStatus),
  },
  { additionalProperties: false },
);
export type ClusterStatus = Static<typeof ClusterStatus>;
