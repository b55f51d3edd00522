/**
 * `kok dev up`'s side of the node agent: start it in the background (node-agent/entry, role
 * supervisor) and wait until its Node is Ready.
 */
import { extname, join } from "node:path";
import { statePaths, type DevConfig } from "./config";
import { clientTls, httpsGet, waitFor } from "./health";
import { nodePaths } from "./node-agent/cleanup";
import { runningFromPidFile, startBackground } from "./processes";
import { logTail } from "./log-tail";

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

interface NodeJson {
  status?: { conditions?: { type: string; status: string; lastHeartbeatTime?: string }[] };
}

/** Waits for a Ready heartbeat newer than `since`: a Ready left over from an earlier agent does not count. */
export async function waitForNodeReady(config: DevConfig, since: Date, timeoutMs: number): Promise<void> {
  const tls = clientTls(statePaths(config.stateDir).pki, "admin");
  const url = `https://127.0.0.1:${config.ports.apiServer}/api/v1/nodes/${config.nodeName}`;
  await waitFor(
    `node ${config.nodeName}`,
    async () => {
      const result = await httpsGet(url, tls);
      if (result.status !== 200) return false;
      const node = JSON.parse(result.body) as NodeJson;
      // Heartbeat times have whole seconds: compare at that precision.
      const sinceSecond = Math.floor(since.getTime() / 1000) * 1000;
      return (
        node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True" && Date.parse(c.lastHeartbeatTime ?? "") >= sinceSecond) ?? false
      );
    },
    {
      timeoutMs,
      isDead: () => {
        if (runningFromPidFile(nodeAgentPidFile(config))) return undefined;
        const log = nodePaths(config).agentLog;
        return `the node agent exited; last lines of ${log}:\n${logTail(log)}`;
      },
    },
  );
}

