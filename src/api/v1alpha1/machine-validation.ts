/**
 * Validation of the worker-side kinds: `validateMachineSpec`, `validateClusterPackageVersionSpec`
 * and `validateNodePool` (the rules that only make sense for a set of machines under one rollout).
 * Each returns every problem with its field path; an empty list means valid.
 */
import { isIP } from "./cidr";
import { MachineSpec } from "./machine";
import {
  ClusterPackageVersionSpec,
  RolloutSpec,
  WorkerPackages,
  type IntOrPercent,
  type LabelSelector,
  type PackageArtifact,
} from "./package-version";
import { isDns1123Subdomain, labelProblems, preferSemantic, quoteShort, schemaProblems, type Problem } from "./validation";
import { refusedAddressProblem } from "./addresses";
import { registryMirrorsProblems } from "./registry-mirrors";
import { matches, PACKAGE_VERSION_PATTERN, POSIX_USER_PATTERN } from "./patterns";

const SHA256 = /^[0-9a-f]{64}$/;
const HOST_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
] as const;

/** Why `line` is not a pinnable SSH public host key ("<type> <base64>"), or undefined when it is. */
export function hostKeyProblem(line: string): string | undefined {
  // The pin is written into a known_hosts file: a second line (`@cert-authority * ...`) would
  // trust a CA the tenant holds for every host, so exactly one line of printable text is accepted.
  if (/[^ -~]/.test(line)) return "must be one known_hosts key on one line (no newline or control character)";
  if (line.startsWith("@")) return `markers like ${quoteShort(line.split(" ")[0])} are not accepted: pin the host's own key`;
  if (line !== line.trim()) return 'must be "<type> <base64 key> [comment]" separated by single spaces, without leading or trailing spaces';
  const fields = line.split(" ");
  if (fields.length < 2) return 'must be "<type> <base64 key>" as in known_hosts, e.g. "ssh-ed25519 AAAAC3Nza..."';
  const [type, blob] = fields;
  if (!(HOST_KEY_TYPES as readonly string[]).includes(type)) {
    return `key type "${type}" is not one of ${HOST_KEY_TYPES.join(", ")}`;
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || blob.length % 4 !== 0) return "the key is not base64";
  // The blob starts with its own type as an SSH string (uint32 length + bytes): a pasted key of
  // another type, or a truncated one, is caught here rather than as a refused connection later.
  const bytes = Buffer.from(blob, "base64");
  const length = bytes.length >= 4 ? bytes.readUInt32BE(0) : -1;
  if (length < 0 || bytes.length < 4 + length || bytes.subarray(4, 4 + length).toString("latin1") !== type) {
    return `the base64 key does not encode a ${type} key (truncated or mismatched type)`;
  }
  return undefined;
}

/** Problems of one artifact beyond its shape: URL scheme and sha256 format. */
function artifactProblems(artifact: Partial<PackageArtifact> | undefined, path: string): Problem[] {
  if (!artifact || typeof artifact !== "object") return [];
  const problems: Problem[] = [];
  if (typeof artifact.url === "string") {
    let url: URL | undefined;
    try {
      url = new URL(artifact.url);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || !url.hostname) {
      problems.push({ path: `${path}.url`, message: `"${artifact.url}" is not an http(s) URL` });
    } else if (url.username || url.password) {
      problems.push({ path: `${path}.url`, message: "must not carry credentials: URLs are shown in plans and logs" });
    }
  }
  if (typeof artifact.sha256 === "string" && !SHA256.test(artifact.sha256)) {
    problems.push({
      path: `${path}.sha256`,
      message: `must be 64 lowercase hex digits (got ${artifact.sha256.length} characters${/[A-F]/.test(artifact.sha256) ? ", with uppercase" : ""})`,
    });
  }
  if (typeof artifact.version === "string" && !matches(PACKAGE_VERSION_PATTERN, artifact.version)) {
    problems.push({
      path: `${path}.version`,
      message: `${quoteShort(artifact.version)} must be letters and digits joined by single ".", "_", "+", "~" or "-" (no "/", no ".."): it names a directory on the host`,
    });
  }
  return problems;
}

/** Every problem of a package set (schema plus URL and sha256 checks). */
export function validatePackages(packages: unknown, path: string): Problem[] {
  if (typeof packages !== "object" || packages === null || Array.isArray(packages)) {
    return [{ path, message: "must be an object with containerd, kubelet and cni (and optionally runc)" }];
  }
  const problems = schemaProblems(WorkerPackages, packages, path);
  for (const [name, artifact] of Object.entries(packages as Record<string, Partial<PackageArtifact>>)) {
    problems.push(...artifactProblems(artifact, `${path}.${name}`));
  }
  return preferSemantic(problems);
}

export interface MachineValidationOptions {
  /**
   * Where the SSH credentials come from: `secretRef` (a Machine resource: `ssh.credentialsSecretRef`
   * is required) or `inline` (the WorkerNode component's `credentials` argument).
   */
  readonly credentials?: "secretRef" | "inline";
  /** Whether a Machine without `ssh.hostKey` is accepted (the host key is then not checked). */
  readonly allowUnknownHostKey?: boolean;
}

/** Every problem of a MachineSpec, each with its field path under `path`. */
export function validateMachineSpec(spec: unknown, path = "spec", options: MachineValidationOptions = {}): Problem[] {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    return [{ path, message: "must be an object with at least clusterRef, ip, hostname and ssh" }];
  }
  const problems = schemaProblems(MachineSpec, spec, path);
  const s = spec as Partial<MachineSpec>;
  const add = (suffix: string, message: string) => problems.push({ path: `${path}.${suffix}`, message });

  if (typeof s.ip === "string") {
    const refused = isIP(s.ip) ? refusedAddressProblem(s.ip) : `${quoteShort(s.ip)} is not an IPv4 or IPv6 address`;
    if (refused) add("ip", refused);
  }
  if (typeof s.hostname === "string" && (!isDns1123Subdomain(s.hostname) || s.hostname.length > 63)) {
    add("hostname", `"${s.hostname}" must be a lowercase DNS name of at most 63 characters (it becomes the Node name)`);
  }
  if (typeof s.idc === "string" && labelProblems({ zone: s.idc }, "idc").length > 0) {
    add("idc", `"${s.idc}" is not a valid label value (it becomes topology.kubernetes.io/zone)`);
  }
  problems.push(...labelProblems(s.labels, `${path}.labels`));
  for (const reserved of ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]) {
    if (s.labels && reserved in s.labels) {
      add(`labels["${reserved}"]`, `is set by kube-on-kube (${reserved.endsWith("zone") ? "from idc" : "from hostname"}); remove it`);
    }
  }
  (Array.isArray(s.taints) ? s.taints : []).forEach((taint, i) => {
    if (taint && typeof taint.key === "string" && labelProblems({ [taint.key]: taint.value ?? "" }, "t").length > 0) {
      add(`taints[${i}]`, `key "${taint.key}" or value "${taint.value ?? ""}" is not valid for a taint`);
    }
  });

  const ssh = s.ssh;
  if (ssh && typeof ssh === "object") {
    if ((options.credentials ?? "secretRef") === "secretRef" && ssh.credentialsSecretRef === undefined) {
      add("ssh.credentialsSecretRef", "is required: name a Secret with key privateKey or password");
    }
    if (typeof ssh.user === "string" && !matches(POSIX_USER_PATTERN, ssh.user)) {
      add("ssh.user", `${quoteShort(ssh.user)} is not a POSIX user name (lowercase letters, digits, "_" and "-", starting with a letter or "_", at most 32)`);
    }
    if (typeof ssh.hostKey === "string") {
      const problem = hostKeyProblem(ssh.hostKey);
      if (problem) add("ssh.hostKey", problem);
    } else if (ssh.hostKey === undefined && !options.allowUnknownHostKey) {
      add("ssh.hostKey", "is required: without a pinned host key the SSH connection is open to impersonation (get it with `ssh-keyscan -t ed25519 <ip>` over a trusted path, or allow unknown host keys explicitly)");
    }
  }

  if (s.packages !== undefined && s.packageVersionRef !== undefined) {
    add("packages", "set either packages or packageVersionRef, not both");
  } else if (s.packages === undefined && s.packageVersionRef === undefined && (options.credentials ?? "secretRef") === "secretRef") {
    add("packageVersionRef", "set packageVersionRef (a ClusterPackageVersion) or packages");
  }
  if (s.packages !== undefined) problems.push(...validatePackages(s.packages, `${path}.packages`).filter(notSchemaDuplicate(problems)));
  return preferSemantic(problems);
}

const notSchemaDuplicate = (existing: Problem[]) => (p: Problem) =>
  !existing.some((e) => e.path === p.path && e.message === p.message);

/** Parses maxUnavailable; undefined when invalid. "N%" is N percent of the pool. */
export function parseIntOrPercent(value: IntOrPercent): { kind: "count" | "percent"; value: number } | undefined {
  if (typeof value === "number") return Number.isInteger(value) ? { kind: "count", value } : undefined;
  const match = /^(\d+)%$/.exec(value);
  return match ? { kind: "percent", value: Number(match[1]) } : undefined;
}

/** Problems of a rollout on its own (no pool known yet). */
export function validateRollout(rollout: unknown, path: string): Problem[] {
  if (rollout === undefined) return [];
  const problems = schemaProblems(RolloutSpec, rollout, path);
  const r = rollout as Partial<RolloutSpec>;
  if (r && typeof r === "object" && r.maxUnavailable !== undefined) {
    const parsed = typeof r.maxUnavailable === "number" || typeof r.maxUnavailable === "string"
      ? parseIntOrPercent(r.maxUnavailable)
      : undefined;
    if (parsed && parsed.value < 1) {
      problems.push({ path: `${path}.maxUnavailable`, message: `must be at least 1 or 1% (got ${JSON.stringify(r.maxUnavailable)}): the rollout could never make progress` });
    } else if (parsed?.kind === "percent" && parsed.value > 100) {
      problems.push({ path: `${path}.maxUnavailable`, message: `must be at most 100% (got ${r.maxUnavailable})` });
    }
  }
  if (r?.canary && typeof r.canary === "object") {
    problems.push(...labelProblems(r.canary.selector?.matchLabels, `${path}.canary.selector.matchLabels`));
    if (r.canary.selector === undefined && r.canary.count === 0) {
      problems.push({ path: `${path}.canary`, message: "selects no machine (no selector, count 0); remove it or set a count" });
    }
  }
  return problems;
}

/** Every problem of a ClusterPackageVersionSpec. */
export function validateClusterPackageVersionSpec(spec: unknown, path = "spec"): Problem[] {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    return [{ path, message: "must be an object with clusterRef and packages" }];
  }
  const problems = schemaProblems(ClusterPackageVersionSpec, spec, path);
  const s = spec as Partial<ClusterPackageVersionSpec>;
  if (s.packages !== undefined) {
    problems.push(...validatePackages(s.packages, `${path}.packages`).filter(notSchemaDuplicate(problems)));
  }
  problems.push(...validateRollout(s.rollout, `${path}.rollout`).filter(notSchemaDuplicate(problems)));
  // registryMirrors' own check covers every schema rule and names keys as ["registry.k8s.io"], not as path segments.
  const mirrorsPath = `${path}.registryMirrors`;
  const mirrorProblems = registryMirrorsProblems(s.registryMirrors, mirrorsPath);
  return [...preferSemantic(problems).filter((p) => !(mirrorProblems.length && p.path.startsWith(mirrorsPath))), ...mirrorProblems];
}

/** Whether a machine's labels satisfy a selector (an empty selector matches every machine). */
export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels?.[k] === v);
}

/** A machine of a pool: its name (unique in the pool) and spec. */
export interface PoolMachine {
  readonly name: string;
  readonly spec: MachineSpec;
}

/**
 * Pool-level rules: unique names, IPs and hostnames; one cluster; a canary that fits the pool.
 * Each machine's own spec is checked by `validateMachineSpec`; these are the rules between them.
 */
export function validateNodePool(machines: readonly PoolMachine[], rollout: RolloutSpec | undefined, path = "machines"): Problem[] {
  const problems: Problem[] = [];
  if (machines.length === 0) problems.push({ path, message: "a pool needs at least one machine" });
  for (const key of ["name", "ip", "hostname"] as const) {
    const first = new Map<string, number>();
    machines.forEach((m, i) => {
      const value = key === "name" ? m.name : m.spec?.[key];
      if (typeof value !== "string") return;
      const earlier = first.get(value);
      if (earlier === undefined) first.set(value, i);
      else problems.push({ path: `${path}[${i}]${key === "name" ? ".name" : `.spec.${key}`}`, message: `"${value}" is also used by ${path}[${earlier}]; must be unique in the pool` });
    });
  }
  const clusters = new Set(machines.map((m) => m.spec?.clusterRef?.name));
  if (clusters.size > 1) {
    problems.push({ path, message: `machines belong to different clusters (${[...clusters].join(", ")}); a pool serves one cluster` });
  }
  const canary = rollout?.canary;
  if (canary && machines.length > 0) {
    const matching = machines.filter((m) => selectorMatches(canary.selector, m.spec?.labels)).length;
    if (canary.count !== undefined && canary.count > machines.length) {
      problems.push({ path: "rollout.canary.count", message: `(${canary.count}) is larger than the pool (${machines.length} machines)` });
    } else if (canary.count !== undefined && canary.count >= machines.length && machines.length > 1) {
      problems.push({ path: "rollout.canary.count", message: `(${canary.count}) covers the whole pool (${machines.length} machines): there is nothing left to protect` });
    }
    if (canary.selector && matching === 0) {
      problems.push({ path: "rollout.canary.selector", message: `matches none of the ${machines.length} machines; label the canary machines or fix the selector` });
    }
  }
  return problems;
}
