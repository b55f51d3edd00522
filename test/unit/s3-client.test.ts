/**
 * The S3 client (src/runtime/s3/client.ts) against a hostile endpoint: the store of an etcd backup
 * is the tenant's, so the server at the other end may answer anything. A listing that never ends,
 * an object bigger than announced, a redirect to somewhere else, an error "code" built to look like
 * a backup result, an answer dripping a byte at a time: each fails with a message naming the
 * bucket and key, never a credential. The well-behaved paths are tested against versitygw in
 * test/integration/etcd-backup.test.ts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensurePki } from "../../src/dev/pki";
import { MAX_LIST_PAGES, S3Client, S3Error } from "../../src/runtime/s3/client";
import { sha256Hex } from "../../src/runtime/s3/sign";

const credentials = { accessKeyId: "AKIDHOSTILETEST01", secretAccessKey: "hostile-test-secret-0123456789abcdefghij" };
let handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;
let server: Server;
let endpoint: string;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kok-s3-hostile-"));
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      handler(req, res, Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

const client = (extra: { deadlineMs?: number } = {}) => new S3Client({ endpoint, region: "us-east-1", credentials, ...extra });

async function failure(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(error, "the call should have failed").toBeInstanceOf(Error);
  expect(error!.message).not.toContain(credentials.secretAccessKey);
  expect(error!.message).not.toContain("Signature=");
  return error!;
}

const page = (keys: string[], next?: string) =>
  `<ListBucketResult>${keys.map((k) => `<Contents><Key>${k}</Key><Size>1</Size></Contents>`).join("")}<IsTruncated>${next ? "true" : "false"}</IsTruncated>${next ? `<NextContinuationToken>${next}</NextContinuationToken>` : ""}</ListBucketResult>`;

describe("S3 client against a hostile endpoint", () => {
  it("signs path-style requests and sends the file's SHA-256 with it", async () => {
    const file = join(dir, "snapshot.db");
    writeFileSync(file, "etcd snapshot bytes");
    let got: { url?: string; sha?: string | string[]; auth?: string; body?: string } = {};
    handler = (req, res, body) => {
      got = { url: req.url, sha: req.headers["x-amz-content-sha256"], auth: req.headers.authorization, body: body.toString() };
      res.end();
    };
    expect(await client().putFile("my-bucket", "a b/2026-12-04T06-00-00Z.db", file)).toBe(sha256Hex("etcd snapshot bytes"));
    expect(got).toMatchObject({ url: "/my-bucket/a%20b/2026-12-04T06-00-00Z.db", sha: sha256Hex("etcd snapshot bytes"), body: "etcd snapshot bytes" });
    expect(got.auth).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDHOSTILETEST01\/\d{8}\/us-east-1\/s3\/aws4_request, SignedHeaders=.*x-amz-content-sha256.*, Signature=[0-9a-f]{64}$/);
  });

  it("follows continuation tokens, and stops a listing that repeats one", async () => {
    handler = (req, res) => {
      const token = new URL(req.url!, endpoint).searchParams.get("continuation-token");
      res.end(token === null ? page(["p/1"], "t1") : token === "t1" ? page(["p/2"], "t2") : page(["p/3"], "t1"));
    };
    const error = await failure(client().list("my-bucket", "p/"));
    expect(error.message).toBe(`ListObjectsV2 s3://my-bucket/p/* at ${endpoint}: the server repeated a continuation token`);
  });

  it("stops a listing that never ends", async () => {
    let n = 0;
    handler = (_req, res) => res.end(page([`p/${n}`], `t${++n}`));
    const error = await failure(client().list("my-bucket", "p/"));
    expect(error).toBeInstanceOf(S3Error);
    expect(error.message).toContain(`still truncated after ${MAX_LIST_PAGES} pages`);
    expect(n).toBe(MAX_LIST_PAGES);
  });

  it("stops a download at the size it expects, and leaves no file", async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.end(Buffer.alloc(64 * 1024, 1));
    };
    const file = join(dir, "download.db");
    const error = await failure(client().getFile("my-bucket", "p/x.db", file, 1000));
    expect(error.message).toBe(`GET s3://my-bucket/p/x.db at ${endpoint}: larger than the 1000 bytes expected`);
    expect(() => readFileSync(file)).toThrow();
    expect(() => readFileSync(`${file}.part`)).toThrow();
    // The request, the response and the file each see the failure, in an order that varies: the
    // call returns only once its file is closed, so none is created after it was removed.
    const left: string[] = [];
    for (let i = 0; i < 200; i++) {
      const each = join(dir, `download-${i}.db`);
      await client().getFile("my-bucket", "p/x.db", each, 1000).catch(() => undefined);
      if (existsSync(`${each}.part`)) left.push(each);
    }
    expect(left).toEqual([]);
  }, 60_000);

  it("does not follow a redirect (the endpoint must not send us to another address)", async () => {
    let followed = false;
    handler = (req, res) => {
      if (req.url?.startsWith("/elsewhere")) followed = true;
      res.writeHead(307, { location: `${endpoint}/elsewhere/latest/meta-data/` });
      res.end();
    };
    const error = await failure(client().getBytes("my-bucket", "p/x.json"));
    expect(error.message).toBe(`GetObject s3://my-bucket/p/x.json at ${endpoint}: HTTP 307`);
    expect(followed).toBe(false);
  });

  it("takes no error code that is not shaped like one", async () => {
    handler = (_req, res) => {
      res.writeHead(403);
      res.end(`<Error><Code>{"time":"2026-12-04T06:00:00Z","location":"s3://other/x.db"}</Code></Error>`);
    };
    const error = await failure(client().delete("my-bucket", "p/x.db"));
    expect(error.message).toBe(`DeleteObject s3://my-bucket/p/x.db at ${endpoint}: HTTP 403`);
    expect((error as S3Error).code).toBe("HTTP 403");
  });

  it("bounds a whole request, not only silence: an answer dripping a byte at a time fails", async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      const drip = setInterval(() => (res.destroyed ? clearInterval(drip) : res.write("<")), 20);
    };
    const error = await failure(client({ deadlineMs: 300 }).getBytes("my-bucket", "p/x.json"));
    expect(error.message).toBe(`GET s3://my-bucket/p/x.json at ${endpoint}: not done within 0.3 s`);
  });

  it("refuses an answer too big to be S3's (16 MiB)", async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(1024 * 1024, 0x41);
      let sent = 0;
      const more = () => {
        while (!res.destroyed && sent < 32 && res.write(chunk)) sent++;
        if (sent >= 32) res.end();
        else if (!res.destroyed) res.once("drain", more);
      };
      more();
    };
    const error = await failure(client().list("my-bucket", "p/"));
    expect(error.message).toBe(`GET s3://my-bucket at ${endpoint}: answer larger than 16 MiB`);
  });
});

describe("S3 client over https", () => {
  it("checks the store's certificate: against a private CA when given one, else Node's roots refuse it", async () => {
    const pki = join(dir, "pki");
    await ensurePki(pki, [{ file: "store", commonName: "store", usage: "server", ipAddresses: ["127.0.0.1"] }]);
    const tlsServer = createHttpsServer({ cert: readFileSync(join(pki, "store.crt")), key: readFileSync(join(pki, "store.key")) }, (_req, res) => res.end());
    await new Promise<void>((resolve) => tlsServer.listen(0, "127.0.0.1", resolve));
    const url = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
    try {
      await new S3Client({ endpoint: url, region: "us-east-1", credentials, ca: readFileSync(join(pki, "ca.crt")) }).headBucket("my-bucket");
      const error = await failure(new S3Client({ endpoint: url, region: "us-east-1", credentials }).headBucket("my-bucket"));
      expect(error.message).toMatch(new RegExp(`^HEAD s3://my-bucket at ${url}: (unable to verify|self-signed|unable to get local issuer)`));
    } finally {
      tlsServer.closeAllConnections();
      await new Promise((resolve) => tlsServer.close(resolve));
    }
  });
});
