/**
 * Valid worker-side specs for tests to start from and break one field at a time, and the
 * arguments of a real worker on a sandbox sshd host for the integration tests that install one.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { MachineSpec, PackageArtifact, WorkerPackages } from "../../src/api/v1alpha1";
import type { Mirror } from "../../src/cli/mirror";
import type { WorkerNodeArgs } from "../../src/components/worker-node";
import type { BuiltArtifact } from "../../src/dev/worker-artifacts";
import type { SshHost } from "../../src/dev/sshd-hosts";

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

/** A throwaway cluster CA (P-256, one day) made with openssl in `dir`: what a test apiserver and its workers share. */
export function testClusterCa(dir: string): { certFile: string; keyFile: string } {
  const certFile = join(dir, "ca.crt");
  const keyFile = join(dir, "ca.key");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyFile, "-out", certFile, "-subj", "/CN=kubernetes", "-days", "1"], { stdio: "pipe" });
  return { certFile, keyFile };
}

/**
 * A bridge CNI config in the host's install root, in place of the cluster's network add-on: the
 * bridge `bridge` with `subnet`, no masquerade. The bridge is the test's to delete.
 */
export function writeTestBridgeCni(root: string, bridge: string, subnet: string): void {
  mkdirSync(join(root, "etc/cni/net.d"), { recursive: true });
  writeFileSync(
    join(root, "etc/cni/net.d/10-test-bridge.conflist"),
    JSON.stringify({ cniVersion: "1.0.0", name: "test", plugins: [{ type: "bridge", bridge, isGateway: true, ipMasq: false, ipam: { type: "host-local", ranges: [[{ subnet }]] } }, { type: "loopback" }] }),
  );
}

/** A built artifact as the mirror serves it: its URL and checksum. */
export function servedArtifact(mirror: Pick<Mirror, "artifacts">, artifact: BuiltArtifact): PackageArtifact {
  const served = mirror.artifacts.find((m) => m.name === basename(artifact.file));
  if (!served) throw new Error(`the mirror does not serve ${artifact.file}`);
  return { version: artifact.version, url: served.url, sha256: served.sha256 };
}

export interface SandboxWorker {
  readonly host: SshHost;
  readonly hostname: string;
  readonly packages: WorkerPackages;
  /** The test apiserver (business-api.ts) and the CA it was started with (testClusterCa). */
  readonly api: { readonly endpoint: string; readonly adminKubeconfig: string };
  readonly ca: { readonly certFile: string; readonly keyFile: string };
  /** More of the machine (idc, labels). */
  readonly machine?: Partial<MachineSpec>;
}

/**
 * The WorkerNode arguments of a real worker on a sandbox sshd host (test/support/sshd-hosts.ts),
 * joined with a signed certificate: the install under the host's root, containerd and the kubelet
 * as processes (no systemd), steps over OpenSSH, and what this sandbox needs — cgroup v1 with
 * cgroupfs (failCgroupV1 false, no QoS cgroups), swap allowed, the kernel and port checks skipped,
 * the kubelet bound to the host's own loopback address (the hosts share this machine's network
 * stack). WorkerNode makes the key, the CA key and the kubeconfig Pulumi secrets itself.
 */
export function sandboxWorkerArgs(worker: SandboxWorker): WorkerNodeArgs {
  const { host } = worker;
  return {
    machine: { clusterRef: { name: "it" }, ip: host.ip, hostname: worker.hostname, ssh: { port: host.port, user: host.user, hostKey: host.hostKey }, ...worker.machine },
    packages: worker.packages,
    credentials: { privateKey: host.privateKey },
    cluster: { endpoint: worker.api.endpoint, caCertificate: readFileSync(worker.ca.certFile, "utf8"), caPrivateKey: readFileSync(worker.ca.keyFile, "utf8"), adminKubeconfig: worker.api.adminKubeconfig },
    installRoot: host.root,
    serviceManager: "process",
    stepProvider: "openssh",
    preflight: { ignore: ["kernel", "swap", "ports"] },
    readyTimeoutSeconds: 180,
    kubelet: {
      cgroupDriver: "cgroupfs",
      config: { failCgroupV1: false, cgroupsPerQOS: false, enforceNodeAllocatable: [], failSwapOn: false, address: host.ip, healthzBindAddress: host.ip, readOnlyPort: 0 },
    },
  };
}
