/**
 * The local meta-cluster's settings and where everything lives in its state directory. `up`
 * writes the settings once, so `down`, `env`, `status` and the node agent read the same values.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { cidrsOverlap, formatCidr, parseCidr } from "../api/v1alpha1/cidr";

export interface DevConfig {
  readonly stateDir: string;
  readonly ports: {
    readonly etcdClient: number;
    readonly etcdPeer: number;
    readonly apiServer: number;
    readonly controllerManager: number;
    readonly scheduler: number;
    /** The image registry (registry.ts): plain HTTP on loopback. */
    readonly registry: number;
    /** The S3 object store (object-store.ts): plain HTTP on loopback, SigV4. */
    readonly objectStore: number;
  };
  /** Pod addresses of the node agent; its first address is the bridge (and the DNS server). */
  readonly podCIDR: string;
  /** The meta-cluster's own Service range: allocated by the apiserver, never routed. */
  readonly serviceCIDR: string;
  readonly nodeName: string;
  readonly clusterDomain: string;
  /**
   * The sandbox worker hosts' network (host-netns.ts): a /24 on the hosts bridge inside the node's
   * namespace, routed from the machine to the node. Derived from the port base (hostsCidrFor).
   */
  readonly hostsCIDR: string;
}

export const DEFAULT_STATE_DIR = join(homedir(), ".kube-on-kube", "dev");

/** Ports are `base + <the component's usual port>`; the default base keeps clear of real masters. */
export const DEFAULT_PORT_BASE = 10000;

export function portsFrom(base: number): DevConfig["ports"] {
  return {
    etcdClient: base + 2379,
    etcdPeer: base + 2380,
    apiServer: base + 6443,
    controllerManager: base + 10257,
    scheduler: base + 10259,
    // A registry's and an S3 server's usual ports (distribution's 5000, MinIO's and versitygw's images' 9000).
    registry: base + 5000,
    objectStore: base + 9000,
  };
}

export function defaultConfig(stateDir: string, portBase = DEFAULT_PORT_BASE, podCIDR = "10.88.0.0/16"): DevConfig {
  return {
    stateDir: resolve(stateDir),
    ports: portsFrom(portBase),
    podCIDR,
    serviceCIDR: "10.0.0.0/24",
    nodeName: "kok-dev-node",
    clusterDomain: "cluster.local",
    hostsCIDR: hostsCidrFor(portBase),
  };
}

/** Where every dev cluster's hosts subnet lies: clear of the dev pod ranges (10.88, 10.100-249) and the business defaults. */
export const HOSTS_SUPERNET = "10.250.0.0/16";

/**
 * The hosts subnet of the dev cluster with this port base: 10.250.<base/100 mod 256>.0/24. Two dev
 * clusters on one machine run on different port bases (their ports would collide otherwise), and
 * the tests' bases are multiples of 100 (test/support/dev-cluster.ts), so their subnets differ.
 */
export function hostsCidrFor(portBase: number): string {
  return `10.250.${Math.floor(portBase / 100) % 256}.0/24`;
}

/** The business clusters' default ranges (spec.network): a hosts subnet inside them would shadow their Services or Pods. */
export const BUSINESS_DEFAULT_CIDRS = { serviceCIDR: "10.96.0.0/12", podCIDR: "10.244.0.0/16" } as const;

/**
 * Why a config's hosts subnet cannot be used, or undefined: it must be an IPv4 range of 4 to 254
 * hosts' worth (/16 to /28) clear of the meta-cluster's pod and Service ranges and the business defaults.
 */
export function hostsCidrProblem(config: Pick<DevConfig, "hostsCIDR" | "podCIDR" | "serviceCIDR">): string | undefined {
  const hosts = parseCidr(config.hostsCIDR);
  if (!hosts || hosts.family !== 4) return `the hosts subnet "${config.hostsCIDR}" is not an IPv4 CIDR`;
  if (hosts.prefix < 16 || hosts.prefix > 28) return `the hosts subnet ${formatCidr(hosts)} must be a /16 to /28`;
  const others: [string, string][] = [
    ["the meta-cluster's pod range (podCIDR)", config.podCIDR],
    ["the meta-cluster's Service range (serviceCIDR)", config.serviceCIDR],
    ["the business clusters' default Service range", BUSINESS_DEFAULT_CIDRS.serviceCIDR],
    ["the business clusters' default pod range", BUSINESS_DEFAULT_CIDRS.podCIDR],
  ];
  for (const [what, text] of others) {
    const other = parseCidr(text);
    if (other && cidrsOverlap(hosts, other)) return `the hosts subnet ${formatCidr(hosts)} overlaps ${what} ${text}: set another hostsCIDR in the state directory's config.json`;
  }
  return undefined;
}

/** Paths inside the state directory: one place, so cleanup never misses a file. */
export function statePaths(stateDir: string) {
  const dir = resolve(stateDir);
  return {
    dir,
    config: join(dir, "config.json"),
    pki: join(dir, "pki"),
    etcdData: join(dir, "etcd-data"),
    logs: join(dir, "logs"),
    pids: join(dir, "pids"),
    adminKubeconfig: join(dir, "admin.kubeconfig"),
    componentKubeconfig: (component: string) => join(dir, `${component}.kubeconfig`),
    node: join(dir, "node"),
    /** The registry's config and its blobs and manifests: kept by `down`, so images are pushed once. */
    registryConfig: join(dir, "registry.yml"),
    registryData: join(dir, "registry"),
    /** The object store's buckets (one directory each) and its root credentials (0600, never logged). */
    objectStoreData: join(dir, "object-store"),
    objectStoreCredentials: join(dir, "object-store-credentials.json"),
    /** The demo's worker hosts (sandbox-fleet.ts): clients of the business clusters hosted here. */
    hosts: join(dir, "hosts"),
  };
}

/**
 * A short tag derived from the state directory. It prefixes the bridge, the network namespaces
 * and veths, so two dev clusters (a developer's and a test's) never touch each other's.
 */
export function stateTag(stateDir: string): string {
  return createHash("sha256").update(resolve(stateDir)).digest("hex").slice(0, 4);
}

export function loadConfig(stateDir: string): DevConfig | undefined {
  const file = statePaths(stateDir).config;
  if (!existsSync(file)) return undefined;
  const config = JSON.parse(readFileSync(file, "utf8")) as DevConfig;
  // A state dir from before the registry and object store (or the hosts subnet): they follow from the saved base.
  const base = config.ports.apiServer - 6443;
  return { ...config, ports: { ...portsFrom(base), ...config.ports }, hostsCIDR: config.hostsCIDR ?? hostsCidrFor(base) };
}

export function saveConfig(config: DevConfig): void {
  const paths = statePaths(config.stateDir);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  writeFileSync(paths.config, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
}
