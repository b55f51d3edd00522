/**
 * Where the real dev node (kubelet + containerd + runc + CNI) keeps everything, and the names and
 * ports it takes on this machine. Everything is derived from the state directory (its tag) and
 * the dev config's port base, so two dev clusters — a developer's and a test's — and the demo's
 * worker hosts never share a socket, a directory, a port, a bridge or a cgroup.
 */
import { join } from "node:path";
import { firstAddress } from "../components";
import { stateTag, statePaths, type DevConfig } from "../config";

/** The pause image containerd runs as each Pod's sandbox: the tag Kubernetes v1.36 and containerd 2.4 expect. */
export const SANDBOX_IMAGE = "registry.k8s.io/pause:3.10.2";

/** The cluster DNS Service's address: the 10th of the Service range, as kubeadm picks it. */
export function clusterDnsAddress(config: DevConfig): string {
  const first = firstAddress(config.serviceCIDR).split(".").map(Number);
  first[3] += 9;
  return first.join(".");
}

const portBase = (config: DevConfig) => config.ports.apiServer - 6443;

export function realNodeLayout(config: DevConfig) {
  const paths = statePaths(config.stateDir);
  const tag = stateTag(config.stateDir);
  const dir = join(paths.node, "real");
  const containerd = join(dir, "containerd");
  const kubelet = join(dir, "kubelet");
  const cni = join(dir, "cni");
  return {
    tag,
    dir,
    /** The node's address: the pod bridge's (the pod range's first address), as the agent's InternalIP. */
    nodeIP: firstAddress(config.podCIDR),
    bridge: `kok${tag}`,
    /** Under every cgroup v1 hierarchy (and nothing else): the kubelet's cgroupRoot. */
    cgroupRoot: `/kok-${tag}`,
    kubeletPort: portBase(config) + 10250,
    kubeletHealthzPort: portBase(config) + 10248,
    containerd: {
      dir: containerd,
      config: join(containerd, "config.toml"),
      root: join(containerd, "root"),
      state: join(containerd, "state"),
      socket: join(containerd, "containerd.sock"),
      /** hosts.toml per registry name (containerd's config_path). */
      certsDir: join(containerd, "certs.d"),
      log: join(paths.logs, "containerd.log"),
      pid: join(paths.pids, "containerd.pid"),
    },
    kubelet: {
      dir: kubelet,
      root: join(kubelet, "root"),
      config: join(kubelet, "config.yaml"),
      kubeconfig: join(kubelet, "kubelet.kubeconfig"),
      podLogs: join(kubelet, "pod-logs"),
      log: join(paths.logs, "kubelet.log"),
      pid: join(paths.pids, "kubelet.pid"),
    },
    cni: {
      confDir: join(cni, "net.d"),
      ipamDir: join(cni, "ipam"),
      cacheDir: join(cni, "cache"),
    },
    /** The state's PKI: the kubelet's client and serving certificates are issued there. */
    pki: paths.pki,
  };
}

export type RealNodeLayout = ReturnType<typeof realNodeLayout>;
