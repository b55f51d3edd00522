/**
 * A small S3 client for the etcd backups (`kok etcd backup`/`restore`): PUT from a file, GET to a
 * file, ListObjectsV2 by prefix, DELETE, HEAD of a bucket. Path-style addressing against one
 * endpoint and region (what MinIO, versitygw, Ceph RGW and AWS all take), signed with our own
 * SigV4 (sign.ts), node:http/https only.
 *
 * Bodies are streamed: a snapshot can be gigabytes, and the backup Pod's memory is small. S3 wants
 * the payload's SHA-256 in `x-amz-content-sha256` before the body, so a PUT reads the file twice
 * (hash, then send); a signed hash also lets the server refuse a body altered on the way. Files
 * over `multipartThresholdBytes` go up in parts (multipart.ts): one PUT stops at 5 GiB.
 *
 * Every error names the operation, the bucket and key and S3's error code; never a credential
 * (the signature header is not echoed, and messages carry no header).
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_BYTES, checkEtag, completeUploadError, completeUploadXml, parseUploadId, uploadInParts, type PartPlan } from "./multipart";
import { EMPTY_SHA256, sha256Hex, signV4, uriEncode, type SigV4Credentials } from "./sign";

export interface S3Credentials extends SigV4Credentials {
  /** Temporary credentials' session token (AWS_SESSION_TOKEN), sent as `x-amz-security-token`. */
  readonly sessionToken?: string;
}

export interface S3ClientOptions {
  /** `https://host[:port]` or `http://host[:port]`, no path. */
  readonly endpoint: string;
  readonly region: string;
  readonly credentials: S3Credentials;
  /** PEM CA certificates an https endpoint is checked against instead of Node's built-in roots (a private store's CA). */
  readonly ca?: Buffer;
  /** Per request without progress (connect, or no byte for this long); default 60 s. */
  readonly timeoutMs?: number;
  /** Longest whole request, body included; default 30 min (a snapshot of etcd's 8 GiB limit at ~5 MB/s). */
  readonly deadlineMs?: number;
  /** Files larger than this are uploaded in parts; default 256 MiB, at most 5 GiB (S3's single-PUT limit). */
  readonly multipartThresholdBytes?: number;
  /** Size of each part; default 64 MiB, at least 5 MiB (S3's minimum). */
  readonly partBytes?: number;
  readonly now?: () => Date;
}

export interface S3Object {
  readonly key: string;
  readonly size: number;
  readonly lastModified: string;
}

/** A refused or failed S3 call: `code` is S3's error code (`NoSuchBucket`) or `HTTP <status>`. */
export class S3Error extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "S3Error";
  }
}

interface Answer {
  readonly status: number;
  readonly body: Buffer;
  readonly etag?: string;
}

/** S3's 5 GiB limit on one PUT. */
const MAX_SINGLE_PUT = 5 * 1024 * 1024 * 1024;

/** Marks an error as one a resend may cure: the network, a 5xx, a throttle. */
const retryable = <E extends Error>(error: E): E => Object.assign(error, { retryable: true });

/** `s3://bucket/key/with/slashes` → its parts; undefined for anything else. */
export function parseS3Url(url: string): { bucket: string; key: string } | undefined {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  return m ? { bucket: m[1], key: m[2] } : undefined;
}

/**
 * S3's error code from an XML error body; `HTTP <status>` when it has none (HEAD answers carry no
 * body) or when it is not shaped like one: the endpoint is the tenant's, and what it answers ends
 * up in a message the operator shows.
 */
export function s3ErrorCodeOf(status: number, body: Buffer): string {
  return /<Code>([A-Za-z0-9._-]{1,64})<\/Code>/.exec(body.toString("utf8"))?.[1] ?? `HTTP ${status}`;
}

/** `NoSuchKey (HTTP 404)`, or only `HTTP 404` when that is all there is. */
const withStatus = (code: string, status: number) => (code.startsWith("HTTP ") ? code : `${code} (HTTP ${status})`);

/** Pages of a listing followed at most (1,000 keys each: a million objects); a server that never ends its listing is cut off. */
export const MAX_LIST_PAGES = 1000;

const XML_ENTITIES: Readonly<Record<string, string>> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function xmlText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e.startsWith("#x") ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith("#") ? String.fromCodePoint(parseInt(e.slice(1), 10)) : XML_ENTITIES[e],
  );
}

function tag(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m ? xmlText(m[1]) : undefined;
}

/** One page of a ListObjectsV2 answer. */
export function parseListPage(xml: string): { objects: S3Object[]; next?: string } {
  const objects = [...xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)].map((m) => ({
    key: tag(m[1], "Key") ?? "",
    size: Number(tag(m[1], "Size") ?? "0"),
    lastModified: tag(m[1], "LastModified") ?? "",
  }));
  const truncated = tag(xml, "IsTruncated") === "true";
  return { objects, next: truncated ? tag(xml, "NextContinuationToken") : undefined };
}

export class S3Client {
  private readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly deadlineMs: number;
  private readonly now: () => Date;
  private readonly multipartThreshold: number;
  private readonly partBytes: number;

  constructor(private readonly options: S3ClientOptions) {
    const url = new URL(options.endpoint);
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error(`S3 endpoint ${options.endpoint}: want http:// or https://`);
    this.endpoint = `${url.protocol}//${url.host}`;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.deadlineMs = options.deadlineMs ?? 30 * 60_000;
    this.now = options.now ?? (() => new Date());
    this.multipartThreshold = Math.min(options.multipartThresholdBytes ?? DEFAULT_MULTIPART_THRESHOLD, MAX_SINGLE_PUT);
    this.partBytes = options.partBytes ?? DEFAULT_PART_BYTES;
  }

  /** Uploads a file; returns its SHA-256 (hex), which the server checked against the signed header. */
  async putFile(bucket: string, key: string, file: string, contentType = "application/octet-stream"): Promise<string> {
    const fileSize = statSync(file).size;
    if (fileSize > this.multipartThreshold) return this.putInParts(bucket, key, file, fileSize, contentType);
    const hash = createHash("sha256");
    await pipeline(createReadStream(file), hash);
    const digest = hash.digest("hex");
    const size = statSync(file).size;
    const answer = await this.send("PUT", bucket, key, {}, { "content-type": contentType, "content-length": String(size) }, digest, () => createReadStream(file));
    this.expect(answer, [200], "PutObject", bucket, key);
    return digest;
  }

  private putInParts(bucket: string, key: string, file: string, size: number, contentType: string): Promise<string> {
    const uploadQuery = (uploadId: string) => ({ uploadId });
    return uploadInParts(
      {
        initiate: async () => {
          const answer = await this.send("POST", bucket, key, { uploads: "" }, { "content-type": contentType }, EMPTY_SHA256);
          this.expect(answer, [200], "CreateMultipartUpload", bucket, key);
          return parseUploadId(answer.body.toString("utf8"));
        },
        uploadPart: async (uploadId: string, part: PartPlan, sha256: string) => {
          const query = { partNumber: String(part.number), uploadId };
          const length = String(part.end - part.start + 1);
          const answer = await this.send("PUT", bucket, key, query, { "content-length": length }, sha256, () => createReadStream(file, { start: part.start, end: part.end }));
          try {
            this.expect(answer, [200], `UploadPart ${part.number}`, bucket, key);
          } catch (error) {
            throw answer.status >= 500 || answer.status === 429 ? retryable(error as Error) : error;
          }
          return checkEtag(answer.etag, part.number);
        },
        complete: async (uploadId: string, parts: readonly { number: number; etag: string }[]) => {
          const xml = Buffer.from(completeUploadXml(parts));
          const answer = await this.send("POST", bucket, key, uploadQuery(uploadId), { "content-type": "application/xml", "content-length": String(xml.length) }, sha256Hex(xml), () => xml);
          this.expect(answer, [200], "CompleteMultipartUpload", bucket, key);
          const refused = completeUploadError(answer.body.toString("utf8"));
          if (refused) throw new S3Error(`CompleteMultipartUpload s3://${bucket}/${key} at ${this.endpoint}: ${refused}`, refused, 200);
        },
        abort: async (uploadId: string) => {
          const answer = await this.send("DELETE", bucket, key, uploadQuery(uploadId), {}, EMPTY_SHA256);
          this.expect(answer, [200, 204], "AbortMultipartUpload", bucket, key);
        },
      },
      file,
      size,
      this.partBytes,
      `s3://${bucket}/${key}`,
    );
  }

  async putBytes(bucket: string, key: string, body: Buffer, contentType: string): Promise<void> {
    const answer = await this.send("PUT", bucket, key, {}, { "content-type": contentType, "content-length": String(body.length) }, sha256Hex(body), () => body);
    this.expect(answer, [200], "PutObject", bucket, key);
  }

  /**
   * Downloads an object into `file` (through `<file>.part`, renamed when complete); returns its
   * size. `maxBytes` stops a download that grows past it (a restore knows the size to expect, and
   * the volume it writes to is the etcd member's).
   */
  async getFile(bucket: string, key: string, file: string, maxBytes = Number.MAX_SAFE_INTEGER): Promise<number> {
    const part = `${file}.part`;
    try {
      await this.send("GET", bucket, key, {}, {}, EMPTY_SHA256, undefined, { file: part, maxBytes });
      renameSync(part, file);
      return statSync(file).size;
    } finally {
      rmSync(part, { force: true });
    }
  }

  async getBytes(bucket: string, key: string): Promise<Buffer> {
    const answer = await this.send("GET", bucket, key, {}, {}, EMPTY_SHA256);
    this.expect(answer, [200], "GetObject", bucket, key);
    return answer.body;
  }

  /** Every object under `prefix`, following continuation tokens (`pageSize`: S3's max-keys, 1000 when not given). */
  async list(bucket: string, prefix: string, pageSize?: number): Promise<S3Object[]> {
    const objects: S3Object[] = [];
    const seen = new Set<string>();
    let token: string | undefined;
    for (let pages = 0; ; pages++) {
      if (pages === MAX_LIST_PAGES) throw new S3Error(`ListObjectsV2 s3://${bucket}/${prefix}* at ${this.endpoint}: still truncated after ${MAX_LIST_PAGES} pages`, "TooManyPages", 200);
      const query: Record<string, string> = { "list-type": "2", prefix };
      if (pageSize) query["max-keys"] = String(pageSize);
      if (token) query["continuation-token"] = token;
      const answer = await this.send("GET", bucket, "", query, {}, EMPTY_SHA256);
      this.expect(answer, [200], "ListObjectsV2", bucket, `${prefix}*`);
      const page = parseListPage(answer.body.toString("utf8"));
      objects.push(...page.objects);
      if (!page.next) return objects;
      // A token seen before would list the same pages forever.
      if (seen.has(page.next)) throw new S3Error(`ListObjectsV2 s3://${bucket}/${prefix}* at ${this.endpoint}: the server repeated a continuation token`, "BadContinuation", 200);
      seen.add(page.next);
      token = page.next;
    }
  }

  async delete(bucket: string, key: string): Promise<void> {
    const answer = await this.send("DELETE", bucket, key, {}, {}, EMPTY_SHA256);
    this.expect(answer, [200, 204], "DeleteObject", bucket, key);
  }

  /** HeadObject: whether `key` exists (a 404 is "no"; any other refusal throws). */
  async exists(bucket: string, key: string): Promise<boolean> {
    const answer = await this.send("HEAD", bucket, key, {}, {}, EMPTY_SHA256);
    if (answer.status === 404) return false;
    this.expect(answer, [200], "HeadObject", bucket, key);
    return true;
  }

  /** HeadBucket: fails with the code (`NoSuchBucket`, `HTTP 403`) when the bucket is missing or refused. */
  async headBucket(bucket: string): Promise<void> {
    const answer = await this.send("HEAD", bucket, "", {}, {}, EMPTY_SHA256);
    // HEAD has no body: name the usual meaning of the status.
    if (answer.status === 404) throw new S3Error(`HeadBucket ${bucket}: NoSuchBucket (the bucket does not exist)`, "NoSuchBucket", 404);
    if (answer.status === 403) throw new S3Error(`HeadBucket ${bucket}: AccessDenied (HTTP 403: wrong credentials, or no permission on the bucket)`, "AccessDenied", 403);
    this.expect(answer, [200], "HeadBucket", bucket, "");
  }

  private expect(answer: Answer, ok: readonly number[], operation: string, bucket: string, key: string): void {
    if (ok.includes(answer.status)) return;
    const code = s3ErrorCodeOf(answer.status, answer.body);
    const where = key ? `s3://${bucket}/${key}` : `bucket ${bucket}`;
    throw new S3Error(`${operation} ${where} at ${this.endpoint}: ${withStatus(code, answer.status)}`, code, answer.status);
  }

  /**
   * One signed request. With `toFile`, a 200 body is streamed into that file; any other answer
   * is read (bounded) for its error code and thrown.
   */
  private send(
    method: string,
    bucket: string,
    key: string,
    query: Readonly<Record<string, string>>,
    headers: Readonly<Record<string, string>>,
    payloadHash: string,
    body?: () => Readable | Buffer,
    toFile?: { file: string; maxBytes: number },
  ): Promise<Answer> {
    const path = `/${uriEncode(bucket)}${key ? `/${key.split("/").map(uriEncode).join("/")}` : ""}`;
    const search = Object.keys(query).length ? `?${new URLSearchParams(query as Record<string, string>).toString()}` : "";
    const url = `${this.endpoint}${path}${search}`;
    const extra: Record<string, string> = { ...headers, "x-amz-content-sha256": payloadHash };
    if (this.options.credentials.sessionToken) extra["x-amz-security-token"] = this.options.credentials.sessionToken;
    const signed = signV4({ method, url, headers: extra, payloadHash }, this.options.credentials, { region: this.options.region, service: "s3", now: this.now() });
    const where = `${method} s3://${bucket}${key ? `/${key}` : ""} at ${this.endpoint}`;
    if (body === undefined && method !== "GET" && method !== "HEAD") signed.headers["content-length"] ??= "0";
    const request = url.startsWith("https:") ? httpsRequest : httpRequest;

    return new Promise<Answer>((resolve, reject) => {
      // The file a 200 body streams into: whatever fails (the response, the request, the socket:
      // one error may reach all three), the promise settles only once that file is closed, as
      // the caller removes it then — before, the file could be created after its removal.
      let out: ReturnType<typeof createWriteStream> | undefined;
      const afterFile = (settle: () => void) => {
        if (!out || out.closed) return settle();
        out.once("close", settle);
        out.destroy();
      };
      const fail = (error: Error) => afterFile(() => reject(retryable(new Error(`${where}: ${error.message}`))));
      const tls = this.options.ca && url.startsWith("https:") ? { ca: this.options.ca } : {};
      const req = request(url, { method, headers: signed.headers, timeout: this.timeoutMs, ...tls }, (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (toFile && status === 200) {
          let received = 0;
          res.on("data", (c: Buffer) => {
            if ((received += c.length) > toFile.maxBytes) res.destroy(new Error(`larger than the ${toFile.maxBytes} bytes expected`));
          });
          out = createWriteStream(toFile.file, { mode: 0o600 });
          pipeline(res, out).then(() => afterFile(() => resolve({ status, body: Buffer.alloc(0) })), fail);
          return;
        }
        const chunks: Buffer[] = [];
        let length = 0;
        res.on("data", (c: Buffer) => {
          // A list page is ~1 MB at most; an error body a few hundred bytes. Anything bigger is not S3.
          if ((length += c.length) > 16 * 1024 * 1024) return req.destroy(new Error("answer larger than 16 MiB"));
          chunks.push(c);
        });
        res.on("end", () => {
          const etag = res.headers.etag;
          const answer = { status, body: Buffer.concat(chunks), etag: typeof etag === "string" ? etag : undefined };
          if (toFile) {
            const code = s3ErrorCodeOf(status, answer.body);
            reject(new S3Error(`GetObject s3://${bucket}/${key} at ${this.endpoint}: ${withStatus(code, status)}`, code, status));
          } else resolve(answer);
        });
        res.on("error", fail);
      });
      req.on("timeout", () => req.destroy(new Error(`no answer within ${this.timeoutMs / 1000} s`)));
      // The socket timeout bounds silence; this bounds a server that answers a byte at a time.
      const deadline = setTimeout(() => req.destroy(new Error(`not done within ${this.deadlineMs / 1000} s`)), this.deadlineMs);
      deadline.unref();
      req.on("close", () => clearTimeout(deadline));
      req.on("error", fail);
      const payload = body?.();
      if (payload === undefined || Buffer.isBuffer(payload)) req.end(payload);
      else pipeline(payload, req).catch(fail);
    });
  }
}
