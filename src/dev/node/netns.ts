/**
 * The real node's own network namespace. containerd, the kubelet and hostNetwork Pods (kube-proxy)
 * run there, so kube-proxy's iptables chains, the kubelet's ports and the CNI bridge are the
 * node's alone: two dev clusters on one machine (a developer's and a test's) never touch each
 * other's rules. A veth pair joins it to the machine; the machine routes the pod range to the
 * node's end. The only changes outside the namespace are that veth end and that route (and,
 * once sandbox worker hosts start, the hosts subnet's route to the node: ensureHostsBridge), all
 * removed by cleanup; forwarding and bridge netfilter are switched on inside the namespace only.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { cidrsOverlap, nthAddress, parseCidr } from "../../api/v1alpha1/cidr";
import { hostsCidrProblem, type DevConfig } from "../config";
import type { RealNodeLayout } from "./layout";

const run = promisify(execFile);

async function ip(...args: string[]): Promise<string> {
  try {
    return (await run("ip", args)).stdout;
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") throw new Error("the `ip` command (Debian package iproute2) is not installed");
    throw new Error(`ip ${args.join(" ")}: ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`);
  }
}

export const quiet = (...args: string[]) => ip(...args).then(() => true, () => false);

/** Writes a sysctl of a network namespace (/proc/sys/net is per network namespace). */
export async function netnsSysctl(netnsPath: string, key: string, value: string): Promise<void> {
  await run("nsenter", [`--net=${netnsPath}`, "--", "sh", "-c", `echo ${value} > /proc/sys/${key.replace(/\./g, "/")}`]);
}

const nodeSysctl = (layout: RealNodeLayout, key: string, value: string) => netnsSysctl(layout.netnsPath, key, value);

export async function ensureNodeNetns(config: DevConfig, layout: RealNodeLayout): Promise<void> {
  const { link } = layout;
  if (!existsSync(layout.netnsPath)) await ip("netns", "add", layout.netns);
  if (!(await quiet("link", "show", "dev", layout.hostVeth))) {
    await ip("link", "add", layout.hostVeth, "type", "veth", "peer", "name", layout.nodeVeth, "netns", layout.netns);
  }
  if (!(await ip("-o", "-4", "addr", "show", "dev", layout.hostVeth)).includes(` ${link.host}/${link.prefix} `)) {
    await ip("addr", "add", `${link.host}/${link.prefix}`, "dev", layout.hostVeth);
  }
  await ip("link", "set", layout.hostVeth, "up");
  const inNode = (...args: string[]) => ip("-n", layout.netns, ...args);
  if (!(await inNode("-o", "-4", "addr", "show", "dev", layout.nodeVeth)).includes(` ${link.node}/${link.prefix} `)) {
    await inNode("addr", "add", `${link.node}/${link.prefix}`, "dev", layout.nodeVeth);
  }
  await inNode("link", "set", "lo", "up");
  await inNode("link", "set", layout.nodeVeth, "up");
  await inNode("route", "replace", "default", "via", link.host);
  await ip("route", "replace", config.podCIDR, "via", link.node, "dev", layout.hostVeth);
  // Inside the node only: it routes between the link and the Pods' bridge, and kube-proxy's
  // rules must see bridged traffic (a Pod reaching a Service whose endpoint is on the same bridge).
  await nodeSysctl(layout, "net.ipv4.ip_forward", "1");
  await nodeSysctl(layout, "net.bridge.bridge-nf-call-iptables", "1");
}

/** The bridge of the sandbox worker hosts inside the node's namespace (host-netns.ts): its own namespace, so no tag is needed. */
export const HOSTS_BRIDGE = "kokhosts";

/** The hosts subnet's parts: the bridge's address (the hosts' gateway) is its first address. */
export function hostsNetwork(config: DevConfig): { cidr: string; gateway: string; prefix: number; address(index: number): string } {
  const problem = hostsCidrProblem(config);
  if (problem) throw new Error(problem);
  const cidr = parseCidr(config.hostsCIDR)!;
  return { cidr: config.hostsCIDR, gateway: nthAddress(cidr, 1), prefix: cidr.prefix, address: (index) => nthAddress(cidr, 10 + index) };
}

const ROUTE_TYPES = ["unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit", "blackhole", "nat"];

/**
 * Routes on the machine that overlap the hosts subnet and are not ours (the subnet via the node):
 * another dev cluster's hosts, a VPN, a docker network. Each as `ip route` prints it.
 */
async function foreignRoutes(config: DevConfig, layout: RealNodeLayout): Promise<string[]> {
  const hosts = parseCidr(config.hostsCIDR)!;
  return (await ip("-o", "-4", "route", "show"))
    .split("\n")
    .filter(Boolean)
    .filter((line) => {
      const words = line.split(" ");
      // `blackhole 10.1.0.0/24`, `unreachable …`: the type comes first.
      const dest = ROUTE_TYPES.includes(words[0]) ? words[1] : words[0];
      const cidr = parseCidr(dest.includes("/") ? dest : `${dest}/32`);
      if (!cidr || cidr.prefix === 0 || !cidrsOverlap(cidr, hosts)) return false;
      return !(dest === config.hostsCIDR && line.includes(`via ${layout.link.node} `));
    });
}

/**
 * The hosts bridge inside the node's namespace, holding the hosts' gateway, and the machine's
 * route of the hosts subnet to the node. Refuses a subnet that overlaps a range of the dev
 * clusters (hostsCidrProblem) or a route of the machine, naming it.
 */
export async function ensureHostsBridge(config: DevConfig, layout: RealNodeLayout): Promise<void> {
  const net = hostsNetwork(config);
  if (!existsSync(layout.netnsPath)) throw new Error(`the meta-cluster's real node is not running (no network namespace ${layout.netns}): start it with \`kok dev up\``);
  const foreign = await foreignRoutes(config, layout);
  if (foreign.length) {
    throw new Error(`the hosts subnet ${config.hostsCIDR} overlaps routes of this machine:\n  ${foreign.join("\n  ")}\nset another hostsCIDR in ${config.stateDir}/config.json`);
  }
  const inNode = (...args: string[]) => ip("-n", layout.netns, ...args);
  if (!(await quiet("-n", layout.netns, "link", "show", "dev", HOSTS_BRIDGE))) await inNode("link", "add", HOSTS_BRIDGE, "type", "bridge");
  if (!(await inNode("-o", "-4", "addr", "show", "dev", HOSTS_BRIDGE)).includes(` ${net.gateway}/${net.prefix} `)) {
    await inNode("addr", "add", `${net.gateway}/${net.prefix}`, "dev", HOSTS_BRIDGE);
  }
  await inNode("link", "set", HOSTS_BRIDGE, "up");
  await ip("route", "replace", config.hostsCIDR, "via", layout.link.node, "dev", layout.hostVeth);
}

/** Removes the machine's route of the hosts subnet and the hosts bridge (the node's namespace takes it with it too). */
export async function deleteHostsBridge(config: DevConfig, layout: RealNodeLayout): Promise<number> {
  let removed = 0;
  if (await quiet("route", "del", config.hostsCIDR, "via", layout.link.node)) removed++;
  if (existsSync(layout.netnsPath) && (await quiet("-n", layout.netns, "link", "del", HOSTS_BRIDGE))) removed++;
  return removed;
}

/** Removes the route, the veth pair and the namespace (with the bridge and anything else left inside). */
export async function deleteNodeNetns(config: DevConfig, layout: RealNodeLayout): Promise<number> {
  let removed = 0;
  if (await quiet("route", "del", config.podCIDR, "via", layout.link.node)) removed++;
  if (await quiet("link", "del", layout.hostVeth)) removed++;
  if (existsSync(layout.netnsPath) && (await quiet("netns", "del", layout.netns))) removed++;
  return removed;
}

/** The command line that runs `command args` inside the node's namespace (nsenter execs: the pid is the command's). */
export function inNodeNetns(layout: RealNodeLayout, command: string, args: readonly string[]): { command: string; args: string[] } {
  return { command: "nsenter", args: [`--net=${layout.netnsPath}`, "--", command, ...args] };
}
