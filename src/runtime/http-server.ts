/**
 * The operator's HTTP endpoint for Kubernetes probes and Prometheus:
 * - `/healthz`: 200 while the process serves HTTP at all (liveness: restart only a hung process;
 *   a lost meta-cluster connection is not fixed by a restart).
 * - `/readyz`: 200 when the informer caches have synced and the replica either leads with its
 *   controllers running, or stands by knowing who leads; 503 with the reason otherwise (caches
 *   not synced, no leader seen yet, or leading while the term's first stack recoveries run).
 *   The body says which: `ok: leading as <identity>; controllers running: Cluster, …` or
 *   `ok: standby; leader: <identity>`, and the objects still waiting for their stack recovery
 *   (those are reported on each object and retried; they do not make the replica unready).
 * - `/metrics`: the Prometheus text format.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses a `--metrics-addr` value the way Go flags are written: `host:port`, `:port` (every
 * interface), or `[v6]:port`. Port 0 picks a free port (tests).
 */
export function parseListenAddress(value: string, flag = "--metrics-addr"): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new Error(`${flag}: "${value}" is not an address; write host:port, :port or [ipv6]:port, e.g. :8080 or 127.0.0.1:8080`);
  }
  const host = match[1] ?? (match[2] || "0.0.0.0");
  return { host, port };
}

/** Why the replica is not ready, or undefined when it is. */
export type ReadinessCheck = () => string | undefined;

export interface OperatorServer {
  readonly server: Server;
  /** The bound address (with the real port when 0 was asked for). */
  readonly address: ListenAddress;
  close(): Promise<void>;
}

export async function startOperatorServer(options: {
  readonly address: ListenAddress;
  readonly registry: Registry;
  readonly readiness: ReadinessCheck;
  /** The 200 body's detail (`ok: <describe()>`): role, controllers, objects awaiting recovery. */
  readonly describe?: () => string;
}): Promise<OperatorServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const reply = (status: number, body: string, type = "text/plain; charset=utf-8") => {
      res.writeHead(status, { "Content-Type": type });
      res.end(body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return reply(405, "method not allowed\n");
    switch (path) {
      case "/healthz":
        return reply(200, "ok\n");
      case "/readyz": {
        let reason: string | undefined;
        try {
          reason = options.readiness();
        } catch (err) {
          reason = `readiness check failed: ${err instanceof Error ? err.message : String(err)}`;
        }
        if (reason !== undefined) return reply(503, `not ready: ${reason}\n`);
        let detail = "";
        try {
          detail = options.describe ? `: ${options.describe()}` : "";
        } catch {
          // The detail is for people; readiness was decided above.
        }
        return reply(200, `ok${detail}\n`);
      }
      case "/metrics":
        options.registry.metrics().then(
          (text) => reply(200, text, options.registry.contentType),
          (err: unknown) => reply(500, `metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
        );
        return;
      default:
        return reply(404, "not found: try /metrics, /healthz or /readyz\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.address.port, options.address.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    server,
    address: { host: bound.address, port: bound.port },
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Prometheus keeps its scrape connection alive; without this, close waits for it.
        server.closeAllConnections();
      }),
  };
}

/**
 * The readiness rule in one place: caches synced, and (with leader election) the elector has
 * either won or knows who the leader is. A standby is ready: it serves metrics and is there to
 * take over; it just does not reconcile.
 */
export function operatorReadiness(parts: {
  readonly cachesSynced: () => boolean;
  readonly election?: { isLeader(): boolean; leader(): string | undefined };
  /** This replica leads (always true without election once started). */
  readonly leading?: () => boolean;
  /** The term's controllers run (its first stack recoveries are over). */
  readonly reconciling?: () => boolean;
}): ReadinessCheck {
  return () => {
    if (!parts.cachesSynced()) return "informer caches have not synced yet";
    const leading = parts.leading?.() ?? parts.election?.isLeader() ?? false;
    if (leading && parts.reconciling && !parts.reconciling()) return "leading, but the controllers are not running yet (recovering stacks)";
    if (parts.election && !leading && parts.election.leader() === undefined) {
      return "leader election has not observed a leader yet";
    }
    return undefined;
  };
}
