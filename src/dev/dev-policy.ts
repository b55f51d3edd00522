/**
 * The admin policy of the local environment (`npm start`, the e2e suites): its worker hosts are
 * sshd processes on 127.0.0.x / 127.0.1.x (sshd-hosts.ts), which the built-in policy refuses as
 * the operator's own host. Here, and only here, loopback is the fleet, and nothing else is.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { resolveAdminPolicy, type AdminPolicy, type ResolvedAdminPolicy } from "../api/v1alpha1";

export const DEV_ADMIN_POLICY_DOCUMENT: AdminPolicy = {
  sshTargets: { allowed: ["127.0.0.0/8"], denied: [] },
};

export const devAdminPolicy = (): ResolvedAdminPolicy => resolveAdminPolicy(DEV_ADMIN_POLICY_DOCUMENT);

/** Writes the policy as `kok operator --policy` reads it; returns the file's path. */
export function writeDevAdminPolicy(dir: string): string {
  const file = join(dir, "admin-policy.yaml");
  writeFileSync(file, `# The local environment's admin policy (src/dev/dev-policy.ts)\n${stringify(DEV_ADMIN_POLICY_DOCUMENT)}`);
  return file;
}
