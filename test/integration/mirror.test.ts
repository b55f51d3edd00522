import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAddr, runMirror, startMirror, type Mirror } from "../../src/cli/mirror";

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

  it("parses --addr and rejects bad arguments", async () => {
    expect(parseAddr("127.0.0.1:8099")).toEqual({ host: "127.0.0.1", port: 8099 });
    expect(parseAddr("[::1]:80")).toEqual({ host: "::1", port: 80 });
    expect(() => parseAddr("8099")).toThrow(/must be host:port/);
    await expect(runMirror([])).rejects.toThrow(/directory to serve is missing/);
    await expect(runMirror([dir, "--bogus"])).rejects.toThrow(/unexpected argument "--bogus"/);
  });
});
