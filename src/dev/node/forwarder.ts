/** Starts the node link's forwarder (forwarder-entry.ts) with this process's node and loader flags (tsx or dist/). */
import { extname, join } from "node:path";
import { statePaths, type DevConfig } from "../config";
import { startBackground } from "../processes";
import type { RealNodeLayout } from "./layout";

/** What the node reaches on the machine's end of the link: the apiserver, the registry and the object store (etcd backups). */
export function forwards(config: DevConfig, layout: RealNodeLayout, registry: string): string[] {
  const registryPort = Number(registry.split(":").at(-1));
  const objectStorePort = config.ports.objectStore;
  return [
    `${layout.link.host}:${config.ports.apiServer}=127.0.0.1:${config.ports.apiServer}`,
    `${layout.link.host}:${registryPort}=127.0.0.1:${registryPort}`,
    `${layout.link.host}:${objectStorePort}=127.0.0.1:${objectStorePort}`,
  ];
}

export function startForwarder(config: DevConfig, layout: RealNodeLayout, registry: string): void {
  const entry = join(__dirname, `forwarder-entry${extname(__filename)}`);
  startBackground({
    command: process.execPath,
    // NodePorts on 127.0.0.1 too, so `externalHost: 127.0.0.1` reaches a business cluster (node-ports.ts).
    args: [...process.execArgv, entry, "--node-ports", layout.nodeIP, "--kubeconfig", statePaths(config.stateDir).adminKubeconfig, ...forwards(config, layout, registry)],
    pidFile: layout.forwarder.pid,
    logFile: layout.forwarder.log,
    marker: `${entry} --node-ports ${layout.nodeIP}`,
  });
}
