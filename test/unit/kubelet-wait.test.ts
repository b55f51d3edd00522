/**
 * The wait for a restarted kubelet (services.ts, kubeletWaitFunction), run by bash against
 * stand-ins on loopback: an HTTP server for /healthz and a TCP listener for the serving port, at
 * the ports and addresses the kubelet's config file names.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createTcpServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { kubeletWaitFunction } from "../../src/host/scripts/services";

const servers: { close(): unknown }[] = [];
const roots: string[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

async function listen<T extends Server | ReturnType<typeof createTcpServer>>(server: T, host: string): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

function rootWith(config: string | undefined): string {
  const root = mkdtempSync(join(tmpdir(), "kok-kubelet-wait-"));
  roots.push(root);
  if (config !== undefined) {
    mkdirSync(join(root, "var/lib/kubelet"), { recursive: true });
    writeFileSync(join(root, "var/lib/kubelet/config.yaml"), config);
  }
  return root;
}

/** Runs the function as a step's script would; async, so the stand-ins in this process can answer. */
function waitFor(root: string, seconds: number): Promise<{ status: number | null; out: string }> {
  const script = `set -euo pipefail
ROOT=${JSON.stringify(root)}
log() { echo "log: $*"; }
fail() { echo "fail: $*" >&2; exit 1; }
${kubeletWaitFunction("the kubelet's log", seconds)}kubelet_wait_healthy
`;
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", script]);
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", (status: number | null) => resolve({ status, out }));
  });
}

describe("waiting for a restarted kubelet", () => {
  it("returns once /healthz says 200 and the serving port accepts, at the addresses the config names", async () => {
    const healthz = await listen(createHttpServer((req, res) => res.writeHead(req.url === "/healthz" ? 200 : 404).end("ok")), "127.0.0.7");
    const serving = await listen(createTcpServer((s) => s.end()), "127.0.0.7");
    const root = rootWith(`address: 127.0.0.7\nhealthzBindAddress: 127.0.0.7\nhealthzPort: ${healthz}\nport: ${serving}\n`);
    const r = await waitFor(root, 10);
    expect(r.out).toContain(`the kubelet answers on 127.0.0.7:${healthz}/healthz and 127.0.0.7:${serving}`);
    expect(r.status).toBe(0);
  });

  it("fails, naming both ports and where to look, while /healthz answers 500", async () => {
    const healthz = await listen(createHttpServer((_req, res) => res.writeHead(500).end("not yet")), "127.0.0.7");
    const serving = await listen(createTcpServer((s) => s.end()), "127.0.0.7");
    const root = rootWith(`address: 127.0.0.7\nhealthzBindAddress: "127.0.0.7"\nhealthzPort: ${healthz}\nport: ${serving}\n`);
    const r = await waitFor(root, 2);
    expect(r.status).toBe(1);
    expect(r.out).toContain(`fail: the kubelet did not answer on http://127.0.0.7:${healthz}/healthz and port 127.0.0.7:${serving} within 2 s of its restart; see the kubelet's log`);
  });

  it("fails while the serving port refuses, even with a healthy /healthz", async () => {
    const healthz = await listen(createHttpServer((_req, res) => res.writeHead(200).end("ok")), "127.0.0.7");
    const closed = createTcpServer();
    const serving = await listen(closed, "127.0.0.7");
    closed.close();
    const root = rootWith(`address: 127.0.0.7\nhealthzBindAddress: 127.0.0.7\nhealthzPort: ${healthz}\nport: ${serving}\n`);
    const r = await waitFor(root, 2);
    expect(r.status).toBe(1);
    expect(r.out).toContain("did not answer");
  });

  it("does not wait without a config file (no kubelet of ours) or with the health port off", async () => {
    expect(await waitFor(rootWith(undefined), 2)).toMatchObject({ status: 0 });
    const off = await waitFor(rootWith("healthzPort: 0\n"), 2);
    expect(off.status).toBe(0);
    expect(off.out).toContain("health port is off");
  });
});
