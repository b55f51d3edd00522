/**
 * The real dev node's kubelet: its certificates (client as system:node:<name>, serving for the
 * apiserver's logs/exec/port-forward calls), kubeconfig and KubeletConfiguration. The settings
 * that keep it apart from everything else on the machine: its own root dir, pod-logs dir, ports
 * from the dev config's port base, a cgroupRoot per state directory, and no static Pods.
 */
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { renderKubeconfig } from "../../components/kubeconfig";
import type { DevConfig } from "../config";
import type { LeafRequest } from "../pki";
import { clusterDnsAddress, type RealNodeLayout } from "./layout";

/** The node role label docs/operations.md asks masters' nodes to carry. */
export const NODE_LABELS = { "node-role.kubeonkube.io/master": "true" } as const;

/**
 * Every kubelet of the local environment (the meta-cluster's node and each sandbox worker host)
 * shares this machine's disk with everything else on it: the default thresholds (15% of the disk
 * free for images, 10% for the node) evicted tenants' Pods and tainted both business Nodes with
 * disk-pressure at 17% free of a 252 GB disk that other processes were filling. Evict and collect
 * images only when the disk is really full.
 */
export const SHARED_DISK_KUBELET = {
  evictionHard: { "memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%", "nodefs.inodesFree": "2%" },
  imageGCHighThresholdPercent: 98,
  imageGCLowThresholdPercent: 95,
} as const;

export function kubeletLeaves(config: DevConfig, layout: RealNodeLayout): LeafRequest[] {
  const user = `system:node:${config.nodeName}`;
  return [
    { file: "kubelet-client", commonName: user, organization: "system:nodes", usage: "client" },
    { file: "kubelet-serving", commonName: user, usage: "server", dnsNames: [config.nodeName, "localhost"], ipAddresses: [layout.nodeIP, "127.0.0.1"] },
  ];
}

export function kubeletConfiguration(config: DevConfig, layout: RealNodeLayout): Record<string, unknown> {
  const pki = (file: string) => join(layout.pki, file);
  return {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    // These machines run cgroup v1 (docs/dev-cluster.md): unsupported by v1.36 but still working when asked.
    failCgroupV1: false,
    cgroupDriver: "cgroupfs",
    cgroupRoot: layout.cgroupRoot,
    cgroupsPerQOS: true,
    enforceNodeAllocatable: ["pods"],
    containerRuntimeEndpoint: `unix://${layout.containerd.socket}`,
    address: layout.nodeIP,
    port: layout.kubeletPort,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: layout.kubeletHealthzPort,
    tlsCertFile: pki("kubelet-serving.crt"),
    tlsPrivateKeyFile: pki("kubelet-serving.key"),
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: pki("ca.crt") } },
    authorization: { mode: "Webhook" },
    clusterDNS: [clusterDnsAddress(config)],
    clusterDomain: config.clusterDomain,
    podLogsDir: layout.kubelet.podLogs,
    // A developer's machine may have swap; Pods get none (LimitedSwap is not asked for).
    failSwapOn: false,
    ...SHARED_DISK_KUBELET,
    serializeImagePulls: false,
    registerNode: true,
    rotateCertificates: false,
  };
}

export function writeKubeletFiles(config: DevConfig, layout: RealNodeLayout): void {
  const k = layout.kubelet;
  for (const dir of [k.dir, k.root, k.podLogs]) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const read = (file: string) => readFileSync(join(layout.pki, file), "utf8");
  // The kubelet runs in the node's namespace: it reaches the apiserver through the forwarder on the
  // machine's end of the link, and checks the apiserver's certificate for its name "localhost".
  const kubeconfig = parse(
    renderKubeconfig({
      clusterName: "kok-dev",
      server: `https://${layout.link.host}:${config.ports.apiServer}`,
      caCertPem: read("ca.crt"),
      userName: `system:node:${config.nodeName}`,
      clientCertPem: read("kubelet-client.crt"),
      clientKeyPem: read("kubelet-client.key"),
    }),
  ) as { clusters: { cluster: Record<string, string> }[] };
  kubeconfig.clusters[0].cluster["tls-server-name"] = "localhost";
  writeFileSync(k.kubeconfig, stringify(kubeconfig), { mode: 0o600 });
  writeFileSync(k.config, stringify(kubeletConfiguration(config, layout)));
}

export function kubeletArgs(config: DevConfig, layout: RealNodeLayout): string[] {
  return [
    `--config=${layout.kubelet.config}`,
    `--kubeconfig=${layout.kubelet.kubeconfig}`,
    `--root-dir=${layout.kubelet.root}`,
    `--cert-dir=${join(layout.kubelet.dir, "pki")}`,
    `--hostname-override=${config.nodeName}`,
    `--node-ip=${layout.nodeIP}`,
    `--node-labels=${Object.entries(NODE_LABELS).map(([k, v]) => `${k}=${v}`).join(",")}`,
  ];
}
