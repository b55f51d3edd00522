/**
 * Where a Cluster's backups may be sent: the admin policy's `allowedBackupEndpoints`. The
 * endpoint is tenant input, and the backup job that dials it runs in the masters' namespace, with
 * that namespace's network reach (etcd of this cluster, the meta-cluster's Services, whatever the
 * nodes route to). An unchecked endpoint is a server-side request forgery: a tenant could aim it
 * at the cloud's metadata service, the meta-cluster's apiserver or another tenant's store, and
 * read the answers back through error messages. So:
 *
 * - an endpoint must match an entry the platform listed (a host, a `*.` suffix, or a CIDR for an
 *   address written as such); nothing is allowed by default;
 * - plain http only where that entry says so (the credentials and the snapshot travel over it);
 * - loopback, link-local (169.254.169.254 and fe80::/10), unspecified, multicast, broadcast,
 *   IPv4-mapped IPv6, the metadata services' other addresses and names, and `localhost`, are
 *   refused whatever the policy lists: no entry can open them.
 *
 * A DNS name is matched as written; the platform vouches for where the names it lists resolve.
 * The backup Pod's NetworkPolicy (src/components/etcd-backup.ts) allows only the endpoint's port.
 */
import { parseCidr, parseIP } from "./cidr";
import { addressClass, cidrContains } from "./addresses";
import type { ClusterSpec } from "./cluster";
import { parseBackupEndpoint } from "./etcd-backup-validation";
import type { PolicyProblem } from "./policy-checks";
import { isDns1123Subdomain, quoteShort, type Problem } from "./validation";

/** One entry of `allowedBackupEndpoints` (exactly one of host or cidr). */
export interface BackupEndpointRule {
  readonly host?: string;
  readonly cidr?: string;
  readonly plainHttp?: boolean;
}

/** Metadata services outside link-local: AWS IMDS over IPv6, Alibaba Cloud. */
const METADATA_ADDRESSES = ["fd00:ec2::254", "100.100.100.200"];
const METADATA_NAMES = ["metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal", "metadata.azure.internal"];

/** Why no policy can allow `host` (an address or a lowercase name) as a backup endpoint, or undefined. */
export function refusedBackupHostProblem(host: string): string | undefined {
  const ip = parseIP(host);
  if (ip) {
    const kind = addressClass(host);
    if (kind && kind !== "unicast") return `${host} is a ${kind} address: the backup job would reach the meta-cluster's own host or its cloud metadata service`;
    if (METADATA_ADDRESSES.some((m) => parseIP(m)?.value === ip.value && parseIP(m)?.family === ip.family)) return `${host} is a cloud metadata service`;
    return undefined;
  }
  if (host === "localhost" || host.endsWith(".localhost")) return `${host} names the local host`;
  if (METADATA_NAMES.includes(host)) return `${host} names a cloud metadata service`;
  return undefined;
}

/** Whether a policy entry covers `host`. A `*.` entry covers every name under it, never the bare suffix. */
function ruleMatches(rule: BackupEndpointRule, host: string): boolean {
  if (rule.cidr !== undefined) {
    const cidr = parseCidr(rule.cidr);
    return cidr !== undefined && parseIP(host) !== undefined && cidrContains(cidr, host);
  }
  const pattern = rule.host?.toLowerCase();
  if (pattern === undefined) return false;
  if (pattern.startsWith("*.")) return !parseIP(host) && host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  const ip = parseIP(pattern);
  if (ip) {
    const other = parseIP(host);
    return other !== undefined && other.family === ip.family && other.value === ip.value;
  }
  return host === pattern;
}

const describe = (rule: BackupEndpointRule) => `${rule.host ?? rule.cidr}${rule.plainHttp ? " (http allowed)" : ""}`;

/** Every way spec.etcd.backup's endpoint goes beyond `allowedBackupEndpoints`; `path` is `spec`. */
export function backupEndpointPolicyProblems(spec: Pick<ClusterSpec, "etcd">, rules: readonly BackupEndpointRule[], path = "spec"): PolicyProblem[] {
  const endpoint = spec.etcd.backup?.store.s3.endpoint;
  if (endpoint === undefined) return [];
  const at = `${path}.etcd.backup.store.s3.endpoint`;
  const refuse = (rule: string, message: string): PolicyProblem[] => [{ path: at, rule, message }];
  const parsed = parseBackupEndpoint(endpoint);
  if ("problem" in parsed) return refuse("allowedBackupEndpoints", parsed.problem);
  const never = refusedBackupHostProblem(parsed.host);
  if (never) return refuse("allowedBackupEndpoints", `${quoteShort(endpoint)}: ${never}; no policy allows it`);
  const matching = rules.filter((rule) => ruleMatches(rule, parsed.host));
  if (!matching.length) {
    return refuse(
      "allowedBackupEndpoints",
      `${quoteShort(endpoint)} is not an allowed backup endpoint (${rules.length ? rules.map(describe).join(", ") : "none are allowed: the platform lists its object stores"})`,
    );
  }
  if (parsed.scheme === "http" && !matching.some((rule) => rule.plainHttp === true)) {
    return refuse("allowedBackupEndpoints", `${quoteShort(endpoint)} uses plain http, which the policy does not allow for ${parsed.host}: use https`);
  }
  return [];
}

/** Problems of the policy's own `allowedBackupEndpoints` list (the shape is the schema's). */
export function backupEndpointRuleProblems(rules: unknown, path = "policy.allowedBackupEndpoints"): Problem[] {
  if (!Array.isArray(rules)) return [];
  const problems: Problem[] = [];
  rules.forEach((rule: BackupEndpointRule, i) => {
    if (!rule || typeof rule !== "object") return;
    const at = `${path}[${i}]`;
    if ((rule.host === undefined) === (rule.cidr === undefined)) {
      problems.push({ path: at, message: "set exactly one of host or cidr" });
      return;
    }
    if (typeof rule.host === "string") {
      const name = rule.host.startsWith("*.") ? rule.host.slice(2) : rule.host;
      if (!parseIP(rule.host) && !isDns1123Subdomain(name)) {
        problems.push({ path: `${at}.host`, message: `${quoteShort(rule.host)} must be a lowercase DNS name, a "*." suffix or an IP address` });
      } else {
        const never = refusedBackupHostProblem(rule.host);
        if (never) problems.push({ path: `${at}.host`, message: `${never}; it is refused whatever the policy lists` });
      }
    }
    if (typeof rule.cidr === "string") {
      const cidr = parseCidr(rule.cidr);
      if (!cidr || cidr.hostBitsSet) problems.push({ path: `${at}.cidr`, message: `${quoteShort(rule.cidr)} is not a CIDR like 10.0.0.0/8 (without host bits)` });
    }
  });
  return problems;
}
