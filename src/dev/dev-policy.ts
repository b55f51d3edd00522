/**
 * The admin policy of the local environment (`npm start`, the e2e suites): its worker hosts are
 * sshd processes on 127.0.0.x / 127.0.1.x (sshd-hosts.ts) or network hosts in the hosts subnets
 * 10.250.0.0/16 (host-netns.ts), which the built-in policy refuses as the operator's own host or
 * does not know. Here, and only here, loopback and those subnets are the fleet, and nothing else is.
 * Given the dev cluster's config, its registry as the workers reach it is an allowed registry too,
 * so a catalog's `registryMirrors` may point there; and its object store as Pods reach it (plain
 * http on the node link, which never leaves the machine) is the one allowed etcd backup endpoint.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { DEFAULT_ADMIN_POLICY, resolveAdminPolicy, type AdminPolicy, type ResolvedAdminPolicy } from "../api/v1alpha1";
import { HOSTS_SUPERNET, type DevConfig } from "./config";
import { workersRegistry } from "./host-netns";
import { nodeLink } from "./node/layout";

export const DEV_ADMIN_POLICY_DOCUMENT: AdminPolicy = {
  sshTargets: { allowed: ["127.0.0.0/8", HOSTS_SUPERNET], denied: [] },
};

/** The policy document; with `config`, the dev registry at the machine's end of the node link is allowed. */
export function devAdminPolicyDocument(config?: DevConfig): AdminPolicy {
  if (!config) return DEV_ADMIN_POLICY_DOCUMENT;
  return {
    ...DEV_ADMIN_POLICY_DOCUMENT,
    allowedRegistries: [...DEFAULT_ADMIN_POLICY.allowedRegistries, workersRegistry(config)],
    allowedBackupEndpoints: [{ host: nodeLink(config.podCIDR).host, plainHttp: true }],
  };
}

export const devAdminPolicy = (config?: DevConfig): ResolvedAdminPolicy => resolveAdminPolicy(devAdminPolicyDocument(config));

/** Writes the policy as `kok operator --policy` reads it; returns the file's path. */
export function writeDevAdminPolicy(dir: string, config?: DevConfig): string {
  const file = join(dir, "admin-policy.yaml");
  writeFileSync(file, `# The local environment's admin policy (src/dev/dev-policy.ts)\n${stringify(devAdminPolicyDocument(config))}`);
  return file;
}
