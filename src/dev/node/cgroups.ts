/**
 * The real dev node's cgroups: one `cgroupRoot` per state directory (`/kok-<tag>`) in every
 * cgroup v1 hierarchy, so the kubelet's `kubepods` tree of one dev cluster never meets another's
 * or the demo's worker hosts'. Cleanup kills what is still inside and removes the tree.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { join } from "node:path";

/**
 * Mount points of the cgroup hierarchies: the v1 ones (fs type `cgroup`) and, on a hybrid machine
 * like ours, the v2 one beside them (`/sys/fs/cgroup/unified`), where runc mirrors each container.
 */
export function cgroupMounts(mountinfo = readFileSync("/proc/self/mountinfo", "utf8")): { v1: string[]; v2: string[] } {
  const mounts = { v1: [] as string[], v2: [] as string[] };
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    const type = right?.split(" ")[0];
    if (type === "cgroup") mounts.v1.push(left.split(" ")[4]);
    if (type === "cgroup2") mounts.v2.push(left.split(" ")[4]);
  }
  return mounts;
}

const allMounts = () => {
  const { v1, v2 } = cgroupMounts();
  return [...v1, ...v2];
};

/** Creates `<hierarchy>/<root>` everywhere; a new cpuset needs its parent's cpus and mems before it can hold tasks. */
export function ensureCgroupRoot(root: string, mounts = cgroupMounts().v1): void {
  if (mounts.length === 0) throw new Error("no cgroup v1 hierarchy is mounted (the real dev node is written for cgroup v1 machines)");
  for (const mount of mounts) {
    const dir = join(mount, root);
    mkdirSync(dir, { recursive: true });
    if (existsSync(join(dir, "cpuset.cpus"))) {
      for (const file of ["cpuset.cpus", "cpuset.mems"]) {
        if (readFileSync(join(dir, file), "utf8").trim() === "") copyFileSync(join(mount, file), join(dir, file));
      }
    }
  }
}

/** An entry that vanished while we walked (runc and the shims remove cgroups of containers that exit; reading a cgroup being removed gives ENODEV). */
const gone = (error: unknown) => ["ENOENT", "ENODEV"].includes((error as NodeJS.ErrnoException).code ?? "");

function subdirectories(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(dir, e.name));
  } catch (error) {
    if (gone(error)) return [];
    throw error;
  }
}

function pidsUnder(dir: string): number[] {
  const pids: number[] = [];
  try {
    pids.push(...readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number));
  } catch (error) {
    if (!gone(error)) throw error;
  }
  for (const child of subdirectories(dir)) pids.push(...pidsUnder(child));
  return pids;
}

/** Depth first. A cgroup whose last task was just killed stays busy until the kernel has reaped it: retry a while. */
async function removeTree(dir: string): Promise<void> {
  for (const child of subdirectories(dir)) await removeTree(child);
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (error) {
      if (gone(error)) return;
      if ((error as NodeJS.ErrnoException).code !== "EBUSY" || attempt >= 50) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Every process still in the tree (a crashed node's containers), from any hierarchy. */
export function processesInCgroupRoot(root: string, mounts = allMounts()): number[] {
  const all = new Set<number>();
  for (const mount of mounts) if (existsSync(join(mount, root))) for (const pid of pidsUnder(join(mount, root))) all.add(pid);
  return [...all];
}

/** Kills what is inside, waits until the tree is empty, then removes it; returns the processes killed. */
export async function removeCgroupRoot(root: string, mounts = allMounts()): Promise<number> {
  const pids = processesInCgroupRoot(root, mounts);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  const deadline = Date.now() + 10_000;
  while (processesInCgroupRoot(root, mounts).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const problems: string[] = [];
  for (const mount of mounts) {
    const dir = join(mount, root);
    if (!existsSync(dir)) continue;
    try {
      await removeTree(dir);
    } catch (error) {
      problems.push(`${dir}: ${(error as Error).message}`);
    }
  }
  if (problems.length) throw new Error(`could not remove the node's cgroups:\n${problems.join("\n")}`);
  return pids.length;
}

/** Used by tests: whether any hierarchy still has the root. */
export function cgroupRootExists(root: string, mounts = allMounts()): boolean {
  return mounts.some((mount) => existsSync(join(mount, root)));
}

