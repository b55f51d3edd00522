/**
 * `kok dev up`'s side of the node agent: start it in the background (node-agent/entry, role
 * supervisor) and wait until its Node is Ready.
 */
import { extname, join } from "node:path";
import type { DevConfig } from "./config";
import { nodePaths } from "./node-agent/cleanup";
import { runningFromPidFile, startBackground } from "./processes";
import { logTail } from "./log-tail";
import { waitForNodeReady } from "./node-ready";

export const nodeAgentPidFile = (config: DevConfig) => nodePaths(config).agentPid;

/**
 * Starts the agent's supervisor with this process's own node and loader flags (tsx in
 * development, plain node from dist/); returns its log file.
 */
export function startNodeAgent(config: DevConfig): string {
  const paths = nodePaths(config);
  const entry = join(__dirname, "node-agent", `entry${extname(__filename)}`);
  const args = [...process.execArgv, entry, "supervisor", "--state-dir", config.stateDir];
  startBackground({ command: process.execPath, args, pidFile: paths.agentPid, logFile: paths.agentLog, marker: `supervisor --state-dir ${config.stateDir}` });
  return paths.agentLog;
}

/** Waits for a Ready heartbeat of the agent's Node newer than `since` (node-ready.ts). */
export async function waitForAgentNodeReady(config: DevConfig, since: Date, timeoutMs: number): Promise<void> {
  await waitForNodeReady(config, since, {
    timeoutMs,
    isDead: () => {
      if (runningFromPidFile(nodeAgentPidFile(config))) return undefined;
      const log = nodePaths(config).agentLog;
      return `the node agent exited; last lines of ${log}:\n${logTail(log)}`;
    },
  });
}
