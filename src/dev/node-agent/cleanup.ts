/**
 * Removes everything of a dev node that is still there: container processes named by pid files,
 * network namespaces with this state directory's prefix, the bridge. Run by the agent at start
 * (after a crash) and by `kok dev down` (in case the agent is gone).
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { stateTag, statePaths, type DevConfig } from "../config";
import { readPidFile, stopProcess } from "../processes";
import { deleteBridge, deletePodNetwork, listNetns, netnsPrefix } from "./network";

export function nodePaths(config: DevConfig) {
  const dir = statePaths(config.stateDir).node;
  return { dir, pods: join(dir, "pods"), logs: join(dir, "logs"), ipam: join(dir, "ipam.json"), agentLog: join(dir, "agent.log"), agentPid: join(dir, "agent.pid") };
}

/** Returns how many processes and namespaces it removed. */
export async function cleanupNode(config: DevConfig): Promise<number> {
  const paths = nodePaths(config);
  const tag = stateTag(config.stateDir);
  let removed = 0;
  if (existsSync(paths.pods)) {
    for (const uid of readdirSync(paths.pods)) {
      const pids = join(paths.pods, uid, "pids");
      if (!existsSync(pids)) continue;
      for (const file of readdirSync(pids)) {
        if (await stopProcess(readPidFile(join(pids, file)), 5000)) removed++;
      }
    }
    rmSync(paths.pods, { recursive: true, force: true });
  }
  for (const netns of await listNetns(netnsPrefix(tag))) {
    await deletePodNetwork(netns);
    removed++;
  }
  await deleteBridge(tag);
  return removed;
}
