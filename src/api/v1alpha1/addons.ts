/**
 * The business cluster's add-ons (`spec.addons`): the pod network, kube-proxy and CoreDNS that
 * the Cluster's stack deploys into the business cluster once its masters answer. Each can be
 * switched off, so a platform can bring its own CNI (Calico, Cilium) or DNS. Versions follow
 * `kubernetesVersion` unless overridden; images come from `imageRepository` like the masters'
 * (flannel, which registry.k8s.io does not carry, from its own repository).
 */
import { Type, type Static } from "@sinclair/typebox";
import { parseCidr, nthAddress, cidrSize } from "./cidr";
import { StringEnum } from "./common";
import { IMAGE_PATTERN } from "./patterns";

/** The CoreDNS release the add-on runs unless `addons.coreDNS.version` says otherwise (`kok images build` builds it). */
export const DEFAULT_COREDNS_VERSION = "v1.15.0";
/** The flannel release of the pod network add-on (`kok images build` builds it). */
export const DEFAULT_FLANNEL_VERSION = "v0.28.10";
export const DEFAULT_FLANNEL_IMAGE = `docker.io/flannel/flannel:${DEFAULT_FLANNEL_VERSION}`;
export const DEFAULT_COREDNS_REPLICAS = 2;
export const MAX_COREDNS_REPLICAS = 10;

const VERSION_TAG = "^v[0-9]+\\.[0-9]+\\.[0-9]+$";
const enabled = Type.Optional(Type.Boolean({ default: true, description: "false: the stack deploys none of it (and removes what it deployed)." }));

export const NetworkAddonSpec = Type.Object(
  {
    enabled,
    plugin: Type.Optional(StringEnum(["flannel"] as const, { default: "flannel", description: "The pod network. Disable it to bring your own CNI." })),
    backend: Type.Optional(
      StringEnum(["host-gw", "vxlan"] as const, {
        default: "host-gw",
        description: "flannel's backend: host-gw routes between workers on one L2 segment; vxlan tunnels across routed networks.",
      }),
    ),
    image: Type.Optional(Type.String({ pattern: IMAGE_PATTERN, maxLength: 512, description: `Default: ${DEFAULT_FLANNEL_IMAGE}. Runs privileged on every worker; any other image must come from the admin policy's allowedRegistries.` })),
  },
  { additionalProperties: false },
);
export type NetworkAddonSpec = Static<typeof NetworkAddonSpec>;

export const KubeProxyAddonSpec = Type.Object(
  {
    enabled,
    mode: Type.Optional(StringEnum(["iptables", "nftables"] as const, { default: "iptables", description: "How Services are routed on the workers. nftables needs kube-proxy v1.31 or later." })),
    version: Type.Optional(
      Type.String({ pattern: VERSION_TAG, maxLength: 64, description: "Default: kubernetesVersion; image <imageRepository>/kube-proxy:<version>. The masters' minor or up to 3 minors older, never newer (version skew policy)." }),
    ),
  },
  { additionalProperties: false },
);
export type KubeProxyAddonSpec = Static<typeof KubeProxyAddonSpec>;

export const CoreDnsAddonSpec = Type.Object(
  {
    enabled,
    replicas: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_COREDNS_REPLICAS, default: DEFAULT_COREDNS_REPLICAS })),
    version: Type.Optional(Type.String({ pattern: VERSION_TAG, maxLength: 64, description: `Default: ${DEFAULT_COREDNS_VERSION}; image <imageRepository>/coredns/coredns:<version>. Its Service takes the 10th address of network.serviceCIDR, the kubelets' clusterDNS.` })),
  },
  { additionalProperties: false },
);
export type CoreDnsAddonSpec = Static<typeof CoreDnsAddonSpec>;

export const AddonsSpec = Type.Object(
  {
    network: Type.Optional(NetworkAddonSpec),
    kubeProxy: Type.Optional(KubeProxyAddonSpec),
    coreDNS: Type.Optional(CoreDnsAddonSpec),
  },
  { additionalProperties: false, description: "What the stack deploys into the business cluster: pod network, kube-proxy, CoreDNS." },
);
export type AddonsSpec = Static<typeof AddonsSpec>;

/** The add-ons with every default filled in: what the ClusterAddons component renders. */
export interface ResolvedAddons {
  readonly network: { readonly enabled: boolean; readonly plugin: "flannel"; readonly backend: "host-gw" | "vxlan"; readonly image: string };
  readonly kubeProxy: { readonly enabled: boolean; readonly mode: "iptables" | "nftables"; readonly image: string };
  readonly coreDNS: { readonly enabled: boolean; readonly replicas: number; readonly image: string };
}

export function resolveAddons(addons: AddonsSpec | undefined, kubernetesVersion: string, imageRepository: string): ResolvedAddons {
  return {
    network: {
      enabled: addons?.network?.enabled ?? true,
      plugin: addons?.network?.plugin ?? "flannel",
      backend: addons?.network?.backend ?? "host-gw",
      image: addons?.network?.image ?? DEFAULT_FLANNEL_IMAGE,
    },
    kubeProxy: {
      enabled: addons?.kubeProxy?.enabled ?? true,
      mode: addons?.kubeProxy?.mode ?? "iptables",
      image: `${imageRepository}/kube-proxy:${addons?.kubeProxy?.version ?? kubernetesVersion}`,
    },
    coreDNS: {
      enabled: addons?.coreDNS?.enabled ?? true,
      replicas: addons?.coreDNS?.replicas ?? DEFAULT_COREDNS_REPLICAS,
      image: `${imageRepository}/coredns/coredns:${addons?.coreDNS?.version ?? DEFAULT_COREDNS_VERSION}`,
    },
  };
}

/** Which address of the service range the cluster DNS Service takes: the tenth, as kubeadm derives it. */
export const CLUSTER_DNS_ADDRESS_INDEX = 10;

/**
 * The cluster DNS Service's address (the kubelets' `clusterDNS`): the tenth address of
 * `serviceCIDR`. Throws a RangeError for a range without one (smaller than a /28); validation
 * refuses such a range first.
 */
export function clusterDnsAddress(serviceCIDR: string): string {
  const cidr = parseCidr(serviceCIDR);
  if (!cidr) throw new RangeError(`"${serviceCIDR}" is not a CIDR`);
  if (cidrSize(cidr) <= BigInt(CLUSTER_DNS_ADDRESS_INDEX)) throw new RangeError(`${serviceCIDR} has no address number ${CLUSTER_DNS_ADDRESS_INDEX} for the cluster DNS Service`);
  return nthAddress(cidr, CLUSTER_DNS_ADDRESS_INDEX);
}

/** The `kubernetes` Service's address: the first of `serviceCIDR`. */
export function kubernetesServiceAddress(serviceCIDR: string): string {
  const cidr = parseCidr(serviceCIDR);
  if (!cidr) throw new RangeError(`"${serviceCIDR}" is not a CIDR`);
  return nthAddress(cidr, 1);
}
