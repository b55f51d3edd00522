/**
 * What a kubelet derives from a container spec before it starts a process: the environment
 * (literal values, the downward API, Secret and ConfigMap keys), `$(VAR)` expansion of command
 * and args, and the argv. Pure apart from the key lookups it is given.
 */
import type * as k8s from "@kubernetes/client-node";

/**
 * Kubernetes' expansion: `$(NAME)` becomes NAME's value when NAME is defined, stays as written
 * otherwise; `$$` is an escaped `$`.
 */
export function expand(text: string, env: Readonly<Record<string, string>>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === "$$") return "$";
    return name !== undefined && Object.prototype.hasOwnProperty.call(env, name) ? env[name] : match;
  });
}

export interface PodFacts {
  readonly pod: k8s.V1Pod;
  readonly podIP: string;
  readonly hostIP: string;
}

/** The downward API fields a kubelet serves through `fieldRef`. */
export function fieldValue(path: string, facts: PodFacts): string {
  const { pod } = facts;
  const annotation = /^metadata\.annotations\['(.+)'\]$/.exec(path);
  const label = /^metadata\.labels\['(.+)'\]$/.exec(path);
  if (annotation) return pod.metadata?.annotations?.[annotation[1]] ?? "";
  if (label) return pod.metadata?.labels?.[label[1]] ?? "";
  switch (path) {
    case "metadata.name":
      return pod.metadata?.name ?? "";
    case "metadata.namespace":
      return pod.metadata?.namespace ?? "";
    case "metadata.uid":
      return pod.metadata?.uid ?? "";
    case "spec.nodeName":
      return pod.spec?.nodeName ?? "";
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName ?? "";
    case "status.podIP":
    case "status.podIPs":
      return facts.podIP;
    case "status.hostIP":
    case "status.hostIPs":
      return facts.hostIP;
    default:
      throw new Error(`fieldRef ${path} is not supported by the kok dev node`);
  }
}

export type KeyLookup = (kind: "Secret" | "ConfigMap", namespace: string, name: string, key: string, optional: boolean) => Promise<string | undefined>;

/** The container's environment in declaration order; later values may use `$(EARLIER)`. */
export async function containerEnv(container: k8s.V1Container, facts: PodFacts, lookup: KeyLookup): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  const namespace = facts.pod.metadata?.namespace ?? "default";
  for (const from of container.envFrom ?? []) {
    const kind = from.secretRef ? "Secret" : "ConfigMap";
    const name = from.secretRef?.name ?? from.configMapRef?.name ?? "";
    const all = await lookup(kind, namespace, name, "*", Boolean(from.secretRef?.optional ?? from.configMapRef?.optional));
    for (const [key, value] of Object.entries(JSON.parse(all ?? "{}") as Record<string, string>)) env[`${from.prefix ?? ""}${key}`] = value;
  }
  for (const variable of container.env ?? []) {
    const source = variable.valueFrom;
    if (!source) {
      env[variable.name] = expand(variable.value ?? "", env);
    } else if (source.fieldRef) {
      env[variable.name] = fieldValue(source.fieldRef.fieldPath, facts);
    } else if (source.secretKeyRef) {
      const value = await lookup("Secret", namespace, source.secretKeyRef.name ?? "", source.secretKeyRef.key, Boolean(source.secretKeyRef.optional));
      if (value !== undefined) env[variable.name] = value;
    } else if (source.configMapKeyRef) {
      const value = await lookup("ConfigMap", namespace, source.configMapKeyRef.name ?? "", source.configMapKeyRef.key, Boolean(source.configMapKeyRef.optional));
      if (value !== undefined) env[variable.name] = value;
    } else {
      throw new Error(`env ${variable.name}: only value, fieldRef, secretKeyRef and configMapKeyRef are supported by the kok dev node`);
    }
  }
  return env;
}

/** command + args after expansion; the image's entrypoint (its binary) when command is empty. */
export function containerArgv(container: k8s.V1Container, imageBinary: string, env: Readonly<Record<string, string>>): string[] {
  const command = container.command?.length ? container.command : [imageBinary];
  return [...command, ...(container.args ?? [])].map((part) => expand(part, env));
}

const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

export interface BindMount {
  readonly source: string;
  readonly target: string;
  readonly readOnly: boolean;
  readonly isFile: boolean;
}

/**
 * The shell prelude run inside the Pod's private mount and UTS namespaces (made by `ip netns exec`
 * and `unshare --uts`, with mount propagation to the host cut) before it execs the container's
 * binary: the Pod's hostname, then each volume bind-mounted at its mountPath. Missing mount points
 * are created as empty directories (or files) on the host file system, since there is no image
 * root file system to hold them.
 */
export function containerPrelude(hostname: string, mounts: readonly BindMount[]): string {
  const lines = ["set -e", `hostname ${quote(hostname)}`];
  for (const m of mounts) {
    if (m.isFile) lines.push(`mkdir -p ${quote(m.target.slice(0, m.target.lastIndexOf("/")) || "/")}`, `[ -e ${quote(m.target)} ] || : > ${quote(m.target)}`);
    else lines.push(`mkdir -p ${quote(m.target)}`);
    lines.push(`mount --bind ${quote(m.source)} ${quote(m.target)}`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${quote(m.target)}`);
  }
  lines.push('exec "$0" "$@"');
  return lines.join("\n");
}
