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

export const ClusterMode = { Standard: "standard", Minimal: "minimal" } as const;
export type ClusterMode = (typeof ClusterMode)[keyof typeof ClusterMode];

export const ServiceType = { ClusterIP: "ClusterIP", NodePort: "NodePort", LoadBalancer: "LoadBalancer" } as const;
export type ServiceType = (typeof ServiceType)[keyof typeof ServiceType];

export const AntiAffinity = { Required: "required", Preferred: "preferred" } as const;
export type AntiAffinity = (typeof AntiAffinity)[keyof typeof AntiAffinity];

const replicas = (description: string) => Type.Optional(Type.Integer({ minimum: 1, description }));
const extraArgs = Type.Optional(
  StringMap("Extra command-line flags (without leading dashes); they override the generated ones."),
);

export const EtcdStorage = Type.Object(
  {
    claimTemplate: Type.Optional(
      Type.Object(
        {
          storageClassName: Type.Optional(Type.String({ description: "Default: the meta-cluster's default class." })),
          size: Type.String({ description: "Requested capacity per member, e.g. 20Gi." }),
        },
        { additionalProperties: false, description: "A PersistentVolumeClaim per member (volumeClaimTemplates)." },
      ),
    ),
    volumeSource: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description: "Any core/v1 VolumeSource, e.g. { hostPath: { path: /data/etcd } } or { emptyDir: {} }.",
      }),
    ),
  },
  { additionalProperties: false, description: "Exactly one of claimTemplate or volumeSource." },
);
export type EtcdStorage = Static<typeof EtcdStorage>;

export const EtcdSpec = Type.Object(
  {
    version: Type.String({ description: "etcd version, e.g. 3.6.16." }),
    image: Type.Optional(Type.String({ description: "Default: <imageRepository>/etcd:<version>-0." })),
    replicas: replicas("Members; odd. Default: 3 in standard mode, 1 in minimal."),
    storage: EtcdStorage,
    resources: Type.Optional(ResourceRequirements),
    extraArgs,
  },
  { additionalProperties: false },
);
export type EtcdSpec = Static<typeof EtcdSpec>;

export const ApiServerServiceSpec = Type.Object(
  {
    type: Type.Optional(StringEnum(["ClusterIP", "NodePort", "LoadBalancer"] as const, { default: "ClusterIP" })),
    externalHost: Type.Optional(
      Type.String({ description: "DNS name or IP clients use; goes into the endpoint and the serving certificate." }),
    ),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, default: 6443 })),
    nodePort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: "Only with type NodePort." })),
    annotations: Type.Optional(StringMap("Annotations of the Service, e.g. for a load-balancer controller.")),
  },
  { additionalProperties: false },
);
export type ApiServerServiceSpec = Static<typeof ApiServerServiceSpec>;

export const ApiServerSpec = Type.Object(
  {
    replicas: replicas("Default: 2 in standard mode, 1 in minimal."),
    service: Type.Optional(ApiServerServiceSpec),
    advertiseAddress: Type.Optional(
      Type.String({ description: "IP the business cluster's `kubernetes` Service points at. Default: the pod IP." }),
    ),
    certSANs: Type.Optional(Type.Array(Type.String(), { description: "Extra DNS names or IPs of the serving certificate." })),
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
    serviceCIDR: Type.Optional(Type.String({ default: "10.96.0.0/12" })),
    podCIDR: Type.Optional(Type.String({ default: "10.244.0.0/16" })),
    clusterDomain: Type.Optional(Type.String({ default: "cluster.local" })),
  },
  { additionalProperties: false },
);
export type NetworkSpec = Static<typeof NetworkSpec>;

export const CertificatesSpec = Type.Object(
  {
    validityDays: Type.Optional(Type.Integer({ minimum: 1, default: 365, description: "Leaf certificates." })),
    renewBeforeDays: Type.Optional(
      Type.Integer({ minimum: 0, default: 30, description: "Leaves are re-issued on refresh inside this window." }),
    ),
    caValidityDays: Type.Optional(Type.Integer({ minimum: 1, default: 3650 })),
  },
  { additionalProperties: false },
);
export type CertificatesSpec = Static<typeof CertificatesSpec>;

export const UserKubeconfigSpec = Type.Object(
  {
    name: Type.String({ description: "Unique; the Secret is <cluster>-kubeconfig-<name>." }),
    user: Type.String({ description: "The certificate's common name (the Kubernetes user)." }),
    groups: Type.Optional(
      Type.Array(Type.String(), { description: "At most one group: the certificate's organization; bind more with RBAC." }),
    ),
    validityDays: Type.Optional(
      Type.Integer({
        minimum: 1,
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
    kubernetesVersion: Type.String({ description: "e.g. v1.36.3" }),
    imageRepository: Type.Optional(Type.String({ default: "registry.k8s.io" })),
    masterNodeSelector: Type.Optional(StringMap("Meta-cluster nodes the masters may run on.")),
    masterTolerations: Type.Optional(Type.Array(Toleration)),
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
    certificates: Type.Optional(CertificatesSpec),
    kubeconfigs: Type.Optional(Type.Array(UserKubeconfigSpec)),
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

export const ClusterStatus = Type.Object(
  {
    phase: Type.Optional(ClusterPhase),
    observedGeneration: Type.Optional(Type.Integer()),
    conditions: Type.Optional(Type.Array(Condition)),
    endpoint: Type.Optional(Type.String()),
    version: Type.Optional(Type.String()),
    certificatesExpireAt: Type.Optional(Type.String({ format: "date-time" })),
    adminKubeconfigSecret: Type.Optional(Type.String()),
    lastOperation: Type.Optional(LastOperation),
  },
  { additionalProperties: false },
);
export type ClusterStatus = Static<typeof ClusterStatus>;
