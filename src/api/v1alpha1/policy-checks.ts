/**
 * `clusterPolicyProblems` / `machinePolicyProblems`: where a spec the schema accepts goes beyond
 * what the admin policy (admin-policy.ts) allows. Each problem names the field and the policy rule,
 * so a tenant knows what to change and an admin knows which setting refused it.
 */
import { parseCidr, parseIP } from "./cidr";
import { cidrContains } from "./addresses";
import type { ClusterSpec } from "./cluster";
import { DEFAULT_IMAGE_REPOSITORY } from "./cluster-defaults";
import { DEFAULT_FLANNEL_IMAGE } from "./addons";
import { DENIED_EXTRA_ARGS, type ResolvedAdminPolicy } from "./admin-policy";
import { backupEndpointPolicyProblems } from "./backup-endpoints";
import type { MachineSpec } from "./machine";
import type { ClusterPackageVersionSpec } from "./package-version";
import { mirrorLocation } from "./registry-mirrors";
import { parseQuantity } from "./quantity";
import type { Problem } from "./validation";

export interface PolicyProblem extends Problem {
  /** The policy setting that refused the field, e.g. `allowedRegistries`. */
  readonly rule: string;
}

export const formatPolicyProblem = (p: PolicyProblem): string => `${p.path}: ${p.message} (admin policy: ${p.rule})`;

/** Whether an image or repository lies under a registry prefix, at a `/` boundary. */
export function underRegistry(image: string, prefix: string): boolean {
  return image === prefix || image.startsWith(`${prefix}/`);
}

const globToRegExp = (glob: string) => new RegExp(`^${glob.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\-]/g, "\\$&")).join(".*")}$`);

/** Whether a flag is matched by any of the patterns (`*` matches any text). */
export const flagMatches = (flag: string, globs: readonly string[]): string | undefined => globs.find((g) => globToRegExp(g).test(flag));

/** Whether `path` is a prefix directory or lies under it (segment by segment). */
const underPrefix = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}/`);

const COMPONENTS = ["etcd", "apiServer", "controllerManager", "scheduler"] as const;

/** Every way `spec` (already valid by validateClusterSpec) exceeds `policy`. */
export function clusterPolicyProblems(spec: ClusterSpec, policy: ResolvedAdminPolicy, path = "spec"): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const add = (suffix: string, rule: string, message: string) => problems.push({ path: `${path}.${suffix}`, rule, message });
  const registries = policy.allowedRegistries;
  const registryText = registries.length ? registries.join(", ") : "none";

  const repository = spec.imageRepository ?? DEFAULT_IMAGE_REPOSITORY;
  if (!registries.some((r) => underRegistry(repository, r))) {
    add("imageRepository", "allowedRegistries", `"${repository}"${spec.imageRepository ? "" : " (the default)"} is not an allowed registry (${registryText})`);
  }
  if (spec.etcd.image !== undefined && !registries.some((r) => underRegistry(spec.etcd.image as string, r))) {
    add("etcd.image", "allowedRegistries", `"${spec.etcd.image}" is not from an allowed registry (${registryText})`);
  }

  // The pod network's image runs privileged on the workers. Those are the tenant's own hosts in
  // the tenant's own cluster (its admin kubeconfig can run anything there), so this is not a wall
  // between tenants: it keeps a chosen image where the platform's images come from, as for the
  // sandbox image. The default, the release the platform pins (addons.ts), is not a tenant's choice.
  const flannel = spec.addons?.network?.image;
  if (flannel !== undefined && flannel !== DEFAULT_FLANNEL_IMAGE && !registries.some((r) => underRegistry(flannel, r))) {
    add("addons.network.image", "allowedRegistries", `"${flannel}" is not from an allowed registry (${registryText})`);
  }

  problems.push(...storagePolicyProblems(spec.etcd.storage, policy, `${path}.etcd.storage`));

  for (const component of COMPONENTS) {
    const c = spec[component];
    if (c) problems.push(...componentPolicyProblems(c, policy, `${path}.${component}`));
  }

  const service = spec.apiServer?.service;
  const { allowedTypes, allowedAnnotations } = policy.apiServerService;
  const serviceType = service?.type ?? "ClusterIP";
  if (!allowedTypes.includes(serviceType)) {
    add("apiServer.service.type", "apiServerService.allowedTypes", `${serviceType} is not an allowed Service type (${allowedTypes.join(", ") || "none"})`);
  }
  for (const key of Object.keys(service?.annotations ?? {})) {
    if (!flagMatches(key, allowedAnnotations)) {
      add(`apiServer.service.annotations["${key}"]`, "apiServerService.allowedAnnotations", `annotations steer the platform's Service controllers; allowed: ${allowedAnnotations.join(", ") || "none"}`);
    }
  }

  const { allowedNodeSelectorKeys, requiredNodeSelector, allowedTolerationKeys } = policy.masters;
  for (const key of Object.keys(spec.masterNodeSelector ?? {})) {
    if (!allowedNodeSelectorKeys.includes(key) && !(key in requiredNodeSelector)) {
      add(`masterNodeSelector["${key}"]`, "masters.allowedNodeSelectorKeys", `the masters may only select nodes by ${[...allowedNodeSelectorKeys, ...Object.keys(requiredNodeSelector)].join(", ")}`);
    }
  }
  for (const [key, value] of Object.entries(requiredNodeSelector)) {
    if (spec.masterNodeSelector?.[key] !== value) {
      add(`masterNodeSelector["${key}"]`, "masters.requiredNodeSelector", `must be "${value}": the platform runs masters only on that node pool`);
    }
  }
  (spec.masterTolerations ?? []).forEach((t, i) => {
    if (t.key === undefined || t.key === "") {
      add(`masterTolerations[${i}]`, "masters.allowedTolerationKeys", "a toleration without a key tolerates every taint (control-plane and platform nodes included); name the taint");
    } else if (!allowedTolerationKeys.includes(t.key)) {
      add(`masterTolerations[${i}].key`, "masters.allowedTolerationKeys", `"${t.key}" is not a taint the masters may tolerate (${allowedTolerationKeys.join(", ") || "none"})`);
    }
  });
  problems.push(...backupEndpointPolicyProblems(spec, policy.allowedBackupEndpoints, path));
  return problems;
}

/** The caps on one master component: replicas, CPU and memory per container, and its extra flags. */
function componentPolicyProblems(c: NonNullable<ClusterSpec[(typeof COMPONENTS)[number]]>, policy: ResolvedAdminPolicy, path: string): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const add = (suffix: string, rule: string, message: string) => problems.push({ path: `${path}.${suffix}`, rule, message });
  if (c.replicas !== undefined && c.replicas > policy.caps.maxReplicas) {
    add("replicas", "caps.maxReplicas", `${c.replicas} replicas exceed the cap of ${policy.caps.maxReplicas}`);
  }
  for (const kind of ["requests", "limits"] as const) {
    for (const [resource, value] of Object.entries(c.resources?.[kind] ?? {})) {
      const cap = resource === "cpu" ? ["caps.maxCpu", policy.caps.maxCpu] : resource === "memory" ? ["caps.maxMemory", policy.caps.maxMemory] : undefined;
      if (cap && (parseQuantity(value) ?? Infinity) > (parseQuantity(cap[1]) ?? 0)) {
        add(`resources.${kind}.${resource}`, cap[0], `${value} exceeds the cap of ${cap[1]} per container`);
      }
    }
  }
  for (const flag of Object.keys(c.extraArgs ?? {})) {
    const builtIn = flagMatches(flag, policy.extraArgs.exempt) ? undefined : flagMatches(flag, DENIED_EXTRA_ARGS);
    const denied = builtIn ?? flagMatches(flag, policy.extraArgs.denied);
    if (denied) {
      add(`extraArgs["${flag}"]`, "extraArgs.denied", `--${flag} is security-relevant and set by the platform (matches "${denied}")`);
    } else if (policy.extraArgs.allowed && !flagMatches(flag, policy.extraArgs.allowed)) {
      add(`extraArgs["${flag}"]`, "extraArgs.allowed", `--${flag} is not among the allowed flags (${policy.extraArgs.allowed.join(", ") || "none"})`);
    }
  }
  return problems;
}

function storagePolicyProblems(storage: ClusterSpec["etcd"]["storage"], policy: ResolvedAdminPolicy, path: string): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const allowed = policy.etcdVolumeTypes;
  const maxStorage = policy.caps.maxEtcdStorage;
  const overCap = (size: string) => (parseQuantity(size) ?? Infinity) > (parseQuantity(maxStorage) ?? 0);
  if (storage.claimTemplate) {
    if (!allowed.includes("claimTemplate")) {
      problems.push({ path: `${path}.claimTemplate`, rule: "etcdVolumeTypes", message: `claimTemplate is not an allowed etcd volume type (${allowed.join(", ")})` });
    }
    if (overCap(storage.claimTemplate.size)) {
      problems.push({ path: `${path}.claimTemplate.size`, rule: "caps.maxEtcdStorage", message: `${storage.claimTemplate.size} exceeds the cap of ${maxStorage}` });
    }
  }
  const source = storage.volumeSource;
  if (source?.emptyDir) {
    if (!allowed.includes("emptyDir")) {
      problems.push({ path: `${path}.volumeSource.emptyDir`, rule: "etcdVolumeTypes", message: `emptyDir is not an allowed etcd volume type (${allowed.join(", ")})` });
    }
    if (source.emptyDir.sizeLimit !== undefined && overCap(source.emptyDir.sizeLimit)) {
      problems.push({ path: `${path}.volumeSource.emptyDir.sizeLimit`, rule: "caps.maxEtcdStorage", message: `${source.emptyDir.sizeLimit} exceeds the cap of ${maxStorage}` });
    }
  }
  if (source?.hostPath) {
    if (!allowed.includes("hostPath")) {
      problems.push({
        path: `${path}.volumeSource.hostPath`,
        rule: "etcdVolumeTypes",
        message: `hostPath is not an allowed etcd volume type (${allowed.join(", ")}): a path on the meta-cluster's node is the platform's`,
      });
    } else if (!policy.hostPathPrefixes.some((prefix) => underPrefix(source.hostPath?.path ?? "", prefix))) {
      problems.push({
        path: `${path}.volumeSource.hostPath.path`,
        rule: "hostPathPrefixes",
        message: `"${source.hostPath.path}" is not under an allowed directory (${policy.hostPathPrefixes.join(", ") || "none"})`,
      });
    }
  }
  return problems;
}

/** Every way a Machine's spec (already valid by validateMachineSpec) exceeds `policy`. */
export function machinePolicyProblems(spec: MachineSpec, policy: ResolvedAdminPolicy, path = "spec"): PolicyProblem[] {
  if (!parseIP(spec.ip)) return [];
  const inAny = (list: readonly string[]) => list.find((text) => {
    const cidr = parseCidr(text);
    return cidr !== undefined && cidrContains(cidr, spec.ip);
  });
  const { allowed, denied } = policy.sshTargets;
  const deniedBy = inAny(denied);
  if (deniedBy) {
    return [{ path: `${path}.ip`, rule: "sshTargets.denied", message: `${spec.ip} is in ${deniedBy}, where the operator may not open SSH connections` }];
  }
  if (!inAny(allowed)) {
    return [{ path: `${path}.ip`, rule: "sshTargets.allowed", message: `${spec.ip} is outside the ranges worker hosts may be in (${allowed.join(", ") || "none"})` }];
  }
  return [];
}

/**
 * Every way a catalog's runtime settings exceed `policy`: a mirror is where the workers' images
 * really come from, so each mirror (host[:port][/path]) and the sandbox image must lie under an
 * allowed registry, as the masters' imageRepository must.
 */
export function packageVersionPolicyProblems(spec: Pick<ClusterPackageVersionSpec, "registryMirrors" | "sandboxImage">, policy: ResolvedAdminPolicy, path = "spec"): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const registries = policy.allowedRegistries;
  const registryText = registries.length ? registries.join(", ") : "none";
  const allowed = (location: string) => registries.some((r) => underRegistry(location, r));
  if (spec.sandboxImage !== undefined && !allowed(spec.sandboxImage)) {
    problems.push({ path: `${path}.sandboxImage`, rule: "allowedRegistries", message: `"${spec.sandboxImage}" is not from an allowed registry (${registryText})` });
  }
  for (const [registry, urls] of Object.entries(spec.registryMirrors ?? {})) {
    urls.forEach((url, i) => {
      if (!allowed(mirrorLocation(url))) {
        problems.push({ path: `${path}.registryMirrors[${JSON.stringify(registry)}][${i}]`, rule: "allowedRegistries", message: `"${url}" is not under an allowed registry (${registryText})` });
      }
    });
  }
  return problems;
}
