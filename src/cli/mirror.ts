/**
 * `kok mirror <dir> [--addr 127.0.0.1:8099]`: a package mirror for air-gapped sites and tests.
 * Serves the regular files of one directory over plain HTTP with Content-Length, and prints each
 * artifact's URL and sha256 at start, ready to paste into a ClusterPackageVersion.
 *
 * What a mirror must never do, since worker hosts fetch from it and anyone on the network may ask
 * it anything: serve outside the directory (`..`, encoded or not, absolute paths, symlinks out),
 * serve dotfiles or anything under a dot-directory (`.git`, `.env`, credentials kept beside the
 * artifacts), die on a file it cannot read (an error answers 500 and is logged), or keep per-request
 * state: the request log is a bounded ring and every file stream is closed however the request ends.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readdir, realpath } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import * as path from "node:path";
import { pipeline } from "node:stream";

export interface MirrorArtifact {
  /** Path relative to the served directory, with "/" separators. */
  readonly name: string;
  readonly url: string;
  readonly sha256: string;
  readonly size: number;
}

/** One answered request, for logs. `error` only when the mirror failed (5xx) or the client left. */
export interface MirrorLogEntry {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly error?: string;
}

export interface MirrorOptions {
  readonly dir: string;
  readonly host?: string;
  /** 0 picks a free port. Default 8099. */
  readonly port?: number;
  /** Called once per request when it ends. Default: failures (5xx, aborted downloads) to stderr. */
  readonly log?: (entry: MirrorLogEntry) => void;
  /** How many recent requests `requests` keeps. Default 1000. */
  readonly recentRequests?: number;
}

export interface Mirror {
  readonly url: string;
  readonly artifacts: readonly MirrorArtifact[];
  /** The most recent requests (at most `recentRequests`), as "METHOD /path status". */
  readonly requests: readonly string[];
  /** GET requests answered with a whole file since start. */
  readonly downloads: number;
  close(): Promise<void>;
}

/** Longest request path kept in the log: a 16 KB URL must not cost 16 KB per entry. */
const LOGGED_PATH_MAX = 256;

async function sha256Of(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Regular files under `dir`, relative, skipping dotfiles, dot-directories and symlinks. */
async function listFiles(root: string, dir = root): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith(".")) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await listFiles(root, full)));
    else if (entry.isFile()) files.push(path.relative(root, full).split(path.sep).join("/"));
  }
  return files.sort();
}

/**
 * The relative path a request names, or undefined when it may not name anything: not
 * origin-form (`/...`), undecodable, a NUL or backslash, an empty segment (`//etc/passwd`), or any
 * segment starting with a dot (`.`, `..`, `.git`, `.env`), checked after percent-decoding.
 */
export function requestedPath(url: string | undefined): string | undefined {
  if (!url?.startsWith("/")) return undefined;
  const rawPath = url.split(/[?#]/, 1)[0];
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return undefined;
  }
  const segments = decoded.slice(1).split("/");
  if (decoded.includes("\0") || decoded.includes("\\")) return undefined;
  if (segments.some((s) => s === "" || s.startsWith("."))) return undefined;
  return segments.join("/");
}

/** Whether `real` (a resolved path) lies under `root` with no dot segment on the way. */
function servable(root: string, real: string): boolean {
  const relative = path.relative(root, real);
  if (relative === "" || path.isAbsolute(relative)) return false;
  return relative.split(path.sep).every((s) => s !== ".." && !s.startsWith("."));
}

/** Starts the mirror; `port` 0 picks a free port. */
export async function startMirror(options: MirrorOptions): Promise<Mirror> {
  const root = await realpath(options.dir);
  const recentLimit = options.recentRequests ?? 1000;
  const log = options.log ?? ((e: MirrorLogEntry) => e.error && console.error(`kok mirror: ${e.method} ${e.path} ${e.status}: ${e.error}`));
  const requests: string[] = [];
  let downloads = 0;

  const finish = (req: IncomingMessage, status: number, error?: string) => {
    const entry: MirrorLogEntry = { method: req.method ?? "?", path: (req.url ?? "").slice(0, LOGGED_PATH_MAX), status, ...(error ? { error } : {}) };
    requests.push(`${entry.method} ${entry.path} ${status}`);
    if (requests.length > recentLimit) requests.splice(0, requests.length - recentLimit);
    try {
      log(entry);
    } catch {
      // A broken log sink must not take the mirror down.
    }
  };
  const respond = (req: IncomingMessage, res: ServerResponse, status: number, message: string, error?: string) => {
    finish(req, status, error);
    res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
    res.end(`${message}\n`);
  };

  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== "GET" && req.method !== "HEAD") return respond(req, res, 405, "only GET and HEAD");
    const relative = requestedPath(req.url);
    if (relative === undefined) return respond(req, res, 404, "not found");
    let real: string;
    try {
      real = await realpath(path.join(root, relative));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return respond(req, res, 404, "not found");
      return respond(req, res, 500, "cannot read the file", (error as Error).message);
    }
    if (!servable(root, real)) return respond(req, res, 404, "not found");
    // Open first and stat the open file: what is sent is what was checked, even if the path is
    // replaced in between, and a file that cannot be opened is a 500 before any header went out.
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(real, "r");
    } catch (error) {
      return respond(req, res, 500, "cannot read the file", (error as Error).message);
    }
    let size: number;
    try {
      const info = await handle.stat();
      if (!info.isFile()) {
        await handle.close();
        return respond(req, res, 404, "not found");
      }
      size = info.size;
    } catch (error) {
      await handle.close().catch(() => undefined);
      return respond(req, res, 500, "cannot read the file", (error as Error).message);
    }
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": size });
    if (req.method === "HEAD") {
      await handle.close();
      finish(req, 200);
      return void res.end();
    }
    // pipeline destroys the file stream (closing the descriptor) however the response ends:
    // complete, failed read, or the client gone.
    const file = handle.createReadStream();
    pipeline(file, res, (error) => {
      // A client that has every byte (Content-Length) hangs up at once, often before the file
      // stream has even seen its end: pipeline calls that a premature close, but every byte of
      // the file went to the response, so it is a download like any other.
      const whole = !error || ((error as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE" && file.bytesRead === size);
      if (whole) downloads++;
      // The request is logged as ended once its descriptor is closed (close() joins the stream's own).
      void handle
        .close()
        .catch(() => undefined)
        .then(() => finish(req, 200, whole ? undefined : `stopped after the headers: ${error?.message}`));
    });
  };

  const server: Server = createServer((req, res) => {
    serve(req, res).catch((error: unknown) => {
      // Nothing above should throw; if it does, answer and log rather than crash the process.
      if (!res.headersSent) respond(req, res, 500, "internal error", (error as Error).message);
      else res.destroy();
    });
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8099, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const close = () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
  const artifacts: MirrorArtifact[] = [];
  try {
    for (const name of await listFiles(root)) {
      const full = path.join(root, name);
      const sha256 = await sha256Of(full);
      const handle = await open(full, "r");
      const size = (await handle.stat()).size;
      await handle.close();
      artifacts.push({ name, url: `${url}/${name.split("/").map(encodeURIComponent).join("/")}`, sha256, size });
    }
  } catch (error) {
    await close();
    throw new Error(`kok mirror: cannot read ${options.dir}: ${(error as Error).message}`);
  }
  return {
    url,
    artifacts,
    requests,
    get downloads() {
      return downloads;
    },
    close,
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

/** The `kok mirror` command: serves until interrupted. Exit codes: 0, or 2 for a bad --addr. */
export async function runMirror(dir: string, flags: { readonly addr: string }): Promise<number> {
  let listen: { host: string; port: number };
  try {
    listen = parseAddr(flags.addr);
  } catch (error) {
    console.error(`kok mirror: ${(error as Error).message}`);
    return 2;
  }
  const mirror = await startMirror({ dir, ...listen });
  console.log(`kok mirror: serving ${path.resolve(dir)} at ${mirror.url} (${mirror.artifacts.length} artifacts)`);
  for (const a of mirror.artifacts) console.log(`${a.url}  sha256:${a.sha256}  ${a.size} bytes`);
  await new Promise<void>((resolve) => {
    const stop = () => void mirror.close().then(resolve);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}
