import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAddr, requestedPath, runMirror, startMirror, type Mirror, type MirrorLogEntry } from "../../src/cli/mirror";
import { runKok } from "../../src/cli/program";

let dir: string;
let mirror: Mirror;
const body = Buffer.from("#!/bin/sh\necho kubelet\n");

function fetchRaw(url: string, method = "GET", rawPath?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: rawPath ?? u.pathname, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.once("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "kok-mirror-test-"));
  mkdirSync(path.join(dir, "cni"));
  writeFileSync(path.join(dir, "kubelet-v1.36.3-linux-amd64"), body);
  writeFileSync(path.join(dir, "cni", "cni plugins.tgz"), "tgz");
  symlinkSync("/etc/hostname", path.join(dir, "escape"));
  // What sits beside artifacts and must never be served: dotfiles and dot-directories.
  writeFileSync(path.join(dir, ".env"), "AWS_SECRET_ACCESS_KEY=x");
  mkdirSync(path.join(dir, ".git"));
  writeFileSync(path.join(dir, ".git", "config"), "[remote]");
  writeFileSync(path.join(dir, "cni", ".hidden"), "x");
  symlinkSync(".env", path.join(dir, "env-link"));
  mirror = await startMirror({ dir, host: "127.0.0.1", port: 0 });
});
afterAll(async () => {
  await mirror?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("kok mirror", () => {
  it("lists every artifact with its URL and sha256", () => {
    expect(mirror.artifacts.map((a) => a.name)).toEqual(["cni/cni plugins.tgz", "kubelet-v1.36.3-linux-amd64"]);
    const kubelet = mirror.artifacts[1];
    expect(kubelet.sha256).toBe(createHash("sha256").update(body).digest("hex"));
    expect(kubelet.url).toBe(`${mirror.url}/kubelet-v1.36.3-linux-amd64`);
    expect(mirror.artifacts[0].url).toBe(`${mirror.url}/cni/cni%20plugins.tgz`);
  });

  it("serves the bytes with Content-Length, and HEAD without a body", async () => {
    const got = await fetchRaw(mirror.artifacts[1].url);
    expect(got.status).toBe(200);
    expect(got.body.equals(body)).toBe(true);
    expect(got.headers["content-length"]).toBe(String(body.length));
    const head = await fetchRaw(mirror.artifacts[1].url, "HEAD");
    expect(head.headers["content-length"]).toBe(String(body.length));
    expect(head.body.length).toBe(0);
    expect((await fetchRaw(mirror.artifacts[0].url)).body.toString()).toBe("tgz");
  });

  it("serves nothing outside the directory and refuses other methods", async () => {
    expect((await fetchRaw(mirror.url, "GET", "/../../etc/passwd")).status).toBe(404);
    expect((await fetchRaw(mirror.url, "GET", "/escape")).status).toBe(404);
    expect((await fetchRaw(mirror.url, "GET", "/missing")).status).toBe(404);
    expect((await fetchRaw(mirror.url, "GET", "/cni")).status).toBe(404);
    expect((await fetchRaw(mirror.artifacts[1].url, "PUT")).status).toBe(405);
  });

  it("never serves or lists dotfiles, dot-directories or a symlink to one", async () => {
    expect(mirror.artifacts.map((a) => a.name).filter((n) => n.split("/").some((s) => s.startsWith(".")))).toEqual([]);
    for (const p of ["/.env", "/.git/config", "/.git/", "/cni/.hidden", "/%2eenv", "/%2Egit/config", "/env-link"]) {
      expect([p, (await fetchRaw(mirror.url, "GET", p)).status]).toEqual([p, 404]);
    }
  });

  it("refuses traversal however it is spelled: .., encoded, absolute, backslash, NUL", async () => {
    const attempts = [
      "/../../etc/passwd",
      "/cni/../../etc/passwd",
      "/%2e%2e/%2e%2e/etc/passwd",
      "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
      "/cni/%2e%2e/kubelet-v1.36.3-linux-amd64",
      "//etc/passwd",
      "/..%5c..%5cetc%5cpasswd",
      "/kubelet-v1.36.3-linux-amd64%00.txt",
      "http://mirror/../etc/passwd",
      "/%zz",
    ];
    for (const p of attempts) expect([p, (await fetchRaw(mirror.url, "GET", p)).status]).toEqual([p, 404]);
    expect(requestedPath("/cni/cni%20plugins.tgz")).toBe("cni/cni plugins.tgz");
    expect(requestedPath("/a/./b")).toBeUndefined();
  });

  it("keeps a bounded request log however many requests it answers, and counts downloads", async () => {
    // A download is logged once its file is closed, which may come after the client has the body.
    let logged = 0;
    let allLogged: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (allLogged = resolve));
    const small = await startMirror({ dir, host: "127.0.0.1", port: 0, recentRequests: 20, log: () => ++logged === 65 && allLogged() });
    try {
      for (let i = 0; i < 60; i++) expect((await fetchRaw(small.artifacts[1].url)).status).toBe(200);
      for (let i = 0; i < 5; i++) await fetchRaw(small.url, "GET", `/missing-${i}`);
      await done;
      expect(small.requests.length).toBe(20);
      expect(small.requests).toContain("GET /missing-4 404");
      expect(small.downloads).toBe(60);
    } finally {
      await small.close();
    }
  });

  it("closes the file of every download the client abandons", { timeout: 60_000 }, async () => {
    const bigDir = mkdtempSync(path.join(tmpdir(), "kok-mirror-big-"));
    const big = path.join(bigDir, "big.bin");
    writeFileSync(big, Buffer.alloc(32 * 1024 * 1024, 7));
    const ended: MirrorLogEntry[] = [];
    let allEnded: () => void = () => undefined;
    const aborted = 8;
    const done = new Promise<void>((resolve) => (allEnded = resolve));
    const m = await startMirror({ dir: bigDir, host: "127.0.0.1", port: 0, log: (e) => ended.push(e) === aborted && allEnded() });
    try {
      for (let i = 0; i < aborted; i++) {
        await new Promise<void>((resolve, reject) => {
          const req = request(`${m.url}/big.bin`, (res) => res.once("data", () => (req.destroy(), resolve())));
          req.once("error", (e) => ((e as NodeJS.ErrnoException).code === "ECONNRESET" ? resolve() : reject(e)));
          req.end();
        });
      }
      await done;
      expect(ended.map((e) => e.error)).toEqual(Array.from({ length: aborted }, () => expect.stringMatching(/stopped after the headers/)));
      const open = readdirSync("/proc/self/fd").filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === big;
        } catch {
          return false;
        }
      });
      expect(open).toEqual([]);
      expect(m.downloads).toBe(0);
    } finally {
      await m.close();
      rmSync(bigDir, { recursive: true, force: true });
    }
  });

  it("answers 500 for a file it cannot read, logs it, and keeps serving (the `kok mirror` process)", { timeout: 120_000 }, async () => {
    // Unreadable for real: tests run as root, who reads everything, so the mirror runs as nobody.
    const served = mkdtempSync(path.join(tmpdir(), "kok-mirror-eacces-"));
    chmodSync(served, 0o755);
    writeFileSync(path.join(served, "locked.tgz"), "locked");
    writeFileSync(path.join(served, "open.tgz"), "open");
    const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const repo = path.join(__dirname, "..", "..");
    let child: ChildProcess | undefined;
    try {
      child = spawn(path.join(repo, "node_modules", ".bin", "tsx"), [path.join(repo, "src", "cli", "main.ts"), "mirror", served, "--addr", "127.0.0.1:0"], {
        ...asNobody,
        env: { ...process.env, HOME: served },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        child!.stdout!.on("data", (c: Buffer) => {
          out += c.toString();
          const match = / at (http:\/\/127\.0\.0\.1:\d+) /.exec(out);
          if (match) resolve(match[1]);
        });
        child!.once("exit", (code) => reject(new Error(`kok mirror exited with ${code}: ${stderr}`)));
      });
      // After start: at start an unreadable file is an error naming it, which is right too.
      chmodSync(path.join(served, "locked.tgz"), 0o000);
      const locked = await fetchRaw(`${url}/locked.tgz`);
      expect([locked.status, locked.body.toString()]).toEqual([500, "cannot read the file\n"]);
      const open = await fetchRaw(`${url}/open.tgz`);
      expect([open.status, open.body.toString()]).toEqual([200, "open"]);
      expect(child.exitCode).toBeNull();
      expect(stderr).toMatch(/kok mirror: GET \/locked\.tgz 500: EACCES/);
    } finally {
      if (child && child.exitCode === null) {
        const exited = new Promise((resolve) => child!.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(served, { recursive: true, force: true });
    }
  });

  it("parses --addr and rejects bad arguments", async () => {
    expect(parseAddr("127.0.0.1:8099")).toEqual({ host: "127.0.0.1", port: 8099 });
    expect(parseAddr("[::1]:80")).toEqual({ host: "::1", port: 80 });
    expect(() => parseAddr("8099")).toThrow(/must be host:port/);
    const said: string[] = [];
    const output = { writeOut: (t: string) => void said.push(t), writeErr: (t: string) => void said.push(t) };
    expect(await runKok(["mirror"], output)).toBe(2);
    expect(said.join("")).toContain("missing required argument 'dir'");
    expect(await runKok(["mirror", dir, "--bogus"], output)).toBe(2);
    expect(said.join("")).toContain("unknown option '--bogus'");
    expect(await runMirror(dir, { addr: "8099" })).toBe(2);
  });
});
