/**
 * Sandbox worker hosts that are real network hosts on the meta-cluster's real node (issue 16):
 *
 *   machine (root ns) ──veth /30── node ns kokn-<tag> ──bridge kokhosts (hosts' gateway)
 *                                                         ├─ h0 ══ eth0  host ns kokh-<tag>-0
 *                                                         └─ h1 ══ eth0  host ns kokh-<tag>-1
 *
 * Each host has its own network namespace (address from the dev cluster's hosts subnet, default
 * route via the bridge, its own iptables, ports and `cni0`), and its sshd — with everything started
 * over SSH: containerd, the kubelet, Pods — runs in a private mount and UTS namespace of its own:
 * the hostname is the host's name, and /etc/cni/net.d, /opt/cni/bin, /run/flannel and /run/netns
 * are the host's directories under its root (the WorkerNode's installRoot), so a DaemonSet's
 * hostPath lands there and not on the machine. The machine routes the hosts subnet to the node's
 * end of the link (netns.ts ensureHostsBridge); nothing else changes outside the namespaces.
 * These addresses are the project's own test hosts; nothing else is ever a target.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import type { DevConfig } from "./config";
import { realNodeLayout } from "./node/layout";
import { ensureHostsBridge, HOSTS_BRIDGE, hostsNetwork, netnsSysctl, quiet } from "./node/netns";

const run = promisify(execFile);

/** A host's network namespace and its address. */
export interface HostNetns {
  /** The host's number in this dev cluster: its namespace, veth and address follow from it. */
  readonly index: number;
  readonly netns: string;
  readonly netnsPath: string;
  readonly ip: string;
}

/** The directories a host has of its own (bind-mounted from `<root>/<dir>` in its mount namespace). */
export const HOST_PRIVATE_DIRS = ["etc/cni/net.d", "opt/cni/bin", "run/flannel", "run/netns"] as const;

const hostNetnsPrefix = (config: DevConfig) => `kokh-${realNodeLayout(config).tag}-`;

/** The name of the i-th host's namespace: `kokh-<tag>-<i>`. */
export const hostNetnsName = (config: DevConfig, index: number) => `${hostNetnsPrefix(config)}${index}`;

/** The node's end of the i-th host's veth (in the node's namespace; the host's end is `eth0`). */
const nodeEnd = (index: number) => `h${index}`;

/**
 * The i-th host's `eth0` MAC: locally administered, from the tag and the index. A host started
 * again keeps it, as a machine keeps its NIC across reboots, so the neighbour entries the node and
 * the other hosts hold for its address stay right (with a new random MAC, a connection to a host
 * restarted within the neighbour cache's lifetime went to the old one for a minute).
 */
export function hostMac(config: DevConfig, index: number): string {
  const tag = realNodeLayout(config).tag;
  const byte = (n: number) => n.toString(16).padStart(2, "0");
  return ["02", "6b", tag.slice(0, 2), tag.slice(2, 4), byte((index >> 8) & 0xff), byte(index & 0xff)].join(":");
}

/** The address the workers reach the dev registry at: the forwarder on the machine's end of the node link. */
export function workersRegistry(config: DevConfig): string {
  return `${realNodeLayout(config).link.host}:${config.ports.registry}`;
}

/** The address on the machine the workers reach (the mirror binds there): the machine's end of the node link. */
export const machineAddressForHosts = (config: DevConfig): string => realNodeLayout(config).link.host;

/** The namespaces of this dev cluster's hosts that exist now, by index. */
export function existingHostNetns(config: DevConfig): number[] {
  if (!existsSync("/run/netns")) return [];
  const prefix = hostNetnsPrefix(config);
  return readdirSync("/run/netns")
    .filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)))
    .map((n) => Number(n.slice(prefix.length)))
    .sort((a, b) => a - b);
}

async function ip(...args: string[]): Promise<string> {
  try {
    return (await run("ip", args)).stdout;
  } catch (error) {
    throw new Error(`ip ${args.join(" ")}: ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`);
  }
}

/**
 * Takes the lowest free host index of this dev cluster by creating its namespace: `ip netns add`
 * fails on a name that exists, so two fleets started at once never get the same index.
 */
export async function reserveHostIndex(config: DevConfig): Promise<number> {
  for (let index = 0; index < 240; index++) {
    if (existsSync(`/run/netns/${hostNetnsName(config, index)}`)) continue;
    if (await quiet("netns", "add", hostNetnsName(config, index))) return index;
  }
  throw new Error(`no free host index in ${config.hostsCIDR}: 240 hosts of this dev cluster run already (\`ip netns list\`)`);
}

/**
 * Creates (or completes) the i-th host's namespace: veth to the hosts bridge, address, lo,
 * default route, and the sysctls a Kubernetes host has (forwarding; bridged traffic through
 * iptables, for kube-proxy and the pod network).
 */
export async function ensureHostNetns(config: DevConfig, index: number): Promise<HostNetns> {
  const layout = realNodeLayout(config);
  await ensureHostsBridge(config, layout);
  const net = hostsNetwork(config);
  const netns = hostNetnsName(config, index);
  const netnsPath = `/run/netns/${netns}`;
  const hostIp = net.address(index);
  if (!existsSync(netnsPath)) await ip("netns", "add", netns);
  if (!(await quiet("-n", layout.netns, "link", "show", "dev", nodeEnd(index)))) {
    // Made in the node's namespace with its peer put straight into the host's: no name is ever taken on the machine.
    await ip("-n", layout.netns, "link", "add", nodeEnd(index), "type", "veth", "peer", "name", "eth0", "address", hostMac(config, index), "netns", netns);
  }
  await ip("-n", layout.netns, "link", "set", nodeEnd(index), "master", HOSTS_BRIDGE, "up");
  const inHost = (...args: string[]) => ip("-n", netns, ...args);
  if (!(await inHost("-o", "-4", "addr", "show", "dev", "eth0")).includes(` ${hostIp}/${net.prefix} `)) {
    await inHost("addr", "add", `${hostIp}/${net.prefix}`, "dev", "eth0");
  }
  await inHost("link", "set", "lo", "up");
  await inHost("link", "set", "eth0", "up");
  await inHost("route", "replace", "default", "via", net.gateway);
  await netnsSysctl(netnsPath, "net.ipv4.ip_forward", "1");
  await netnsSysctl(netnsPath, "net.bridge.bridge-nf-call-iptables", "1");
  return { index, netns, netnsPath, ip: hostIp };
}

/**
 * Creates the host's own directories under its root and their mount points on the machine, which
 * stay empty there (the mounts are the host's only): what `inHost` bind-mounts.
 */
export function prepareHostDirs(root: string): void {
  for (const dir of HOST_PRIVATE_DIRS) {
    mkdirSync(path.join("/", dir), { recursive: true });
    mkdirSync(path.join(root, dir), { recursive: true });
  }
}

/**
 * The command line that runs `command args` as a process of the host: in its network namespace,
 * in a new private mount namespace with the host's own directories bind-mounted, and a new UTS
 * namespace with the host's name. Every exec keeps the pid: it is `command`'s.
 */
export function inHost(netnsPath: string, hostname: string, root: string, command: string, args: readonly string[]): { command: string; args: string[] } {
  const binds = HOST_PRIVATE_DIRS.flatMap((dir) => [path.join(root, dir), path.join("/", dir)]);
  // Positional arguments only: no path or name is ever parsed by the shell.
  const script = 'set -e; name=$1; shift; while [ "$1" != -- ]; do mount --bind "$1" "$2"; shift 2; done; shift; echo "$name" > /proc/sys/kernel/hostname; exec "$@"';
  return {
    command: "nsenter",
    args: [`--net=${netnsPath}`, "--", "unshare", "--mount", "--uts", "--propagation", "private", "--", "sh", "-c", script, "sh", hostname, ...binds, "--", command, ...args],
  };
}

/** Pids of `pids` and all their descendants (containers under a shim live in other namespaces). */
function withDescendants(pids: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The parent pid is the 2nd field after the command in parentheses (which may hold spaces).
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone
    }
  }
  const all = new Set<number>();
  const visit = (pid: number) => {
    if (all.has(pid)) return;
    all.add(pid);
    for (const child of children.get(pid) ?? []) visit(child);
  };
  pids.forEach(visit);
  return [...all];
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The pids in a host's namespace (none when it does not exist). */
export async function hostNetnsPids(netns: string): Promise<number[]> {
  return (await ip("netns", "pids", netns).catch(() => ""))
    .split("\n")
    .filter(Boolean)
    .map(Number);
}

/** Every process of a host's namespace and its descendants: SIGTERM, then SIGKILL after `graceMs`. Returns how many there were. */
export async function killHostProcesses(netns: string, graceMs = 5000): Promise<number> {
  const inNetns = () => hostNetnsPids(netns);
  const pids = withDescendants(await inNetns());
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of withDescendants([...pids.filter(alive), ...(await inNetns())])) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  return pids.length;
}

/**
 * Kills the i-th host's processes, deletes its veth (now: the kernel would only take it with the
 * namespace once the last reference to that is gone) and its namespace.
 */
export async function deleteHostNetns(config: DevConfig, index: number): Promise<{ processes: number; links: number }> {
  const netns = hostNetnsName(config, index);
  const processes = await killHostProcesses(netns);
  const node = realNodeLayout(config);
  let links = existsSync(node.netnsPath) && (await quiet("-n", node.netns, "link", "del", nodeEnd(index))) ? 1 : 0;
  if (existsSync(`/run/netns/${netns}`) && (await quiet("netns", "del", netns))) links++;
  return { processes, links };
}

/** Every host namespace of this dev cluster, with its processes: for `kok dev down` (node/cleanup.ts). */
export async function deleteAllHostNetns(config: DevConfig): Promise<{ processes: number; links: number }> {
  let processes = 0;
  let links = 0;
  for (const index of existingHostNetns(config)) {
    const removed = await deleteHostNetns(config, index);
    processes += removed.processes;
    links += removed.links;
  }
  return { processes, links };
}
