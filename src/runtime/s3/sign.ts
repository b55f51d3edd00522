/**
 * AWS Signature Version 4 for our S3 calls: the dev object store's (create the bucket, health
 * checks, the tests' PUT/GET) and the etcd backups' client (client.ts). A few dozen lines of
 * node:crypto instead of an AWS SDK: we need a handful of S3 calls, not a client with hundreds of
 * dependencies. Pure: the unit tests check it against AWS's published examples, the integration
 * tests against a real S3 server.
 */
import { createHash, createHmac } from "node:crypto";

export interface SigV4Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface SigV4Request {
  readonly method: string;
  readonly url: string;
  /** Headers to sign as well as send; `host` is added from the URL when absent. */
  readonly headers: Readonly<Record<string, string>>;
  /** Hex SHA-256 of the body (`sha256Hex(body)`), or `UNSIGNED-PAYLOAD`. */
  readonly payloadHash: string;
}

export interface SigV4Scope {
  readonly region: string;
  readonly service: string;
  readonly now: Date;
}

export interface SignedRequest {
  /** The request's headers plus `host`, `x-amz-date` and `authorization`, all lower-case: send exactly these. */
  readonly headers: Record<string, string>;
  readonly signature: string;
  readonly canonicalRequest: string;
  readonly stringToSign: string;
}

export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

export function sha256Hex(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data, "utf8").digest();

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - . _ ~ (encodeURIComponent leaves !'()* alone). */
export function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** `20150830T123600Z`: ISO 8601 basic format, UTC, no fractions. */
export function amzDate(now: Date): string {
  return now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/**
 * S3's canonical URI: each path segment encoded once (other services encode twice; S3 does not).
 * The URL parser has already percent-encoded some characters, so segments are decoded first.
 */
function canonicalUri(pathname: string): string {
  return pathname
    .split("/")
    .map((segment) => uriEncode(decodeURIComponent(segment)))
    .join("/");
}

function canonicalQuery(search: URLSearchParams): string {
  return [...search.entries()]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak === bk ? (av < bv ? -1 : av > bv ? 1 : 0) : ak < bk ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
}

/** Signs `request` with the credentials for one region and service at `now`. */
export function signV4(request: SigV4Request, credentials: SigV4Credentials, scope: SigV4Scope): SignedRequest {
  const url = new URL(request.url);
  const date = amzDate(scope.now);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase()] = value;
  headers.host ??= url.host;
  headers["x-amz-date"] = date;

  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${headers[n].trim().replace(/\s+/g, " ")}\n`).join("");
  const signedHeaders = names.join(";");
  const canonicalRequest = [request.method.toUpperCase(), canonicalUri(url.pathname), canonicalQuery(url.searchParams), canonicalHeaders, signedHeaders, request.payloadHash].join("\n");

  const credentialScope = `${date.slice(0, 8)}/${scope.region}/${scope.service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", date, credentialScope, sha256Hex(canonicalRequest)].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, date.slice(0, 8)), scope.region), scope.service), "aws4_request");
  const signature = createHmac("sha256", key).update(stringToSign, "utf8").digest("hex");

  headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${credentialScope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return { headers, signature, canonicalRequest, stringToSign };
}
