/**
 * The real node's own network namespace. containerd, the kubelet and hostNetwork Pods (kube-proxy)
 * run there, so kube-proxy's iptables chains, the kubelet's ports and the CNI bridge are the
 * node's alone: two dev clusters on one machine (a developer's and a test's) never touch each
 * other's rules. A veth pair joins it to the machine; the machine routes the pod range to the
 * node's end. The only changes outside the namespace are that veth end and that route, both
 * removed by cleanup; forwarding and bridge netfilter are switched on inside the namespace only.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import type { DevConfig } from "../config";
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

const quiet = (...args: string[]) => ip(...args).then(() => true, () => false);

/** Writes a sysctl of the node's namespace (/proc/sys/net is per network namespace). */
async function nodeSysctl(layout: RealNodeLayout, key: string, value: string): Promise<void> {
  await run("nsenter", [`--net=${layout.netnsPath}`, "--", "sh", "-c", `echo ${value} > /proc/sys/${key.replace(/\./g, "/")}`]);
}

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
