/** Valid worker-side specs for tests to start from and break one field at a time. */
import type { MachineSpec, WorkerPackages } from "../../src/api/v1alpha1";

export const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDSt0jgvOR/Hvnv9zOhT82FwZzggLoEuOBpX82NUVwYj";

export const sha = (seed: string): string => seed.repeat(64).slice(0, 64);

export function packages(kubelet = "v1.36.3"): WorkerPackages {
  return {
    containerd: { version: "1.7.22", url: "http://mirror.local/containerd-1.7.22-linux-amd64.tar.gz", sha256: sha("a") },
    kubelet: { version: kubelet, url: `http://mirror.local/kubelet-${kubelet}-linux-amd64`, sha256: sha(kubelet === "v1.36.3" ? "b" : "e") },
    cni: { version: "v1.5.1", url: "http://mirror.local/cni-plugins-linux-amd64-v1.5.1.tgz", sha256: sha("c") },
  };
}

export function machine(overrides: Partial<MachineSpec> = {}): MachineSpec {
  return {
    clusterRef: { name: "prod-a" },
    ip: "192.0.2.11",
    hostname: "worker-0001",
    idc: "hz-a",
    labels: { pool: "general" },
    ssh: { port: 22, user: "root", credentialsSecretRef: { name: "worker-ssh" }, hostKey: HOST_KEY },
    packages: packages(),
    ...overrides,
  };
}
