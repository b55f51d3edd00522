/**
 * Multipart upload for S3Client.putFile: a single PUT stops at 5 GiB, and etcd's database may
 * grow to 8 GiB. The plan and the XML are pure functions here; the client sends the requests.
 *
 * The file is read once to hash the whole and each part (S3 wants a part's SHA-256 before its
 * body, and checks it), then once more to send each part. Parts go one at a time: the backup Pod
 * is small, and one stream already fills the link. A part that fails on the network or with a 5xx
 * is sent again (its bytes are re-read from the file); anything else aborts the upload, so no
 * half-written object and no orphaned parts are left behind — or, if the abort itself fails, the
 * message says so and names the upload.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

/** The smallest part S3 accepts (all but the last); also AWS's limit on the number of parts. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PARTS = 10_000;
/** Files larger than this go in parts; at most S3's 5 GiB single-PUT limit. */
export const DEFAULT_MULTIPART_THRESHOLD = 256 * 1024 * 1024;
export const DEFAULT_PART_BYTES = 64 * 1024 * 1024;
/** Sends of one part before the upload is given up. */
export const PART_ATTEMPTS = 3;

export interface PartPlan {
  /** 1-based, as S3 numbers them. */
  readonly number: number;
  /** Byte offsets in the file, `end` inclusive (createReadStream's convention). */
  readonly start: number;
  readonly end: number;
}

/**
 * The parts of a file of `size` bytes: `partBytes` each (the last one shorter), made larger when
 * that many parts would exceed S3's 10,000.
 */
export function planParts(size: number, partBytes = DEFAULT_PART_BYTES): PartPlan[] {
  if (!Number.isSafeInteger(size) || size <= 0) throw new Error(`multipart upload: size ${size} is not a positive byte count`);
  if (!Number.isSafeInteger(partBytes) || partBytes < MIN_PART_BYTES) throw new Error(`multipart upload: parts of ${partBytes} bytes are below S3's 5 MiB minimum`);
  const each = Math.max(partBytes, Math.ceil(size / MAX_PARTS));
  const parts: PartPlan[] = [];
  for (let start = 0, number = 1; start < size; start += each, number++) parts.push({ number, start, end: Math.min(start + each, size) - 1 });
  return parts;
}

/** The SHA-256 (hex) of the whole file and of each planned part, in one read. */
export async function hashParts(file: string, parts: readonly PartPlan[]): Promise<{ whole: string; parts: string[] }> {
  const whole = createHash("sha256");
  const each = parts.map(() => createHash("sha256"));
  let offset = 0;
  let index = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    whole.update(chunk);
    let at = 0;
    while (at < chunk.length) {
      const part = parts[index];
      if (!part) throw new Error(`multipart upload: ${file} grew while it was being read`);
      const take = Math.min(chunk.length - at, part.end + 1 - offset);
      each[index].update(chunk.subarray(at, at + take));
      at += take;
      offset += take;
      if (offset > part.end) index++;
    }
  }
  if (index !== parts.length) throw new Error(`multipart upload: ${file} shrank while it was being read`);
  return { whole: whole.digest("hex"), parts: each.map((h) => h.digest("hex")) };
}

/** Upload ids are opaque, but one that is huge or full of markup is not from an S3 server. */
const UPLOAD_ID = /^[A-Za-z0-9._~+/=-]{1,1024}$/;

/** The UploadId of an InitiateMultipartUploadResult; an error when there is none a server could have meant. */
export function parseUploadId(xml: string): string {
  const id = /<UploadId>([^<]*)<\/UploadId>/.exec(xml)?.[1];
  if (!id || !UPLOAD_ID.test(id)) throw new Error("the answer to CreateMultipartUpload holds no usable UploadId");
  return id;
}

/** ETags are quoted hex (or a vendor's token); anything else would be pasted into our XML. */
const ETAG = /^"?[A-Za-z0-9+/=._-]{1,256}"?$/;

export function checkEtag(etag: string | undefined, part: number): string {
  if (!etag || !ETAG.test(etag)) throw new Error(`UploadPart ${part}: the answer carries no usable ETag`);
  return etag;
}

export function completeUploadXml(parts: readonly { number: number; etag: string }[]): string {
  const body = parts.map((p) => `<Part><PartNumber>${p.number}</PartNumber><ETag>${p.etag.replace(/"/g, "&quot;")}</ETag></Part>`).join("");
  return `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${body}</CompleteMultipartUpload>`;
}

/** CompleteMultipartUpload may answer 200 with an error inside (S3 sends it once the work is done): its code, or undefined when it completed. */
export function completeUploadError(xml: string): string | undefined {
  if (/<CompleteMultipartUploadResult[\s>]/.test(xml)) return undefined;
  return /<Code>([A-Za-z0-9._-]{1,64})<\/Code>/.exec(xml)?.[1] ?? "an answer that is not a CompleteMultipartUploadResult";
}

/** What the client does on the wire; each call throws a message naming the operation, bucket and key. */
export interface MultipartIo {
  initiate(): Promise<string>;
  /** Returns the part's ETag. `retryable` on the error says whether sending it again may help. */
  uploadPart(uploadId: string, part: PartPlan, sha256: string): Promise<string>;
  complete(uploadId: string, parts: readonly { number: number; etag: string }[]): Promise<void>;
  abort(uploadId: string): Promise<void>;
}

/** An error for which sending the same part again may succeed (the network, a 5xx, a throttle). */
export function isRetryable(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { retryable?: unknown }).retryable === true;
}

/**
 * Uploads `file` in parts through `io`; returns the whole file's SHA-256 (hex). On any failure
 * the upload is aborted, and the error says whether the abort worked.
 */
export async function uploadInParts(io: MultipartIo, file: string, size: number, partBytes: number, where: string): Promise<string> {
  const parts = planParts(size, partBytes);
  const hashes = await hashParts(file, parts);
  const uploadId = await io.initiate();
  try {
    const done: { number: number; etag: string }[] = [];
    for (const part of parts) {
      for (let attempt = 1; ; attempt++) {
        try {
          done.push({ number: part.number, etag: await io.uploadPart(uploadId, part, hashes.parts[part.number - 1]) });
          break;
        } catch (error) {
          if (attempt >= PART_ATTEMPTS || !isRetryable(error)) throw error;
        }
      }
    }
    await io.complete(uploadId, done);
    return hashes.whole;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const aborted = await io.abort(uploadId).then(
      () => "the upload was aborted",
      (abortError: unknown) =>
        `aborting the upload failed too (${abortError instanceof Error ? abortError.message : String(abortError)}): its parts stay until the bucket's lifecycle rule for incomplete multipart uploads removes them`,
    );
    throw Object.assign(new Error(`multipart upload of ${where} (${parts.length} parts): ${message}; ${aborted}`), { cause: error });
  }
}
