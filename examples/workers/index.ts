/**
 * A platform team adds ten worker machines to the business cluster `prod-a`, as a gray release:
 * two canary machines first, then batches of 30% of the pool, each batch starting only once the
 * previous one is Ready on the new versions. Copy and adapt: the machines, the mirror, the keys.
 *
 *   pulumi config set --secret sshPrivateKey "$(cat ~/.ssh/kok_workers)"
 *   pulumi config set controlPlaneStack acme/kok-control-plane-example/prod   # exports endpoint, CA, admin kubeconfig
 *   pulumi preview
 */
import * as pulumi from "@pulumi/pulumi";
import { NodePool, type ClusterPackageVersionSpec, type NodePoolMachine } from "kube-on-kube";

const config = new pulumi.Config();
const controlPlane = new pulumi.StackReference(config.require("controlPlaneStack"));

/** Host keys are pinned: collect them from a trusted inventory, never from the network. */
const hostKeys: Record<string, string> = config.getObject<Record<string, string>>("hostKeys") ?? {};

const machines: NodePoolMachine[] = Array.from({ length: 10 }, (_, i) => {
  const name = `worker-${String(i + 1).padStart(4, "0")}`;
  return {
    name,
    spec: {
      clusterRef: { name: "prod-a" },
      ip: `192.0.2.${11 + i}`,
      hostname: name,
      idc: i % 2 === 0 ? "hz-a" : "hz-b",
      labels: { pool: "general", ...(i < 2 ? { canary: "true" } : {}) },
      ssh: { port: 22, user: "root", hostKey: hostKeys[name] },
    },
  };
});

const mirror = "http://mirror.local";
const packageVersion: ClusterPackageVersionSpec = {
  clusterRef: { name: "prod-a" },
  packages: {
    containerd: { version: "1.7.22", url: `${mirror}/containerd-1.7.22-linux-amd64.tar.gz`, sha256: config.require("containerdSha256") },
    kubelet: { version: "v1.36.3", url: `${mirror}/kubelet-v1.36.3-linux-amd64`, sha256: config.require("kubeletSha256") },
    cni: { version: "v1.5.1", url: `${mirror}/cni-plugins-linux-amd64-v1.5.1.tgz`, sha256: config.require("cniSha256") },
  },
  rollout: {
    canary: { selector: { matchLabels: { canary: "true" } }, count: 2 },
    maxUnavailable: "30%",
    healthGate: { readyTimeoutSeconds: 600 },
    haltOnFailure: true,
  },
};

const pool = new NodePool("prod-a-general", {
  machines,
  packageVersion,
  credentials: { privateKey: config.requireSecret("sshPrivateKey") },
  cluster: {
    endpoint: controlPlane.requireOutput("endpoint") as pulumi.Output<string>,
    caCertificate: controlPlane.requireOutput("caCertificate") as pulumi.Output<string>,
    caPrivateKey: controlPlane.requireOutput("caPrivateKey") as pulumi.Output<string>,
    // With it, every kubelet upgrade is cordon → drain → install → Ready → uncordon.
    adminKubeconfig: controlPlane.requireOutput("adminKubeconfig") as pulumi.Output<string>,
    // The control plane's spec.network: the kubelets' clusterDNS (the 10th address) and clusterDomain.
    serviceCIDR: "10.96.0.0/12",
    clusterDomain: "cluster.local",
  },
  // Where the official Pulumi CLI and its command plugin are installed, "command" works too.
  node: { stepProvider: "openssh" },
});

export const rollout = pool.plan.map((batch) => [...batch.machines]);
export const observedVersions = pool.observedVersions;
