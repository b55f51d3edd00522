/**
 * Removes everything of a real dev node, running or crashed: the kubelet, every container
 * process (by the node's cgroup tree), the containerd shims of this node's containerd (by their
 * `-address`), containerd itself, the forwarder, every mount under the node's state (Pods' network
 * namespaces, the kubelet's secret tmpfs, overlay root file systems), the node's network namespace
 * with its veth pair and route (and a bridge an older node left on the machine), the sandbox
 * worker hosts' namespaces with their processes and the hosts subnet's route (host-netns.ts),
 * the cgroup tree, and the kubelet's links in /var/log/containers. Run by `kok dev down`, and by
 * `kok dev up` before starting a node whose containerd is not running (after a crash).
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { stopFromPidFile, stopProcess } from "../processes";
import type { DevConfig } from "../config";
import { removeCgroupRoot } from "./cgroups";
import { realNodeLayout } from "./layout";
import { deleteAllHostNetns } from "../host-netns";
import { deleteHostsBridge, deleteNodeNetns } from "./netns";

const run = promisify(execFile);

/** Pids whose command line (NUL-separated words) contains every one of `words`, in order of appearance. */
export function pidsWithArgs(words: readonly string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (words.every((w) => args.includes(w))) pids.push(Number(entry));
  }
  return pids;
}

/** Mount points at or under `dir`, deepest first (from /proc/self/mountinfo, octal escapes decoded). */
export function mountsUnder(dir: string, mountinfo = readFileSync("/proc/self/mountinfo", "utf8")): string[] {
  const decode = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const points = mountinfo
    .split("\n")
    .filter(Boolean)
    .map((line) => decode(line.split(" ")[4]))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

async function unmountAll(dir: string): Promise<number> {
  let count = 0;
  // A mount may be stacked several times (a netns bind-mounted again): repeat until none is left.
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(dir);
    if (!mounts.length) return count;
    for (const point of mounts) {
      try {
        await run("umount", ["-l", point]);
        count++;
      } catch {
        // already gone with its parent
      }
    }
  }
  const left = mountsUnder(dir);
  if (left.length) throw new Error(`mounts under ${dir} could not be removed: ${left.join(", ")}`);
  return count;
}

async function deleteLink(name: string): Promise<boolean> {
  try {
    await run("ip", ["link", "del", name]);
    return true;
  } catch {
    return false;
  }
}

/** Host-side veths attached to the bridge (deleting one deletes its Pod-side peer too). */
async function linksOnBridge(bridge: string): Promise<string[]> {
  try {
    const { stdout } = await run("ip", ["-o", "link", "show", "master", bridge]);
    return stdout
      .split("\n")
      .filter(Boolean)
      .map((line) => line.split(": ")[1].split("@")[0]);
  } catch {
    return [];
  }
}

function removeContainerLogLinks(podLogs: string): number {
  const dir = "/var/log/containers";
  if (!existsSync(dir)) return 0;
  let removed = 0;
  for (const entry of readdirSync(dir)) {
    try {
      if (readlinkSync(join(dir, entry)).startsWith(`${podLogs}/`)) {
        rmSync(join(dir, entry), { force: true });
        removed++;
      }
    } catch {
      // not a link
    }
  }
  return removed;
}

export interface CleanupReport {
  readonly processes: number;
  readonly mounts: number;
  readonly links: number;
}

/** Stops and removes everything of the node; safe to run when nothing is there. `purgeState` also deletes its files. */
export async function cleanupRealNode(config: DevConfig, opts: { purgeState?: boolean } = {}): Promise<CleanupReport> {
  const layout = realNodeLayout(config);
  let processes = 0;
  let mounts = 0;
  let links = 0;
  // Every step runs even when one fails, so one stuck mount does not leave containerd running.
  const problems: string[] = [];
  const step = async (what: string, action: () => Promise<void>) => {
    try {
      await action();
    } catch (error) {
      problems.push(`${what}: ${(error as Error).message}`);
    }
  };
  // The sandbox worker hosts on the node's hosts bridge (host-netns.ts): every process in their
  // namespaces (sshd, their containerd and kubelet, Pods under their shims), then the namespaces.
  await step("worker hosts", async () => {
    const removed = await deleteAllHostNetns(config);
    processes += removed.processes;
    links += removed.links + (await deleteHostsBridge(config, layout));
  });
  await step("kubelet", async () => void ((await stopFromPidFile(layout.kubelet.pid, 30_000)) && processes++));
  // Containers first (they live in the node's cgroups), then their shims, then containerd.
  await step("containers", async () => void (processes += await removeCgroupRoot(layout.cgroupRoot)));
  await step("shims", async () => {
    for (const pid of pidsWithArgs(["-address", layout.containerd.socket])) {
      if (await stopProcess({ pid, marker: layout.containerd.socket, startedAt: "" }, 5000)) processes++;
    }
  });
  await step("containerd", async () => void ((await stopFromPidFile(layout.containerd.pid, 30_000)) && processes++));
  await step("forwarder", async () => void ((await stopFromPidFile(layout.forwarder.pid, 5000)) && processes++));
  await step("mounts", async () => void (mounts += await unmountAll(layout.dir)));
  // The namespace takes the bridge and the Pods' veth ends with it.
  await step("network", async () => {
    links += await deleteNodeNetns(config, layout);
    for (const link of await linksOnBridge(layout.bridge)) if (await deleteLink(link)) links++;
  });
  removeContainerLogLinks(layout.kubelet.podLogs);
  if (problems.length) throw new Error(`the real node could not be removed completely:\n  ${problems.join("\n  ")}`);
  // Runtime state never outlives its processes; images (containerd's root) are kept unless purging.
  rmSync(layout.containerd.state, { recursive: true, force: true });
  if (opts.purgeState) rmSync(layout.dir, { recursive: true, force: true });
  return { processes, mounts, links };
}
