/**
 * Pod networking of the dev node: one Linux bridge with the pod range's first address, and per
 * Pod a network namespace joined to it by a veth pair. Only addresses of the pod range, only
 * inside namespaces and a bridge this agent creates; the machine's own interfaces, routes and
 * mounts are never touched. Names carry the state directory's tag so two dev clusters never
 * touch each other's.
 */
import { execFile } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);

export async function ip(...args: string[]): Promise<string> {
  try {
    return (await run("ip", args)).stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    if ((error as { code?: string }).code === "ENOENT") throw new Error("the `ip` command (Debian package iproute2) is not installed");
    throw new Error(`ip ${args.join(" ")}: ${stderr || (error as Error).message}`);
  }
}

export const bridgeName = (tag: string) => `kok${tag}`;
const compactUid = (uid: string) => uid.replace(/-/g, "").slice(0, 12);
export const netnsPrefix = (tag: string) => `kok${tag}-`;
export const netnsName = (tag: string, uid: string) => `${netnsPrefix(tag)}${compactUid(uid)}`;
/** Host side of a pod's veth; IFNAMSIZ allows 15 characters. */
const vethName = (uid: string) => `kv${compactUid(uid)}`;

async function linkExists(name: string): Promise<boolean> {
  try {
    await ip("link", "show", "dev", name);
    return true;
  } catch {
    return false;
  }
}

/** The bridge with `gateway/prefix`, up; created once per agent start. */
export async function ensureBridge(tag: string, gateway: string, prefix: number): Promise<void> {
  const bridge = bridgeName(tag);
  if (!(await linkExists(bridge))) {
    await ip("link", "add", "name", bridge, "type", "bridge");
  }
  const addresses = await ip("-o", "-4", "addr", "show", "dev", bridge);
  if (!addresses.includes(` ${gateway}/${prefix} `)) await ip("addr", "add", `${gateway}/${prefix}`, "dev", bridge);
  await ip("link", "set", bridge, "up");
}

export async function deleteBridge(tag: string): Promise<void> {
  if (await linkExists(bridgeName(tag))) await ip("link", "del", bridgeName(tag));
}

export interface PodNetwork {
  readonly netns: string;
  readonly podIP: string;
}

/**
 * A namespace with `eth0` = podIP on the bridge, `lo` up, a default route via the bridge, and the
 * /etc/netns/<ns>/{resolv.conf,hosts} that `ip netns exec` bind-mounts over the process's view.
 */
export async function createPodNetwork(
  tag: string,
  uid: string,
  podIP: string,
  prefix: number,
  gateway: string,
  files: { resolvConf: string; hosts: string },
): Promise<PodNetwork> {
  const netns = netnsName(tag, uid);
  await deletePodNetwork(netns);
  await ip("netns", "add", netns);
  const veth = vethName(uid);
  await ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns);
  await ip("link", "set", veth, "master", bridgeName(tag), "up");
  await ip("-n", netns, "addr", "add", `${podIP}/${prefix}`, "dev", "eth0");
  await ip("-n", netns, "link", "set", "eth0", "up");
  await ip("-n", netns, "link", "set", "lo", "up");
  await ip("-n", netns, "route", "add", "default", "via", gateway);
  const etc = `/etc/netns/${netns}`;
  mkdirSync(etc, { recursive: true });
  writeFileSync(`${etc}/resolv.conf`, files.resolvConf);
  writeFileSync(`${etc}/hosts`, files.hosts);
  return { netns, podIP };
}

/** Removes the namespace (its veth pair goes with it) and its /etc/netns files. */
export async function deletePodNetwork(netns: string): Promise<void> {
  const existing = await listNetns(netns);
  if (existing.includes(netns)) await ip("netns", "delete", netns);
  rmSync(`/etc/netns/${netns}`, { recursive: true, force: true });
}

/** Namespaces whose name starts with `prefix`. */
export async function listNetns(prefix: string): Promise<string[]> {
  const out = await ip("netns", "list");
  return out
    .split("\n")
    .map((line) => line.split(" ")[0])
    .filter((name) => name && name.startsWith(prefix));
}
