/**
 * containerd 2 for the real dev node: its config (schema version 4, containerd 2.4's) with every path under the
 * node's state (root, state, sockets, runc's root, network namespaces, CNI), the CRI plugin on
 * runc with cgroupfs (cgroup v1 machines, no systemd), and the registry mirror: registry.k8s.io,
 * docker.io and any other registry name resolve to the local registry over plain HTTP, the way an
 * air-gapped site runs (hosts.toml files under config_path).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SANDBOX_IMAGE, type RealNodeLayout } from "./layout";

const q = (value: string) => JSON.stringify(value);

export function containerdConfig(layout: RealNodeLayout, binDir: string, cniBinDir: string): string {
  const c = layout.containerd;
  return `# Written by kok dev up (src/dev/node/containerd.ts); rewritten at every start.
version = 4
root = ${q(c.root)}
state = ${q(c.state)}
# Only the files a loaded config names are imported (the machine's /etc/containerd/conf.d is named
# by containerd's default file, not read here): none.
imports = []

[plugins.'io.containerd.server.v1.grpc']
  address = ${q(c.socket)}

[plugins.'io.containerd.server.v1.ttrpc']
  address = ${q(`${c.socket}.ttrpc`)}

[plugins.'io.containerd.cri.v1.runtime']
  # Network namespaces as mounts under the state directory, not /run/netns: cleanup finds them all.
  netns_mounts_under_state_dir = true
  # The kubelet asks for negative oom_score_adj (-998 for sandboxes); lowering one needs
  # CAP_SYS_RESOURCE, which root lacks on sandboxed machines like ours (bounding set): containerd
  # then raises such requests to its own score instead of failing every Pod in runc init.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  # No CDI devices on a dev node (the default dirs are the machine's /etc/cdi and /var/run/cdi).
  cdi_spec_dirs = []

  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'

    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = ${q(join(binDir, "runc"))}
        Root = ${q(join(c.state, "runc"))}
        SystemdCgroup = false

  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [${q(cniBinDir)}]
    conf_dir = ${q(layout.cni.confDir)}
    max_conf_num = 1

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'

  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = ${q(SANDBOX_IMAGE)}

  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = ${q(c.certsDir)}

[plugins.'io.containerd.grpc.v1.cri']
  # kubectl exec/attach/port-forward: the kubelet proxies to this loopback stream server.
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'

[plugins.'io.containerd.internal.v1.opt']
  path = ${q(join(c.root, "opt"))}

# NRI listens on a fixed machine-wide socket (/var/run/nri/nri.sock): off, so two dev nodes never meet there.
[plugins.'io.containerd.nri.v1.nri']
  disable = true
`;
}

/** Registry names whose pulls go to the local registry; `_default` catches every other name. */
export const MIRRORED_REGISTRIES = ["registry.k8s.io", "docker.io", "_default"] as const;

/** hosts.toml for one registry name: the local registry serves its repositories without the upstream host. */
export function hostsToml(name: string, registry: string): string {
  const upstream = name === "docker.io" ? "https://registry-1.docker.io" : name === "_default" ? undefined : `https://${name}`;
  return `# Written by kok dev up: ${name} is served by the local registry (no upstream is reachable here).
${upstream ? `server = ${q(upstream)}\n` : ""}
[host.${q(`http://${registry}`)}]
  capabilities = ["pull", "resolve"]
  skip_verify = true
`;
}

/** Writes config.toml and the mirror's hosts.toml files. `registry` is "127.0.0.1:<port>". */
export function writeContainerdConfig(layout: RealNodeLayout, opts: { binDir: string; cniBinDir: string; registry: string }): void {
  const c = layout.containerd;
  for (const dir of [c.root, c.state, c.certsDir]) mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(c.config, containerdConfig(layout, opts.binDir, opts.cniBinDir));
  for (const name of MIRRORED_REGISTRIES) {
    mkdirSync(join(c.certsDir, name), { recursive: true });
    writeFileSync(join(c.certsDir, name, "hosts.toml"), hostsToml(name, opts.registry));
  }
}
