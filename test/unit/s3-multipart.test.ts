/**
 * Multipart uploads (src/runtime/s3/multipart.ts): the plan and the XML as pure functions, then
 * the client against an endpoint that behaves badly at each step of an upload — a part refused
 * with a 500 (sent again), one refused with a 403 (upload aborted), a CompleteMultipartUpload that
 * answers 200 with an error inside, an upload id or an ETag that is not one. Every failure aborts
 * the upload and says so; no message carries a credential. The well-behaved path runs against
 * versitygw in test/integration/etcd-backup.test.ts.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3Client } from "../../src/runtime/s3/client";
import { MAX_PARTS, MIN_PART_BYTES, PART_ATTEMPTS, checkEtag, completeUploadError, completeUploadXml, hashParts, parseUploadId, planParts } from "../../src/runtime/s3/multipart";

const MIB = 1024 * 1024;
const credentials = { accessKeyId: "AKIDMULTIPARTTEST1", secretAccessKey: "multipart-test-secret-0123456789abcdefghij" };
let handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;
let server: Server;
let endpoint: string;
let dir: string;
let file: string;
let content: Buffer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kok-s3-multipart-"));
  file = join(dir, "snapshot.db");
  // 12 MiB + 3 bytes of varied bytes: three parts of 5, 5 and 2 MiB + 3.
  content = Buffer.alloc(12 * MIB + 3);
  for (let i = 0; i < content.length; i++) content[i] = (i * 131 + (i >> 12)) & 0xff;
  writeFileSync(file, content);
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handler(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

const client = () => new S3Client({ endpoint, region: "us-east-1", credentials, multipartThresholdBytes: 6 * MIB, partBytes: MIN_PART_BYTES });
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

interface Seen {
  method: string;
  query: URLSearchParams;
  sha?: string;
  length: number;
}

/** A store that keeps parts and assembles them; `misbehave` may answer a request instead. */
function store(misbehave: (seen: Seen, res: ServerResponse) => boolean = () => false) {
  const seen: Seen[] = [];
  const parts = new Map<number, Buffer>();
  let assembled: Buffer | undefined;
  handler = (req, res, body) => {
    const query = new URL(req.url!, endpoint).searchParams;
    const entry = { method: req.method!, query, sha: req.headers["x-amz-content-sha256"] as string | undefined, length: body.length };
    seen.push(entry);
    if (misbehave(entry, res)) return;
    if (req.method === "POST" && query.has("uploads")) return res.end("<InitiateMultipartUploadResult><UploadId>up+1/abc=</UploadId></InitiateMultipartUploadResult>");
    if (req.method === "PUT" && query.has("partNumber")) {
      expect(query.get("uploadId")).toBe("up+1/abc=");
      expect(entry.sha).toBe(sha(body));
      parts.set(Number(query.get("partNumber")), body);
      res.writeHead(200, { etag: `"${sha(body).slice(0, 32)}"` });
      return res.end();
    }
    if (req.method === "POST" && query.has("uploadId")) {
      const numbers = [...body.toString().matchAll(/<PartNumber>(\d+)<\/PartNumber>/g)].map((m) => Number(m[1]));
      assembled = Buffer.concat(numbers.map((n) => parts.get(n)!));
      return res.end("<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>");
    }
    if (req.method === "DELETE" && query.has("uploadId")) {
      res.writeHead(204);
      return res.end();
    }
    res.writeHead(400);
    res.end();
  };
  return { seen, assembled: () => assembled, aborted: () => seen.some((s) => s.method === "DELETE") };
}

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

describe("multipart plan and XML", () => {
  it("plans parts that cover the file exactly, growing them to stay within 10,000", () => {
    expect(planParts(12 * MIB + 3, MIN_PART_BYTES).map((p) => [p.number, p.start, p.end])).toEqual([
      [1, 0, 5 * MIB - 1],
      [2, 5 * MIB, 10 * MIB - 1],
      [3, 10 * MIB, 12 * MIB + 2],
    ]);
    const huge = planParts(8 * 1024 * MIB * 8, MIN_PART_BYTES);
    expect(huge.length).toBeLessThanOrEqual(MAX_PARTS);
    expect(huge.at(-1)!.end).toBe(8 * 1024 * MIB * 8 - 1);
    expect(() => planParts(0)).toThrow("not a positive byte count");
    expect(() => planParts(10, MIB)).toThrow("below S3's 5 MiB minimum");
  });

  it("hashes the whole file and each part in one read", async () => {
    const parts = planParts(content.length, MIN_PART_BYTES);
    const hashes = await hashParts(file, parts);
    expect(hashes.whole).toBe(sha(content));
    expect(hashes.parts).toEqual(parts.map((p) => sha(content.subarray(p.start, p.end + 1))));
  });

  it("takes only upload ids and ETags a server could mean, and escapes what goes into the XML", () => {
    expect(parseUploadId("<X><UploadId>abc.DEF-1~</UploadId></X>")).toBe("abc.DEF-1~");
    expect(() => parseUploadId("<X><UploadId></UploadId></X>")).toThrow("no usable UploadId");
    expect(() => parseUploadId(`<X><UploadId>${"a".repeat(2000)}</UploadId></X>`)).toThrow("no usable UploadId");
    expect(() => checkEtag('"a"><Part>', 2)).toThrow("UploadPart 2: the answer carries no usable ETag");
    expect(completeUploadXml([{ number: 1, etag: '"abc"' }])).toContain("<ETag>&quot;abc&quot;</ETag>");
    expect(completeUploadError("<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>")).toBeUndefined();
    expect(completeUploadError("<Error><Code>InternalError</Code></Error>")).toBe("InternalError");
  });
});

describe("multipart upload against a misbehaving endpoint", () => {
  it("uploads a file over the threshold in parts, each signed with its own SHA-256, and returns the whole file's", async () => {
    const s = store();
    expect(await client().putFile("b", "p/snap.db", file)).toBe(sha(content));
    expect(s.assembled()?.equals(content)).toBe(true);
    expect(s.seen.filter((x) => x.query.has("partNumber")).map((x) => x.length)).toEqual([5 * MIB, 5 * MIB, 2 * MIB + 3]);
    expect(s.aborted()).toBe(false);
  });

  it("sends a part again after a 500, and gives up after its attempts, aborting the upload", async () => {
    let failures = 1;
    const s = store((seen, res) => {
      if (seen.query.get("partNumber") !== "2" || failures-- <= 0) return false;
      res.writeHead(500);
      res.end("<Error><Code>InternalError</Code></Error>");
      return true;
    });
    expect(await client().putFile("b", "p/snap.db", file)).toBe(sha(content));
    expect(s.assembled()?.equals(content)).toBe(true);
    expect(s.seen.filter((x) => x.query.get("partNumber") === "2")).toHaveLength(2);

    failures = PART_ATTEMPTS;
    const again = store((seen, res) => {
      if (seen.query.get("partNumber") !== "2" || failures-- <= 0) return false;
      res.writeHead(503);
      res.end("<Error><Code>SlowDown</Code></Error>");
      return true;
    });
    const error = await failure(client().putFile("b", "p/snap.db", file));
    expect(error.message).toBe(`multipart upload of s3://b/p/snap.db (3 parts): UploadPart 2 s3://b/p/snap.db at ${endpoint}: SlowDown (HTTP 503); the upload was aborted`);
    expect(again.seen.filter((x) => x.query.get("partNumber") === "2")).toHaveLength(PART_ATTEMPTS);
    expect(again.aborted()).toBe(true);
  });

  it("aborts at once on a refusal a resend cannot cure, and says when the abort fails too", async () => {
    const s = store((seen, res) => {
      if (seen.query.get("partNumber") === "1" || seen.method === "DELETE") {
        res.writeHead(403);
        res.end("<Error><Code>AccessDenied</Code></Error>");
        return true;
      }
      return false;
    });
    const error = await failure(client().putFile("b", "p/snap.db", file));
    expect(error.message).toMatch(/^multipart upload of s3:\/\/b\/p\/snap.db \(3 parts\): UploadPart 1 .*: AccessDenied \(HTTP 403\); aborting the upload failed too \(AbortMultipartUpload .*AccessDenied \(HTTP 403\)\): its parts stay until/);
    expect(s.seen.filter((x) => x.query.has("partNumber"))).toHaveLength(1);
  });

  it("fails on a CompleteMultipartUpload that answers 200 with an error inside, and on an ETag that is not one", async () => {
    const s = store((seen, res) => {
      if (seen.method === "POST" && seen.query.has("uploadId")) {
        res.end("<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>");
        return true;
      }
      return false;
    });
    const error = await failure(client().putFile("b", "p/snap.db", file));
    expect(error.message).toContain(`CompleteMultipartUpload s3://b/p/snap.db at ${endpoint}: InternalError; the upload was aborted`);
    expect(s.aborted()).toBe(true);

    const t = store((seen, res) => {
      if (!seen.query.has("partNumber")) return false;
      res.writeHead(200, { etag: '"x"/><Part><PartNumber>9' });
      res.end();
      return true;
    });
    expect((await failure(client().putFile("b", "p/snap.db", file))).message).toContain("UploadPart 1: the answer carries no usable ETag; the upload was aborted");
    expect(t.aborted()).toBe(true);
  });

  it("refuses an upload id that is not one, before sending any part", async () => {
    const s = store((seen, res) => {
      if (seen.method !== "POST" || !seen.query.has("uploads")) return false;
      res.end("<InitiateMultipartUploadResult><UploadId>id with spaces &amp; quotes</UploadId></InitiateMultipartUploadResult>");
      return true;
    });
    const error = await failure(client().putFile("b", "p/snap.db", file));
    expect(error.message).toBe("the answer to CreateMultipartUpload holds no usable UploadId");
    expect(s.seen.filter((x) => x.query.has("partNumber"))).toHaveLength(0);
  });
});
