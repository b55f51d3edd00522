/**
 * `validateClusterSpec`: every problem of a ClusterSpec, each with its field path. Structural
 * checks come from the schema; the semantic ones (versions, CIDRs, storage choice, certificate
 * windows, uniqueness) are written out here.
 */
import { ClusterSpec } from "./cluster";
import { cidrSize, cidrsOverlap, formatCidr, isIP, parseCidr, type Cidr } from "./cidr";
import {
  isCertificateHost,
  isDns1035Label,
  isDns1123Label,
  isDns1123Subdomain,
  isQuantity,
  labelProblems,
  preferSemantic,
  quoteShort,
  schemaProblems,
  type Problem,
} from "./validation";
import {
  etcdSupportProblem,
  KUBE_PROXY_NFTABLES_MIN_MINOR,
  kubeProxySkewProblem,
  kubernetesSupportProblem,
  parseKubernetesVersion,
  parsePlainVersion,
} from "./versions";
import { CLUSTER_DNS_ADDRESS_INDEX } from "./addons";
import { stackNameProblems } from "./name-limits";
import { etcdBackupProblems } from "./etcd-backup-validation";
import type { ResourceRequirements } from "./common";

/** Longest cluster name: derived object names (`<name>-apiserver-headless`) must stay DNS labels. */
export const MAX_CLUSTER_NAME_LENGTH = 40;
export const MAX_ETCD_MEMBERS = 7;

/**
 * Problems of the name a cluster's objects are derived from; with the namespace, also of its
 * stack name (see name-limits.ts).
 */
export function clusterNameProblems(name: string, path = "metadata.name", namespace?: string): Problem[] {
  if (isDns1035Label(name, MAX_CLUSTER_NAME_LENGTH)) return stackNameProblems("Cluster", namespace, name, path);
  return [
    {
      path,
      message: `${quoteShort(name)} must be a lowercase DNS label (a-z, 0-9, "-", starting with a letter) of at most ${MAX_CLUSTER_NAME_LENGTH} characters`,
    },
  ];
}

/**
 * Every problem of `spec`; an empty list means valid. `path` is the prefix of the field paths
 * (`spec` for a Cluster resource, `kube-on-kube:cluster` for stack config).
 */
export function validateClusterSpec(spec: unknown, path = "spec"): Problem[] {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    return [{ path, message: "must be an object with at least mode, kubernetesVersion and etcd" }];
  }
  const problems = schemaProblems(ClusterSpec, spec, path);
  // Semantic checks read fields defensively: the schema may already have reported wrong types.
  const s = spec as Partial<ClusterSpec>;
  const at = (suffix: string) => `${path}.${suffix}`;
  const add = (suffix: string, message: string) => problems.push({ path: at(suffix), message });

  if (typeof s.kubernetesVersion === "string") {
    const version = parseKubernetesVersion(s.kubernetesVersion);
    const unsupported = version && kubernetesSupportProblem(version);
    if (!version) add("kubernetesVersion", `${quoteShort(s.kubernetesVersion)} is not a Kubernetes version like v1.36.3 (the leading "v" is required)`);
    else if (unsupported) add("kubernetesVersion", unsupported);
  }
  if (typeof s.imageRepository === "string") {
    const repo = s.imageRepository;
    if (repo === "" || repo.endsWith("/") || /[:@]\S*$/.test(repo.split("/").pop() ?? "")) {
      add("imageRepository", `"${repo}" must be a registry path without a trailing "/", tag or digest, e.g. registry.k8s.io`);
    }
  }
  problems.push(...labelProblems(s.masterNodeSelector, at("masterNodeSelector")));

  problems.push(...etcdProblems(s.etcd, at("etcd")));
  problems.push(...apiServerProblems(s.apiServer, at("apiServer")));
  for (const key of ["controllerManager", "scheduler"] as const) {
    const component = s[key];
    if (component && typeof component === "object") {
      problems.push(...resourceProblems(component.resources, at(`${key}.resources`)));
      problems.push(...extraArgProblems(component.extraArgs, at(`${key}.extraArgs`)));
    }
  }

  problems.push(...networkProblems(s.network, at("network"), s.controllerManager?.extraArgs));
  problems.push(...addonProblems(s.addons, s.kubernetesVersion, at("addons")));
  problems.push(...certificateProblems(s, path));
  return preferSemantic(problems);
}

function etcdProblems(etcd: Partial<ClusterSpec>["etcd"], path: string): Problem[] {
  const problems: Problem[] = [];
  if (!etcd || typeof etcd !== "object") return problems;
  const at = (suffix: string) => `${path}.${suffix}`;
  const add = (suffix: string, message: string) => problems.push({ path: at(suffix), message });
  if (typeof etcd.version === "string") {
    const version = parsePlainVersion(etcd.version);
    const unsupported = version && etcdSupportProblem(version);
    if (!version) add("version", `${quoteShort(etcd.version)} is not an etcd version like 3.6.16 (no leading "v")`);
    else if (unsupported) add("version", unsupported);
  }
  if (typeof etcd.replicas === "number" && Number.isInteger(etcd.replicas) && etcd.replicas >= 1) {
    if (etcd.replicas % 2 === 0) {
      add("replicas", `must be odd (got ${etcd.replicas}): an even member count tolerates no more failures than one fewer`);
    } else if (etcd.replicas > MAX_ETCD_MEMBERS) {
      add("replicas", `at most ${MAX_ETCD_MEMBERS} members (got ${etcd.replicas}): more slows every write`);
    }
  }
  problems.push(...storageProblems(etcd.storage, at("storage")));
  problems.push(...resourceProblems(etcd.resources, at("resources")));
  problems.push(...extraArgProblems(etcd.extraArgs, at("extraArgs")));
  problems.push(...etcdBackupProblems(etcd, path));
  return problems;
}

function apiServerProblems(api: Partial<ClusterSpec>["apiServer"], path: string): Problem[] {
  const problems: Problem[] = [];
  if (!api || typeof api !== "object") return problems;
  const at = (suffix: string) => `${path}.${suffix}`;
  const add = (suffix: string, message: string) => problems.push({ path: at(suffix), message });
  const service = api.service;
  if (service && typeof service === "object") {
    if (typeof service.externalHost === "string" && !isCertificateHost(service.externalHost)) {
      add("service.externalHost", `"${service.externalHost}" is not a DNS name or IP address`);
    }
    if (service.nodePort !== undefined && service.type !== "NodePort") {
      add("service.nodePort", `is only allowed with type NodePort (type is ${service.type ?? "ClusterIP"})`);
    }
  }
  if (typeof api.advertiseAddress === "string" && !isIP(api.advertiseAddress)) {
    add("advertiseAddress", `"${api.advertiseAddress}" must be an IP address`);
  }
  (Array.isArray(api.certSANs) ? api.certSANs : []).forEach((san, i) => {
    if (typeof san === "string" && !isCertificateHost(san)) {
      add(`certSANs[${i}]`, `"${san}" is not a DNS name or IP address`);
    }
  });
  problems.push(...resourceProblems(api.resources, at("resources")));
  problems.push(...extraArgProblems(api.extraArgs, at("extraArgs")));
  return problems;
}

function storageProblems(storage: unknown, path: string): Problem[] {
  if (!storage || typeof storage !== "object") return [];
  const { claimTemplate, volumeSource } = storage as ClusterSpec["etcd"]["storage"];
  if (claimTemplate === undefined && volumeSource === undefined) {
    return [{ path, message: "set exactly one of claimTemplate or volumeSource (neither is set)" }];
  }
  if (claimTemplate !== undefined && volumeSource !== undefined) {
    return [{ path, message: "set exactly one of claimTemplate or volumeSource (both are set)" }];
  }
  const problems: Problem[] = [];
  if (claimTemplate && typeof claimTemplate.size === "string" && !isQuantity(claimTemplate.size)) {
    problems.push({ path: `${path}.claimTemplate.size`, message: `"${claimTemplate.size}" is not a quantity like 20Gi` });
  }
  if (volumeSource && typeof volumeSource === "object") {
    const kinds = Object.keys(volumeSource);
    if (kinds.length !== 1) {
      problems.push({
        path: `${path}.volumeSource`,
        message: `must name exactly one volume type, e.g. { hostPath: { path: /data/etcd } } (got ${kinds.length ? kinds.join(", ") : "none"})`,
      });
    }
    const hostPath = (volumeSource as { hostPath?: { path?: unknown } }).hostPath;
    if (hostPath && typeof hostPath.path === "string" && !isNormalAbsolutePath(hostPath.path)) {
      problems.push({
        path: `${path}.volumeSource.hostPath.path`,
        message: `${quoteShort(hostPath.path)} must be an absolute path without "." or ".." segments, empty segments or a trailing "/"`,
      });
    }
  }
  return problems;
}

/** `/var/lib/etcd`, not `/var/lib/../..` or `/var//x`: prefixes are compared segment by segment. */
export function isNormalAbsolutePath(path: string): boolean {
  if (path === "/") return true;
  if (!path.startsWith("/") || path.endsWith("/")) return false;
  return path.slice(1).split("/").every((segment) => segment !== "" && segment !== "." && segment !== "..");
}

function resourceProblems(resources: ResourceRequirements | undefined, path: string): Problem[] {
  const problems: Problem[] = [];
  for (const kind of ["requests", "limits"] as const) {
    for (const [name, quantity] of Object.entries(resources?.[kind] ?? {})) {
      if (typeof quantity === "string" && !isQuantity(quantity)) {
        problems.push({ path: `${path}.${kind}.${name}`, message: `"${quantity}" is not a quantity like 250m or 512Mi` });
      }
    }
  }
  return problems;
}

function extraArgProblems(args: Record<string, string> | undefined, path: string): Problem[] {
  return Object.keys(args ?? {})
    .filter((flag) => !/^[a-z0-9][a-z0-9-]*$/.test(flag))
    .map((flag) => ({ path: `${path}["${flag}"]`, message: "flag names are lowercase words joined by '-', without leading dashes" }));
}

/** kube-controller-manager's default per-Node range (`--node-cidr-mask-size-ipv4/-ipv6`). */
export const DEFAULT_NODE_CIDR_MASK = { 4: 24, 6: 64 } as const;
/** At most this many bits between the Pod range and a Node's part of it (kube-controller-manager's cidrset). */
export const MAX_NODE_CIDR_BITS = 16;

function networkProblems(network: ClusterSpec["network"], path: string, controllerManagerArgs?: Record<string, string>): Problem[] {
  if (!network || typeof network !== "object") return [];
  const problems: Problem[] = [];
  const parsed: Record<string, Cidr> = {};
  for (const key of ["serviceCIDR", "podCIDR"] as const) {
    const text = network[key];
    if (typeof text !== "string") continue;
    const cidr = parseCidr(text);
    if (!cidr) {
      problems.push({ path: `${path}.${key}`, message: `"${text}" is not a CIDR like 10.96.0.0/12` });
    } else if (cidr.hostBitsSet) {
      problems.push({ path: `${path}.${key}`, message: `"${text}" has host bits set; did you mean ${formatCidr(cidr)}?` });
    } else {
      parsed[key] = cidr;
    }
  }
  const service = parsed.serviceCIDR;
  if (service) {
    const minPrefix = service.family === 4 ? 12 : 108;
    if (service.prefix < minPrefix) {
      problems.push({ path: `${path}.serviceCIDR`, message: `is too large: kube-apiserver needs a prefix of at least /${minPrefix}` });
    } else if (cidrSize(service) <= BigInt(CLUSTER_DNS_ADDRESS_INDEX)) {
      // The kubelets' clusterDNS is the 10th address whether or not our CoreDNS runs (a platform's own DNS takes it too).
      const smallest = service.family === 4 ? 28 : 124;
      problems.push({
        path: `${path}.serviceCIDR`,
        message: `is too small: it needs room for the kubernetes Service (1st address) and the cluster DNS Service (${CLUSTER_DNS_ADDRESS_INDEX}th); use /${smallest} or larger`,
      });
    }
  }
  const pods = parsed.podCIDR;
  if (pods) {
    // The controller-manager (--allocate-node-cidrs) gives each Node a part of the Pod range; it refuses to start on a range that cannot hold one, or that holds more than 2^16.
    const override = controllerManagerArgs?.[`node-cidr-mask-size-ipv${pods.family}`] ?? controllerManagerArgs?.["node-cidr-mask-size"];
    const nodeMask = override !== undefined && /^\d{1,3}$/.test(override) ? Number(override) : DEFAULT_NODE_CIDR_MASK[pods.family];
    if (pods.prefix > nodeMask) {
      problems.push({ path: `${path}.podCIDR`, message: `is too small: each Node gets a /${nodeMask} of it (kube-controller-manager --node-cidr-mask-size), so it must be /${nodeMask} or larger` });
    } else if (nodeMask - pods.prefix > MAX_NODE_CIDR_BITS) {
      problems.push({
        path: `${path}.podCIDR`,
        message: `is too large for per-Node ranges of /${nodeMask}: kube-controller-manager splits it into at most 2^${MAX_NODE_CIDR_BITS} of them, so use /${nodeMask - MAX_NODE_CIDR_BITS} or smaller`,
      });
    }
  }
  if (service && parsed.podCIDR && cidrsOverlap(service, parsed.podCIDR)) {
    problems.push({ path: `${path}.podCIDR`, message: `overlaps serviceCIDR ${network.serviceCIDR}; Service and Pod ranges must be disjoint` });
  }
  if (typeof network.clusterDomain === "string" && !isDns1123Subdomain(network.clusterDomain)) {
    problems.push({ path: `${path}.clusterDomain`, message: `"${network.clusterDomain}" is not a DNS domain like cluster.local` });
  }
  return problems;
}

/** The add-ons' versions against the masters' (skew policy) and kube-proxy's mode against its version. */
function addonProblems(addons: Partial<ClusterSpec>["addons"], kubernetesVersion: unknown, path: string): Problem[] {
  if (!addons || typeof addons !== "object") return [];
  const problems: Problem[] = [];
  const proxy = addons.kubeProxy;
  if (!proxy || typeof proxy !== "object") return problems;
  const masters = typeof kubernetesVersion === "string" ? parseKubernetesVersion(kubernetesVersion) : undefined;
  const own = typeof proxy.version === "string" ? parseKubernetesVersion(proxy.version) : undefined;
  const skew = own && masters && kubeProxySkewProblem(own, masters);
  if (skew) problems.push({ path: `${path}.kubeProxy.version`, message: skew });
  const running = own ?? masters;
  if (proxy.mode === "nftables" && running && running.major === 1 && running.minor < KUBE_PROXY_NFTABLES_MIN_MINOR) {
    problems.push({
      path: `${path}.kubeProxy.mode`,
      message: `nftables needs kube-proxy v1.${KUBE_PROXY_NFTABLES_MIN_MINOR} or later (this one runs v${running.major}.${running.minor}); use iptables`,
    });
  }
  return problems;
}

function certificateProblems(s: Partial<ClusterSpec>, path: string): Problem[] {
  const problems: Problem[] = [];
  const c = s.certificates ?? {};
  const validity = typeof c.validityDays === "number" ? c.validityDays : 365;
  const renewBefore = typeof c.renewBeforeDays === "number" ? c.renewBeforeDays : 30;
  const caValidity = typeof c.caValidityDays === "number" ? c.caValidityDays : 3650;
  if (renewBefore >= validity) {
    problems.push({
      path: `${path}.certificates.renewBeforeDays`,
      message: `(${renewBefore}) must be shorter than validityDays (${validity}), or certificates are re-issued on every refresh`,
    });
  }
  if (validity > caValidity) {
    problems.push({
      path: `${path}.certificates.validityDays`,
      message: `(${validity}) must not exceed caValidityDays (${caValidity}): a leaf cannot outlive its CA`,
    });
  }
  const seen = new Map<string, number>();
  (Array.isArray(s.kubeconfigs) ? s.kubeconfigs : []).forEach((k, i) => {
    const at = `${path}.kubeconfigs[${i}]`;
    if (!k || typeof k !== "object") return;
    if (typeof k.name === "string") {
      if (!isDns1123Label(k.name) || k.name.length > 40) {
        problems.push({ path: `${at}.name`, message: `"${k.name}" must be a lowercase DNS label of at most 40 characters` });
      }
      const first = seen.get(k.name);
      if (first !== undefined) {
        problems.push({ path: `${at}.name`, message: `"${k.name}" is also the name of kubeconfigs[${first}]; names must be unique` });
      } else {
        seen.set(k.name, i);
      }
    }
    (Array.isArray(k.groups) ? k.groups : []).forEach((group, g) => {
      if (typeof group === "string" && group.startsWith("system:")) {
        problems.push({
          path: `${at}.groups[${g}]`,
          message: `"${group}" is a system: group, reserved for Kubernetes itself (system:masters bypasses RBAC and a certificate cannot be revoked); use a group bound with RBAC`,
        });
      }
    });
    if (typeof k.user === "string" && k.user.startsWith("system:")) {
      problems.push({ path: `${at}.user`, message: `"${k.user}" is a system: user, reserved for Kubernetes components and nodes` });
    }
    if (Array.isArray(k.groups) && k.groups.length > 1) {
      problems.push({
        path: `${at}.groups`,
        message: `lists ${k.groups.length} groups; the client certificate carries one organization, so bind further groups to the user with RBAC`,
      });
    }
    if (typeof k.user === "string" && k.user.trim() === "") {
      problems.push({ path: `${at}.user`, message: "must not be empty" });
    }
    if (typeof k.validityDays === "number") {
      if (k.validityDays > caValidity) {
        problems.push({ path: `${at}.validityDays`, message: `(${k.validityDays}) must not exceed caValidityDays (${caValidity})` });
      }
    }
  });
  return problems;
}
