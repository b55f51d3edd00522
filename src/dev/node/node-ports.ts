/**
 * NodePorts of the real node on the machine's loopback. The node lives in its own network
 * namespace, so kube-proxy answers NodePorts on the node's address only; a developer, a test or
 * the Pulumi engine on this machine reaches a business cluster at https://127.0.0.1:<nodePort>,
 * as it did on the node agent and as kind's port mappings allow. For every TCP nodePort of a
 * NodePort or LoadBalancer Service, a listener on 127.0.0.1 pipes bytes to <nodeIP>:<nodePort>,
 * where kube-proxy picks the endpoint. Loopback only: nothing listens on the machine's external
 * addresses.
 */
import { createServer, type Server } from "node:net";
import { pipeTo } from "../tcp-pipe";
import type { V1Service } from "@kubernetes/client-node";

/** The TCP nodePorts a set of Services asks for. */
export function wantedNodePorts(services: Iterable<V1Service>): Set<number> {
  const ports = new Set<number>();
  for (const svc of services) {
    if (svc.spec?.type !== "NodePort" && svc.spec?.type !== "LoadBalancer") continue;
    for (const port of svc.spec.ports ?? []) {
      if (port.nodePort && (port.protocol ?? "TCP") === "TCP") ports.add(port.nodePort);
    }
  }
  return ports;
}

export class LoopbackNodePorts {
  private readonly listeners = new Map<number, Server>();

  constructor(
    private readonly nodeIP: string,
    private readonly log: (line: string) => void,
  ) {}

  /** Opens a listener for every nodePort now wanted and closes the rest. */
  sync(services: Iterable<V1Service>): void {
    const wanted = wantedNodePorts(services);
    for (const [port, server] of this.listeners) {
      if (wanted.has(port)) continue;
      server.close();
      this.listeners.delete(port);
      this.log(`nodePort 127.0.0.1:${port}: closed`);
    }
    for (const port of wanted) if (!this.listeners.has(port)) this.open(port);
  }

  /** The nodePorts listened on now. */
  ports(): number[] {
    return [...this.listeners.keys()].sort((a, b) => a - b);
  }

  close(): void {
    for (const server of this.listeners.values()) server.close();
    this.listeners.clear();
  }

  private open(port: number): void {
    const server = createServer((client) => pipeTo(client, port, this.nodeIP));
    server.on("error", (error) => {
      // Another dev cluster (or anything else) holds the port here: the Service still answers on
      // the node's address; say so once and let a later sync try again.
      this.log(`nodePort ${port}: cannot listen on 127.0.0.1 (${error.message}); it answers on ${this.nodeIP}:${port} only`);
      this.listeners.delete(port);
    });
    server.listen(port, "127.0.0.1", () => this.log(`nodePort 127.0.0.1:${port} -> ${this.nodeIP}:${port}`));
    this.listeners.set(port, server);
  }
}
