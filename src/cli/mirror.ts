/**
 * `kok mirror <dir> [--addr 127.0.0.1:8099]`: a package mirror for air-gapped sites and tests.
 * Serves the files of one directory (not its subdirectories' parents: no `..`, no symlinks out)
 * over plain HTTP with Content-Length, and prints each artifact's URL and sha256 at start, ready to
 * paste into a ClusterPackageVersion.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, realpath, stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import * as path from "node:path";

export interface MirrorArtifact {
  /** Path relative to the served directory, with "/" separators. */
  readonly name: string;
  readonly url: string;
  readonly sha256: string;
  readonly size: number;
}

export interface Mirror {
  readonly url: string;
  readonly artifacts: readonly MirrorArtifact[];
  /** Requests served so far, as "METHOD /path status" (for tests and logs). */
  readonly requests: readonly string[];
  close(): Promise<void>;
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function listFiles(root: string, dir = root): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await listFiles(root, full)));
    else if (entry.isFile()) files.push(path.relative(root, full).split(path.sep).join("/"));
  }
  return files.sort();
}

/** Starts the mirror; `port` 0 picks a free port. */
export async function startMirror(options: { dir: string; host?: string; port?: number }): Promise<Mirror> {
  const root = await realpath(options.dir);
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const respond = (status: number, message?: string) => {
      requests.push(`${req.method} ${req.url} ${status}`);
      res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
      res.end(message ? `${message}\n` : undefined);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return respond(405, "only GET and HEAD");
    let relative: string;
    try {
      relative = decodeURIComponent(new URL(req.url ?? "/", "http://mirror").pathname);
    } catch {
      return respond(400, "bad path");
    }
    const file = path.resolve(root, `.${relative}`);
    void realpath(file)
      .then(async (real) => {
        if (real !== root && !real.startsWith(root + path.sep)) return respond(404, "not found");
        const info = await stat(real);
        if (!info.isFile()) return respond(404, "not found");
        requests.push(`${req.method} ${req.url} 200`);
        res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": info.size });
        if (req.method === "HEAD") return void res.end();
        createReadStream(real).pipe(res);
      })
      .catch(() => respond(404, "not found"));
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8099, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const artifacts: MirrorArtifact[] = [];
  for (const name of await listFiles(root)) {
    const full = path.join(root, name);
    artifacts.push({ name, url: `${url}/${name.split("/").map(encodeURIComponent).join("/")}`, sha256: await sha256Of(full), size: (await stat(full)).size });
  }
  return {
    url,
    artifacts,
    requests,
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
}

/** Splits "host:port" (IPv6 as "[::1]:8099"). */
export function parseAddr(addr: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(addr);
  if (!match) throw new Error(`--addr "${addr}" must be host:port, e.g. 127.0.0.1:8099`);
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`--addr "${addr}": port must be at most 65535`);
  return { host: match[1] ?? match[2], port };
}

const USAGE = "usage: kok mirror <dir> [--addr 127.0.0.1:8099]";

/** The `kok mirror` command: serves until interrupted. */
export async function runMirror(argv: string[]): Promise<void> {
  let dir: string | undefined;
  let addr = "127.0.0.1:8099";
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--addr") addr = argv[++i] ?? "";
    else if (argv[i].startsWith("--addr=")) addr = argv[i].slice("--addr=".length);
    else if (argv[i] === "-h" || argv[i] === "--help") return void console.log(USAGE);
    else if (!dir && !argv[i].startsWith("-")) dir = argv[i];
    else throw new Error(`unexpected argument "${argv[i]}"\n${USAGE}`);
  }
  if (!dir) throw new Error(`the directory to serve is missing\n${USAGE}`);
  const mirror = await startMirror({ dir, ...parseAddr(addr) });
  console.log(`kok mirror: serving ${path.resolve(dir)} at ${mirror.url} (${mirror.artifacts.length} artifacts)`);
  for (const a of mirror.artifacts) console.log(`${a.url}  sha256:${a.sha256}  ${a.size} bytes`);
  await new Promise<void>((resolve) => {
    const stop = () => void mirror.close().then(resolve);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
