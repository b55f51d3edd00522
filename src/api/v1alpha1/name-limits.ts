/**
 * How long the names of Clusters and Machines may be. Every object the operator derives from a
 * resource must stay a valid name, so the limits follow from the longest derivation:
 *
 * - the Pulumi stack `<namespace>.<name>`: Pulumi refuses stack names over 100 characters (the
 *   backends check `len(name) > 100`), so namespace + 1 + name ≤ 100 for both kinds;
 * - a Cluster's master objects (`<cluster>-apiserver-headless` is a Service: a DNS-1035 label of at
 *   most 63 characters; `<cluster>-etcd-<n>` a Pod hostname) bound the Cluster name to 40
 *   (`clusterNameProblems` in cluster-validation.ts);
 * - a Machine's name reaches only its stack name; it is kept to a DNS label (63) so the CRD can
 *   refuse a long one statically, where the namespace is not known to the rule.
 */
import type { Problem } from "./validation";

export const MAX_STACK_NAME_LENGTH = 100;
export const MAX_MACHINE_NAME_LENGTH = 63;

/** Problems of the stack name `<namespace>.<name>` an object of `kind` would get. */
export function stackNameProblems(kind: string, namespace: string | undefined, name: string, path = "metadata.name"): Problem[] {
  if (namespace === undefined) return [];
  const length = namespace.length + 1 + name.length;
  if (length <= MAX_STACK_NAME_LENGTH) return [];
  return [
    {
      path,
      message: `the ${kind}'s stack name "<namespace>.<name>" would be ${length} characters; Pulumi allows ${MAX_STACK_NAME_LENGTH}: shorten the name to at most ${MAX_STACK_NAME_LENGTH - 1 - namespace.length} characters in namespace "${namespace}"`,
    },
  ];
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Problems of a Machine's name (and with its namespace, of its stack name). */
export function machineNameProblems(name: string, namespace?: string, path = "metadata.name"): Problem[] {
  if (name.length > MAX_MACHINE_NAME_LENGTH || !DNS1123_SUBDOMAIN.test(name)) {
    return [{ path, message: `"${name.length > 80 ? `${name.slice(0, 77)}...` : name}" (${name.length} characters) must be a lowercase DNS name of at most ${MAX_MACHINE_NAME_LENGTH} characters` }];
  }
  return stackNameProblems("Machine", namespace, name, path);
}
