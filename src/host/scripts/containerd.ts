/**
 * containerd 2's configuration on a worker (config version 3, read by every containerd 2.x):
 * the CRI plugins `io.containerd.cri.v1.images` (sandbox image, registry hosts directory) and
 * `io.containerd.cri.v1.runtime` (runc with the kubelet's cgroup driver, CNI directories), every
 * path under the install root so one machine can hold several test hosts; and one
 * `certs.d/<registry>/hosts.toml` per mirrored registry.
 *
 * Mirror URLs and registry names come from a tenant's catalog and end up in files a root shell
 * script writes. They are validated before (registry-mirrors.ts), and checked again here, so a
 * value that slipped past validation fails the render rather than reaching a host: a registry
 * names a directory; every string is written as an escaped TOML basic string on one line.
 */
import {
  DEFAULT_IMAGE_REPOSITORY,
  defaultSandboxImage,
  IMAGE_PATTERN,
  matches,
  MIRROR_URL_PATTERN,
  REGISTRY_HOST_PATTERN,
  type ContainerRuntimeSettings,
} from "../../api/v1alpha1";
import { rootPrefix } from "./shell";

export type CgroupDriver = "systemd" | "cgroupfs";

/** Where containerd looks for `<registry>/hosts.toml` (relative to the install root). */
export const REGISTRY_HOSTS_DIR = "/etc/containerd/certs.d";
/** Marks a certs.d directory as written by kube-on-kube, so a mirror removed from the catalog is removed from the host (and an admin's own is left alone). */
export const MANAGED_MARKER = ".kube-on-kube";

/** A TOML basic string: quotes, backslashes and every control character escaped, so the value stays one string on one line. */
export function tomlString(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

/** The settings with their defaults, refusing what validation should already have refused. */
export function resolvedRuntime(settings: ContainerRuntimeSettings = {}): { sandboxImage: string; registryMirrors: [string, string[]][] } {
  const sandboxImage = settings.sandboxImage ?? defaultSandboxImage(DEFAULT_IMAGE_REPOSITORY);
  const bad: string[] = [];
  if (!matches(IMAGE_PATTERN, sandboxImage)) bad.push(`sandboxImage ${JSON.stringify(sandboxImage)}`);
  const registryMirrors = Object.entries(settings.registryMirrors ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [registry, urls] of registryMirrors) {
    if (!matches(REGISTRY_HOST_PATTERN, registry)) bad.push(`registry ${JSON.stringify(registry)}`);
    for (const url of urls) if (!matches(MIRROR_URL_PATTERN, url)) bad.push(`mirror ${JSON.stringify(url)} of ${JSON.stringify(registry)}`);
  }
  if (bad.length) throw new Error(`containerd settings refused (validate the catalog first): ${bad.join("; ")}`);
  return { sandboxImage, registryMirrors: registryMirrors.map(([r, urls]) => [r, [...urls]]) };
}

/** Settings of the host rather than of the catalog. */
export interface ContainerdHostSettings {
  /**
   * Never give a container a lower oom_score_adj than containerd's own. The kubelet asks for -998
   * for sandboxes and -997 for Guaranteed Pods; lowering a score needs CAP_SYS_RESOURCE, which
   * some hosts (VMs and containers with a reduced capability set, such as this project's sandbox
   * hosts) do not grant, and runc then fails every sandbox ("failed to update
   * /proc/self/oom_score_adj: Permission denied"). Default false.
   */
  readonly restrictOomScoreAdj?: boolean;
}

/** Whether an artifact version names containerd 1.x ("1.7.22", "v1.6.20~ds1"), which reads only config version 2. */
export const isContainerd1 = (version: string | undefined): boolean => version !== undefined && /^v?1\./.test(version);

/**
 * containerd's config.toml: version 3 for containerd 2, version 2 (the 1.x CRI plugin) when the
 * catalog still installs a containerd 1.x, so such a catalog keeps working and can be upgraded.
 */
export function containerdConfig(
  installRoot: string,
  cgroupDriver: CgroupDriver = "systemd",
  settings: ContainerRuntimeSettings = {},
  host: ContainerdHostSettings = {},
  containerdVersion?: string,
): string {
  const root = rootPrefix(installRoot);
  const { sandboxImage } = resolvedRuntime(settings);
  const at = (p: string) => tomlString(`${root}${p}`);
  if (isContainerd1(containerdVersion)) return legacyConfig(at, cgroupDriver, sandboxImage, host);
  return `version = 3
root = ${at("/var/lib/containerd")}
state = ${at("/run/containerd")}
# Nothing from the host's drop-in directory: this file is the whole configuration.
imports = []

[grpc]
  address = ${at("/run/containerd/containerd.sock")}

[ttrpc]
  address = ${at("/run/containerd/containerd.sock.ttrpc")}

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = ${tomlString(sandboxImage)}
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = ${at(REGISTRY_HOSTS_DIR)}

  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = ${host.restrictOomScoreAdj === true}
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          SystemdCgroup = ${cgroupDriver === "systemd"}
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [${at("/opt/cni/bin")}]
      conf_dir = ${at("/etc/cni/net.d")}

  # Per host, not the machine-wide /var/run/nri and /opt/containerd: test hosts share one machine.
  [plugins.'io.containerd.nri.v1.nri']
    socket_path = ${at("/var/run/nri/nri.sock")}
    plugin_path = ${at("/opt/nri/plugins")}
    plugin_config_path = ${at("/etc/nri/conf.d")}
  [plugins.'io.containerd.internal.v1.opt']
    path = ${at("/opt/containerd")}
`;
}

/** Config version 2 for containerd 1.6/1.7: one CRI plugin, `io.containerd.grpc.v1.cri`. */
function legacyConfig(at: (p: string) => string, cgroupDriver: CgroupDriver, sandboxImage: string, host: ContainerdHostSettings): string {
  return `version = 2
root = ${at("/var/lib/containerd")}
state = ${at("/run/containerd")}

[grpc]
  address = ${at("/run/containerd/containerd.sock")}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${tomlString(sandboxImage)}
  restrict_oom_score_adj = ${host.restrictOomScoreAdj === true}
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = ${cgroupDriver === "systemd"}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${at("/opt/cni/bin")}
    conf_dir = ${at("/etc/cni/net.d")}
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ${at(REGISTRY_HOSTS_DIR)}
`;
}

/** The upstream endpoint containerd uses when no mirror answers (Docker Hub's API is not at docker.io). */
export const upstreamServer = (registry: string): string => (registry === "docker.io" ? "https://registry-1.docker.io" : `https://${registry}`);

/** One registry's hosts.toml: the mirrors in order, for pull and resolve; the upstream last. */
export function hostsToml(registry: string, mirrors: readonly string[]): string {
  const lines = [`server = ${tomlString(upstreamServer(registry))}`, ""];
  for (const url of mirrors) {
    lines.push(`[host.${tomlString(url)}]`, `  capabilities = ["pull", "resolve"]`, "");
  }
  return lines.join("\n");
}

/**
 * Shell lines that make `certs.d` hold exactly the catalog's mirrored registries (each with its
 * marker), leaving directories an admin wrote (no marker) alone. Sets `changed=1` when a file
 * changed; containerd reads the hosts directory at each pull, so no restart is needed for these.
 */
export function registryHostsLines(settings: ContainerRuntimeSettings, writeFile: (path: string, mode: string, content: string) => string): string {
  const { registryMirrors } = resolvedRuntime(settings);
  // Registry names are checked against REGISTRY_HOST_PATTERN above: no "/", no "..", no quote.
  const keep = registryMirrors.map(([r]) => r);
  const files = registryMirrors
    .map(([registry, urls]) => `mkdir -p "$ROOT${REGISTRY_HOSTS_DIR}/${registry}"
${writeFile(`${REGISTRY_HOSTS_DIR}/${registry}/hosts.toml`, "0644", hostsToml(registry, urls))}: > "$ROOT${REGISTRY_HOSTS_DIR}/${registry}/${MANAGED_MARKER}"
`)
    .join("");
  return `mkdir -p "$ROOT${REGISTRY_HOSTS_DIR}"
for d in "$ROOT${REGISTRY_HOSTS_DIR}"/*/; do
  [ -f "$d${MANAGED_MARKER}" ] || continue
  case "$(basename "$d")" in ${keep.length ? `${keep.map((k) => `'${k}'`).join("|")}) continue ;;` : "'') continue ;;"}
  esac
  rm -rf -- "$d"; changed=1; log "removed mirror configuration $(basename "$d")"
done
${files}`;
}
