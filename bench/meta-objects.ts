/**
 * Fills a meta-cluster with kube-on-kube objects through the API, as many clients would: CRDs,
 * a namespace, Clusters, ClusterPackageVersions and Machines, created with bounded concurrency.
 */
import { writeFileSync } from "node:fs";
import * as k8s from "@kubernetes/client-node";
import { API_GROUP, API_VERSION, type ClusterSpec } from "../src/api/v1alpha1";
import { installCrds, type DevCluster } from "../test/support";
import { pool } from "./harness";

export const NAMESPACE = "fleet";
const API = { group: API_GROUP, version: API_VERSION } as const;

/** A syntactically valid pinned host key; no SSH happens for paused Machines. */
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchmarkBenchmarkBenchmarkBenchmarkBench";
const SHA = "0".repeat(64);

export function writeKubeconfig(kc: k8s.KubeConfig, file: string): string {
  writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
  return file;
}

/** The CRDs applied with kubectl as users do (the test helper's way), waited for until served. */
export function installCrdsWithKubectl(kubeconfig: string, workDir: string): void {
  installCrds({ kubeconfig } as DevCluster, workDir);
}

export async function createNamespace(kc: k8s.KubeConfig, name = NAMESPACE): Promise<void> {
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name } } });
}

export function minimalClusterSpec(overrides: Partial<ClusterSpec> = {}): ClusterSpec {
  return { mode: "minimal", kubernetesVersion: "v1.36.3", etcd: { version: "3.6.16", storage: { volumeSource: { emptyDir: {} } } }, ...overrides };
}

export const clusterName = (i: number) => `c${String(i).padStart(3, "0")}`;
export const machineName = (i: number) => `m${String(i).padStart(5, "0")}`;

export interface PausedFleet {
  readonly clusters: number;
  readonly machines: number;
}

/**
 * `clusters` paused Clusters, each with a paused ClusterPackageVersion, and `machines` paused
 * Machines spread round-robin over them. Nothing reaches a host or the engine.
 */
export async function createPausedFleet(kc: k8s.KubeConfig, size: PausedFleet, log: (m: string) => void): Promise<void> {
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  const create = (plural: string, body: object) => api.createNamespacedCustomObject({ ...API, namespace: NAMESPACE, plural, body });
  await pool([...Array(size.clusters).keys()], 16, (i) =>
    create("clusters", { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "Cluster", metadata: { name: clusterName(i) }, spec: minimalClusterSpec({ paused: true }) }),
  );
  const artifact = (name: string, version: string) => ({ version, url: `http://mirror.invalid/${name}`, sha256: SHA });
  await pool([...Array(size.clusters).keys()], 16, (i) =>
    create("clusterpackageversions", {
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: "ClusterPackageVersion",
      metadata: { name: `${clusterName(i)}-workers` },
      spec: {
        clusterRef: { name: clusterName(i) },
        packages: { containerd: artifact("containerd", "1.7.22"), kubelet: artifact("kubelet", "v1.36.3"), cni: artifact("cni", "v1.5.1") },
      },
    }),
  );
  let done = 0;
  await pool([...Array(size.machines).keys()], 32, async (i) => {
    const cluster = clusterName(i % size.clusters);
    await create("machines", {
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: "Machine",
      metadata: { name: machineName(i) },
      spec: {
        clusterRef: { name: cluster },
        ip: `10.${Math.floor(i / 65536) % 256}.${Math.floor(i / 256) % 256}.${i % 256}`,
        hostname: machineName(i),
        idc: `zone-${i % 3}`,
        labels: { pool: "general" },
        ssh: { port: 22, user: "root", credentialsSecretRef: { name: "worker-ssh" }, hostKey: HOST_KEY },
        packageVersionRef: { name: `${cluster}-workers` },
        paused: true,
      },
    });
    if (++done % 2000 === 0) log(`  ${done}/${size.machines} Machines created`);
  });
}
