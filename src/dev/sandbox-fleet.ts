/**
 * Worker hosts for the operator's Machine tests: real sshd hosts on 127.0.0.x, a real package
 * mirror serving Debian's containerd/runc/CNI and the toolchain's kubelets (v1.35.4 and v1.36.3,
 * so a catalog change is a real kubelet upgrade), and the host settings a sandbox needs
 * (cgroupfs on cgroup v1, no systemd, each kubelet bound to its host's own loopback address).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { PackageArtifact, WorkerPackages } from "../api/v1alpha1";
import { startMirror, type Mirror } from "../cli/mirror";
import { kubernetesBinary } from "./toolchain";
import type { WorkerDefaults } from "../program/machine-program";
import { mirrorDirectory, workerArtifacts, type BuiltArtifact } from "./worker-artifacts";
import { startSshHosts, stopSshHosts, type SshHost } from "./test-hosts";

export interface FleetHosts {
  readonly hosts: SshHost[];
  readonly mirror: Mirror;
  /** The catalog with the kubelet of the given version (v1.35.4 or v1.36.3). */
  packages(kubelet: "v1.35.4" | "v1.36.3"): WorkerPackages;
  stop(): Promise<void>;
}

/** What every sandbox Machine needs (see worker-kubelet-joins.test.ts for why each setting). */
export const SANDBOX_WORKER_DEFAULTS: WorkerDefaults = {
  serviceManager: "process",
  preflight: { ignore: ["kernel", "swap", "ports"] },
  readyTimeoutSeconds: 240,
  kubeletBindToMachineIp: true,
  kubelet: {
    cgroupDriver: "cgroupfs",
    config: { failCgroupV1: false, cgroupsPerQOS: false, enforceNodeAllocatable: [], failSwapOn: false, readOnlyPort: 0 },
  },
};

export async function startFleetHosts(count: number, prefix: string): Promise<FleetHosts> {
  const artifacts = workerArtifacts();
  const dir = mirrorDirectory(artifacts);
  const older = path.join(dir.dir, "kubelet-v1.35.4-linux-amd64");
  copyFileSync(kubernetesBinary("kubelet", "v1.35.4"), older);
  const mirror = await startMirror({ dir: dir.dir, host: "127.0.0.1", port: 0 });
  const served = (file: string, version: string): PackageArtifact => {
    const a = mirror.artifacts.find((m) => m.name === path.basename(file));
    if (!a) throw new Error(`the mirror does not serve ${path.basename(file)}`);
    return { version, url: a.url, sha256: a.sha256 };
  };
  const artifact = (a: BuiltArtifact) => served(a.file, a.version);
  if (artifacts.kubelet.version !== "v1.36.3") throw new Error(`the toolchain's kubelet is ${artifacts.kubelet.version}, these tests need v1.36.3: run \`npm run toolchain\``);
  const hosts = await startSshHosts(count, prefix);
  hosts.forEach((host, i) => {
    // The cluster's network add-on would write this; a bridge per host keeps them apart.
    const netd = path.join(host.root, "etc/cni/net.d");
    mkdirSync(netd, { recursive: true });
    const conflist = {
      cniVersion: "1.0.0",
      name: "sandbox",
      plugins: [{ type: "bridge", bridge: `kokf${i}`, isGateway: true, ipMasq: false, ipam: { type: "host-local", ranges: [[{ subnet: `10.244.${100 + i}.0/24` }]] } }, { type: "loopback" }],
    };
    writeFileSync(path.join(netd, "10-sandbox.conflist"), JSON.stringify(conflist));
  });
  const base = { containerd: artifact(artifacts.containerd), runc: artifact(artifacts.runc), cni: artifact(artifacts.cni) };
  const kubelets = { "v1.36.3": artifact(artifacts.kubelet), "v1.35.4": served(older, "v1.35.4") };
  return {
    hosts,
    mirror,
    packages: (kubelet) => ({ ...base, kubelet: kubelets[kubelet] }),
    async stop() {
      for (const host of hosts) stopHostServices(host);
      await mirror.close();
      await stopSshHosts(hosts);
      dir.remove();
    },
  };
}

/** The pid a "process" service manager recorded for a service on a host, if it runs. */
export function servicePid(host: SshHost, service: "kubelet" | "containerd"): number | undefined {
  const file = path.join(host.root, "run/kube-on-kube", `${service}.pid`);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").trim());
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** Kills a host's service the way a crash would (SIGKILL, pid file left behind). */
export function crashService(host: SshHost, service: "kubelet" | "containerd"): void {
  const pid = servicePid(host, service);
  if (pid) process.kill(pid, "SIGKILL");
}

function stopHostServices(host: SshHost): void {
  for (const service of ["kubelet", "containerd"] as const) {
    const pid = servicePid(host, service);
    if (pid) process.kill(pid, "SIGTERM");
  }
}
