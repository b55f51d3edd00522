/**
 * Waits for the dev node's Ready heartbeat newer than `since`: a Ready left over from an earlier
 * run (the Node object outlives its kubelet) does not count. `isDead` ends the
 * wait early with the reason when the process that should heartbeat has exited.
 */
import { statePaths, type DevConfig } from "./config";
import { clientTls, httpsGet, waitFor } from "./health";

interface NodeJson {
  status?: { conditions?: { type: string; status: string; lastHeartbeatTime?: string }[] };
}

export async function waitForNodeReady(config: DevConfig, since: Date, opts: { timeoutMs: number; isDead: () => string | undefined }): Promise<void> {
  const tls = clientTls(statePaths(config.stateDir).pki, "admin");
  const url = `https://127.0.0.1:${config.ports.apiServer}/api/v1/nodes/${config.nodeName}`;
  // Heartbeat times have whole seconds: compare at that precision.
  const sinceSecond = Math.floor(since.getTime() / 1000) * 1000;
  await waitFor(
    `node ${config.nodeName}`,
    async () => {
      const result = await httpsGet(url, tls);
      if (result.status !== 200) return false;
      const node = JSON.parse(result.body) as NodeJson;
      return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True" && Date.parse(c.lastHeartbeatTime ?? "") >= sinceSecond) ?? false;
    },
    opts,
  );
}
