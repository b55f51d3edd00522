/**
 * Where the real dev node (kubelet + containerd + runc + CNI) keeps everything, and the names and
 * ports it takes on this machine. Everything is derived from the state directory (its tag) and
 * the dev config's port base, so two dev clusters — a developer's and a test's — and the demo's
 * worker hosts never share a socket, a directory, a port, a bridge or a cgroup.
 */
import { join } from "node:path";
import { cidrSize, nthAddress, parseCidr } from "../../api/v1alpha1/cidr";
import { stateTag, statePaths, type DevConfig } from "../config";

/** The pause image containerd runs as each Pod's sandbox: the tag Kubernetes v1.36 and containerd 2.4 expect. */
export const SANDBOX_IMAGE = "registry.k8s.io/pause:3.10.2";

function cidrOf(text: string) {
  const cidr = parseCidr(text);
  if (!cidr) throw new Error(`"${text}" is not a CIDR`);
  return cidr;
}

/** The cluster DNS Service's address: the 10th of the Service range, as kubeadm picks it. */
export const clusterDnsAddress = (config: DevConfig): string => nthAddress(cidrOf(config.serviceCIDR), 10);

/**
 * The link between the machine and the node's network namespace: the last /30 of the pod range
 * (host-local never hands it to a Pod). `host` is the machine's end, where the meta-cluster's
 * apiserver and registry are forwarded to; `node` is the node's InternalIP.
 */
export function nodeLink(podCIDR: string): { network: string; host: string; node: string; prefix: 30; lastPodAddress: string } {
  const cidr = cidrOf(podCIDR);
  const size = Number(cidrSize(cidr));
  return { network: nthAddress(cidr, size - 4), host: nthAddress(cidr, size - 2), node: nthAddress(cidr, size - 3), prefix: 30, lastPodAddress: nthAddress(cidr, size - 6) };
}

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
    /** The node's network namespace: containerd, the kubelet and hostNetwork Pods live there, with their own iptables. */
    // Not `kok<tag>-…`: that prefix is the node agent's, whose cleanup removes every such namespace.
    netns: `kokn-${tag}`,
    netnsPath: `/run/netns/kokn-${tag}`,
    /** The veth pair between the machine (`h`) and the node (`n`); IFNAMSIZ allows 15 characters. */
    hostVeth: `kok${tag}h`,
    nodeVeth: `kok${tag}n`,
    link: nodeLink(config.podCIDR),
    /** The node's InternalIP: its end of the link. */
    nodeIP: nodeLink(config.podCIDR).node,
    /** The Pods' gateway on the CNI bridge inside the node's namespace: the pod range's first address. */
    podGateway: nthAddress(cidrOf(config.podCIDR), 1),
    bridge: `kok${tag}`,
    /** Under every cgroup v1 hierarchy (and nothing else): the kubelet's cgroupRoot. */
    cgroupRoot: `/kok-${tag}`,
    /** In the node's own namespace, so the usual ports never meet another node's. */
    kubeletPort: 10250,
    kubeletHealthzPort: 10248,
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
    forwarder: { log: join(paths.logs, "node-forwarder.log"), pid: join(paths.pids, "node-forwarder.pid") },
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
    /** local-path-provisioner's volumes. */
    localPathDir: join(dir, "local-path"),
    /** The state's PKI: the kubelet's client and serving certificates are issued there. */
    pki: paths.pki,
  };
}

export type RealNodeLayout = ReturnType<typeof realNodeLayout>;
