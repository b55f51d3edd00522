/**
 * NodePort Services on the dev node: for each nodePort, a TCP listener on 127.0.0.1 that pipes a
 * connection to a ready endpoint, so the host (a developer, a test, the Pulumi engine) reaches a
 * business cluster's apiserver at https://127.0.0.1:<nodePort>. Loopback only: nothing listens on
 * the machine's external addresses.
 */
import { createServer, type Server } from "node:net";
import { pipeTo } from "../tcp-pipe";
import type * as k8s from "@kubernetes/client-node";
import type { ServiceRegistry } from "./service-registry";

interface Listener {
  readonly server: Server;
  /** `<ns>/<svc>/<port name>` the listener serves. */
  readonly target: string;
}

export class NodePortProxies {
  private readonly listeners = new Map<number, Listener>();

  constructor(
    private readonly registry: ServiceRegistry,
    private readonly log: (line: string) => void,
  ) {}

  /** Opens listeners for every nodePort now wanted and closes the rest. */
  sync(services: readonly k8s.V1Service[]): void {
    const wanted = new Map<number, { namespace: string; name: string; portName?: string }>();
    for (const svc of services) {
      if (svc.spec?.type !== "NodePort" && svc.spec?.type !== "LoadBalancer") continue;
      for (const port of svc.spec.ports ?? []) {
        if (port.nodePort && (port.protocol ?? "TCP") === "TCP") {
          wanted.set(port.nodePort, { namespace: svc.metadata?.namespace ?? "", name: svc.metadata?.name ?? "", portName: port.name });
        }
      }
    }
    for (const [nodePort, listener] of this.listeners) {
      const want = wanted.get(nodePort);
      if (!want || listener.target !== targetKey(want)) {
        listener.server.close();
        this.listeners.delete(nodePort);
      }
    }
    for (const [nodePort, want] of wanted) {
      if (!this.listeners.has(nodePort)) this.open(nodePort, want);
    }
  }

  private open(nodePort: number, want: { namespace: string; name: string; portName?: string }): void {
    const server = createServer((client) => {
      const backends = this.registry.backends(want.namespace, want.name, want.portName);
      if (!backends.length) {
        client.destroy();
        return;
      }
      const backend = backends[Math.floor(Math.random() * backends.length)];
      pipeTo(client, backend.port, backend.address);
    });
    server.on("error", (error) => {
      this.log(`nodePort ${nodePort} (${targetKey(want)}): cannot listen on 127.0.0.1: ${error.message}`);
      this.listeners.delete(nodePort);
    });
    server.listen(nodePort, "127.0.0.1");
    this.listeners.set(nodePort, { server, target: targetKey(want) });
    this.log(`nodePort 127.0.0.1:${nodePort} -> ${targetKey(want)}`);
  }

  close(): void {
    for (const listener of this.listeners.values()) listener.server.close();
    this.listeners.clear();
  }
}

function targetKey(t: { namespace: string; name: string; portName?: string }): string {
  return `${t.namespace}/${t.name}/${t.portName ?? ""}`;
}
