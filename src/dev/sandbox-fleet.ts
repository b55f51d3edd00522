/**
 * Worker hosts for Machines on this machine: real sshd hosts (sshd-hosts.ts), a real package
 * mirror serving the toolchain's containerd 2.4.2, runc 1.5.3, CNI plugins v1.10.0 and kubelets
 * (v1.35.4 and v1.36.3, so a catalog change is a real kubelet upgrade), and the host settings a sandbox needs (cgroupfs
 * on cgroup v1, no systemd; on loopback hosts each kubelet bound to its host's own address).
 *
 * Two kinds of hosts (HostSource.network): loopback hosts (127.x, the machine's network stack, a
 * hand-written CNI config each) for the tests against a loopback business apiserver, and network
 * hosts (`netnsHosts`, host-netns.ts) on the running dev cluster's real node, with namespaces of
 * their own and the mirror on the machine's end of the node link, where they reach it.
 *
 * The demo (`npm start`) starts kept network hosts (`netnsHosts(config, home, { kept: true })`)
 * under a `home` directory (`<home>/<host>/`, and the mirror's files in `<home>/mirror/`): a host
 * keeps its address, keys and install from one start to the next, and its services start again
 * with it, as a machine's do when it boots. They run as long as the process that started them; `kok dev down`
 * stops what a killed process left behind (stopKeptHosts). The operator e2e tests start throwaway
 * hosts through test/support/fleet-hosts.ts.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { PackageArtifact, WorkerPackages } from "../api/v1alpha1";
import { startMirror, type Mirror } from "../cli/mirror";
import { HostProbe } from "../host/host-probe";
import type { WorkerDefaults } from "../program/machine-program";
import type { DevConfig } from "./config";
import { deleteHostNetns, ensureHostNetns, hostNetnsName, hostNetnsPids, machineAddressForHosts, reserveHostIndex, workersRegistry } from "./host-netns";
import { stopFromPlainPidFile } from "./processes";
import { prepareDaemons, prepareHost, startSshd, stopLeftoverSshd, stopSshd, type SshHost } from "./sshd-hosts";
import { SHARED_DISK_KUBELET } from "./node/kubelet";
import { kubernetesBinary } from "./toolchain";
import { fillMirror, placeArtifact, workerArtifacts, type BuiltArtifact } from "./worker-artifacts";

/** The kubelets the mirror serves: the toolchain's two Kubernetes minors. */
export type SandboxKubelet = "v1.35.4" | "v1.36.3";

export interface FleetHosts {
  readonly hosts: SshHost[];
  readonly mirror: Mirror;
  /** The catalog with the kubelet of the given version. */
  packages(kubelet: SandboxKubelet): WorkerPackages;
  /** The Machines' worker defaults for these hosts (SANDBOX_WORKER_DEFAULTS or NETNS_WORKER_DEFAULTS). */
  readonly workerDefaults: WorkerDefaults;
  /** Network hosts only: the dev registry as the workers reach it (host:port), for a catalog's registryMirrors. */
  readonly registry?: string;
  stop(): Promise<void>;
}

/** Where a fleet's SSH hosts and its mirror's files live, and how the hosts start and stop. */
export interface HostSource {
  /** Whether the hosts keep their installs from one start to the next (their services are then started again). */
  readonly kept: boolean;
  /** The mirror's files: emptied at start, removed at stop. */
  readonly mirrorDir: string;
  start(names: readonly string[]): Promise<SshHost[]>;
  stop(hosts: readonly SshHost[]): Promise<void>;
  /**
   * "loopback": sshd processes on 127.x addresses sharing the machine's network stack (the tests
   * against a loopback business apiserver); "netns": network hosts on the real node (host-netns.ts).
   * Default "loopback".
   */
  readonly network?: "loopback" | "netns";
  /** Where the mirror listens, an address the hosts reach. Default 127.0.0.1. */
  readonly mirrorHost?: string;
  /** Network hosts only: the dev registry as the hosts reach it. */
  readonly registry?: string;
}

/**
 * Network hosts (host-netns.ts) on the real node of the running dev cluster `config`, their
 * directories under `home` (`<home>/<host>/`, the mirror's files in `<home>/mirror/`). Each host
 * takes the lowest free namespace index (a kept host the one of its first start, in
 * `<home>/<host>/host-index`), so its address is the hosts subnet's 10th + index; sshd
 * listens on that address's port 22. `stop` ends every process of the host and removes its namespace.
 */
export function netnsHosts(config: DevConfig, home: string, opts: { readonly kept?: boolean } = {}): HostSource {
  const stop = async (hosts: readonly SshHost[]) => {
    for (const host of hosts) {
      await stopSshd(host);
      if (host.netns) await deleteHostNetns(config, host.netns.index);
    }
  };
  return {
    kept: opts.kept ?? false,
    network: "netns",
    mirrorDir: path.join(home, "mirror"),
    mirrorHost: machineAddressForHosts(config),
    registry: workersRegistry(config),
    start: async (names) => {
      prepareDaemons();
      const hosts: SshHost[] = [];
      try {
        for (const name of names) {
          // A kept host keeps its index, so its address: what an earlier run left in its namespace goes first.
          const indexFile = path.join(home, name, "host-index");
          const keptIndex = opts.kept && existsSync(indexFile) ? await keptHostIndex(config, path.join(home, name), Number(readFileSync(indexFile, "utf8"))) : undefined;
          if (keptIndex !== undefined) await deleteHostNetns(config, keptIndex);
          const index = keptIndex ?? (await reserveHostIndex(config));
          const ns = await ensureHostNetns(config, index).catch(async (error: unknown) => {
            await deleteHostNetns(config, index);
            throw error;
          });
          const host: SshHost = { ...prepareHost(path.join(home, name), name, ns.ip, 22), netns: { path: ns.netnsPath, name: ns.netns, index } };
          hosts.push(host);
          writeFileSync(indexFile, `${index}\n`);
          await startSshd(host);
        }
      } catch (error) {
        await stop(hosts);
        throw error;
      }
      return hosts;
    },
    stop,
  };
}

/**
 * A kept host's recorded index, unless another host took it meanwhile (its namespace runs
 * processes and none is this host's sshd, by its pid file): the host then gets a new index.
 */
async function keptHostIndex(config: DevConfig, dir: string, index: number): Promise<number | undefined> {
  const pids = await hostNetnsPids(hostNetnsName(config, index));
  if (!pids.length) return index;
  const pidFile = path.join(dir, "sshd.pid");
  const sshd = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : undefined;
  return sshd !== undefined && pids.includes(sshd) ? index : undefined;
}

export interface FleetHostOptions {
  readonly hosts: HostSource;
  /** The mirror's port (on the source's mirrorHost). Default: a free one. */
  readonly mirrorPort?: number;
  /** Told what a kept host's boot did. */
  readonly log?: (line: string) => void;
}

/** What every sandbox Machine needs (see worker-kubelet-joins.test.ts for why each setting). */
export const SANDBOX_WORKER_DEFAULTS: WorkerDefaults = {
  serviceManager: "process",
  preflight: { ignore: ["kernel", "swap", "ports"] },
  readyTimeoutSeconds: 240,
  kubeletBindToMachineIp: true,
  // This machine grants no CAP_SYS_RESOURCE: no negative oom_score_adj for sandboxes (containerd.ts).
  containerd: { restrictOomScoreAdj: true },
  kubelet: {
    cgroupDriver: "cgroupfs",
    config: { failCgroupV1: false, cgroupsPerQOS: false, enforceNodeAllocatable: [], failSwapOn: false, readOnlyPort: 0, ...SHARED_DISK_KUBELET },
  },
};

/** What a Machine on a network host needs: the same, but its kubelet has a network stack of its own to bind in. */
export const NETNS_WORKER_DEFAULTS: WorkerDefaults = { ...SANDBOX_WORKER_DEFAULTS, kubeletBindToMachineIp: false };

const SERVICES = ["kubelet", "containerd"] as const;
export type SandboxService = (typeof SERVICES)[number];
/** Where the "process" service manager records a service's pid on a host. */
export const servicePidFile = (root: string, service: SandboxService) => path.join(root, "run/kube-on-kube", `${service}.pid`);

/**
 * Every kubelet, containerd, kube-apiserver and controller-manager on this one machine takes
 * inotify instances from the same per-user budget (default 128); a few dev clusters and kubelets
 * exhaust it and a kubelet dies with "inotify_init: too many open files". Real hosts run one
 * kubelet each; here the limit is raised when we may (as root, as the tests and CI run).
 */
function raiseInotifyLimit(minimum = 1024): void {
  const file = "/proc/sys/fs/inotify/max_user_instances";
  try {
    if (Number(readFileSync(file, "utf8").trim()) < minimum) writeFileSync(file, String(minimum));
  } catch {
    // Not root: the default may do for a couple of hosts.
  }
}

export async function startFleetHosts(count: number, prefix: string, options: FleetHostOptions): Promise<FleetHosts> {
  raiseInotifyLimit();
  const artifacts = workerArtifacts();
  if (artifacts.kubelet.version !== "v1.36.3") throw new Error(`the toolchain's kubelet is ${artifacts.kubelet.version}, the sandbox hosts need v1.36.3: run \`npm run toolchain\``);
  const source = options.hosts;
  const dir = source.mirrorDir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  fillMirror(artifacts, dir);
  const older = placeArtifact(kubernetesBinary("kubelet", "v1.35.4"), dir, "kubelet-v1.35.4-linux-amd64");
  const mirrorHost = source.mirrorHost ?? "127.0.0.1";
  const mirror = await startMirror({ dir, host: mirrorHost, port: options.mirrorPort ?? 0 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "EADDRINUSE") throw error;
    throw new Error(`the package mirror needs ${mirrorHost}:${options.mirrorPort}, and another process listens there: find it with \`ss -ltnp 'sport = :${options.mirrorPort}'\` and stop it`);
  });
  const served = (file: string, version: string): PackageArtifact => {
    const a = mirror.artifacts.find((m) => m.name === path.basename(file));
    if (!a) throw new Error(`the mirror does not serve ${path.basename(file)}`);
    return { version, url: a.url, sha256: a.sha256 };
  };
  const artifact = (a: BuiltArtifact) => served(a.file, a.version);
  const names = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  let hosts: SshHost[] = [];
  const stop = async () => {
    for (const host of hosts) await stopSandboxServices(host.root);
    await mirror.close();
    await source.stop(hosts);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const base = { containerd: artifact(artifacts.containerd), runc: artifact(artifacts.runc), cni: artifact(artifacts.cni) };
    const kubelets = { "v1.36.3": artifact(artifacts.kubelet), "v1.35.4": served(older, "v1.35.4") };
    hosts = await source.start(names);
    // Network hosts get theirs from the cluster's network add-on (flannel's install-cni).
    if (source.network !== "netns") writeLoopbackCniConfig(hosts);
    if (source.kept) await bootServices(hosts, options.log ?? (() => {}));
    const workerDefaults = source.network === "netns" ? NETNS_WORKER_DEFAULTS : SANDBOX_WORKER_DEFAULTS;
    return { hosts, mirror, packages: (kubelet) => ({ ...base, kubelet: kubelets[kubelet] }), workerDefaults, registry: source.registry, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Loopback hosts share the machine's network stack: a hand-written bridge per host keeps their Pods apart. */
function writeLoopbackCniConfig(hosts: readonly SshHost[]): void {
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
}

/** Starts containerd and the kubelet again on kept hosts that an earlier start installed them on. */
async function bootServices(hosts: readonly SshHost[], log: (line: string) => void): Promise<void> {
  const probe = new HostProbe();
  for (const host of hosts) {
    const installed = ["usr/local/bin/containerd", "usr/local/bin/kubelet", "etc/kubernetes/kubelet.conf"].every((f) => existsSync(path.join(host.root, f)));
    if (!installed) continue;
    try {
      await probe.restartServices({ host: host.ip, port: host.port, user: host.user, hostKey: host.hostKey, privateKey: host.privateKey }, { installRoot: host.root, serviceManager: "process" });
      log(`${host.name}: containerd and the kubelet started again (installed by an earlier run)`);
    } catch (error) {
      log(`${host.name}: containerd and the kubelet did not start again (${(error as Error).message}); the operator repairs the Machine once its Node is NotReady`);
    }
  }
}

/**
 * Stops a host's kubelet, then its containerd, waits until they are gone, and unmounts what they
 * mounted under the host's root (the kubelet bind-mounts its root directory onto itself; the
 * next kubelet does it again), so that the host's directory can be removed.
 */
export async function stopSandboxServices(root: string): Promise<string[]> {
  const stopped: string[] = [];
  for (const service of SERVICES) {
    if (await stopFromPlainPidFile(servicePidFile(root, service), path.join(root, "usr/local/bin", service))) stopped.push(service);
  }
  unmountUnder(root);
  return stopped;
}

/** Unmounts every mount point below `dir`, deepest first. */
function unmountUnder(dir: string): void {
  const octal = (text: string) => text.replace(/\\([0-7]{3})/g, (_, code: string) => String.fromCharCode(parseInt(code, 8)));
  const points = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((line) => octal(line.split(" ")[1] ?? ""))
    .filter((point) => point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of new Set(points)) {
    try {
      execFileSync("umount", [point], { stdio: "pipe" });
    } catch {
      // Busy: detach it now, the kernel finishes when the last user lets go.
      execFileSync("umount", ["-l", point], { stdio: "pipe" });
    }
  }
}

/**
 * Stops whatever kept hosts under `home` still run (kubelet, containerd, sshd) after the process
 * that started them died; returns what it stopped, as "demo-0 kubelet".
 */
export async function stopKeptHosts(home: string): Promise<string[]> {
  if (!existsSync(home)) return [];
  const stopped: string[] = [];
  for (const name of readdirSync(home).sort()) {
    const dir = path.join(home, name);
    if (!existsSync(path.join(dir, "sshd_config"))) continue;
    for (const service of await stopSandboxServices(path.join(dir, "root"))) stopped.push(`${name} ${service}`);
    if (await stopLeftoverSshd(dir)) stopped.push(`${name} sshd`);
  }
  return stopped;
}
