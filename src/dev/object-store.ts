/**
 * The dev cluster's S3 object store: versitygw with its POSIX backend (a bucket is a directory
 * under <state>/object-store), on 127.0.0.1, one bucket `kok-dev` for state and backups. Its root
 * credentials are generated once per state directory and kept 0600 beside it; they reach the
 * process through its environment, and only `kok dev env` prints them (docs/dev-cluster.md).
 * Pods on the real node reach it at the machine's end of the node link, through the node's
 * forwarder (node/forwarder.ts), as they reach the registry: that is a Cluster's etcd backup
 * endpoint in the dev environment (KOK_S3_POD_ENDPOINT), allowed by the dev admin policy.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { statePaths, type DevConfig } from "./config";
import { nodeLink } from "./node/layout";
import { httpRequest, type HttpResponse } from "./http";
import { sha256Hex, signV4, uriEncode, type SigV4Credentials } from "../runtime/s3/sign";
import type { DevService, Probe } from "./services";

export const OBJECT_STORE_BUCKET = "kok-dev";
/** Any region works with a single local server; us-east-1 is what S3 clients assume without one. */
export const OBJECT_STORE_REGION = "us-east-1";

export interface S3Target {
  readonly endpoint: string;
  readonly region: string;
  readonly credentials: SigV4Credentials;
}

export function objectStoreEndpoint(config: DevConfig): string {
  return `http://127.0.0.1:${config.ports.objectStore}`;
}

/**
 * The store as Pods on the real node reach it: the machine's end of the node link, forwarded to
 * the loopback listener. Plain http, as on loopback: the link never leaves the machine.
 */
export function objectStorePodEndpoint(config: DevConfig): string {
  return `http://${nodeLink(config.podCIDR).host}:${config.ports.objectStore}`;
}

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** Creates the root credentials once (AWS-shaped: a 20-character key id, a 40-character secret). */
export function ensureObjectStoreCredentials(config: DevConfig): SigV4Credentials {
  const file = statePaths(config.stateDir).objectStoreCredentials;
  if (!existsSync(file)) {
    const id = [...randomBytes(17)].map((b) => ALPHANUMERIC[b % ALPHANUMERIC.length]).join("");
    const credentials: SigV4Credentials = { accessKeyId: `KOK${id}`, secretAccessKey: randomBytes(30).toString("base64url") };
    mkdirSync(statePaths(config.stateDir).dir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, JSON.stringify(credentials) + "\n", { mode: 0o600, flag: "wx" });
    } catch (error) {
      // Another `up` of this state dir wrote them first: theirs are the ones to use.
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
  // Also for a file copied in with a wider mode: nobody but the owner reads the secret.
  chmodSync(file, 0o600);
  return readObjectStoreCredentials(config);
}

export function readObjectStoreCredentials(config: DevConfig): SigV4Credentials {
  const file = statePaths(config.stateDir).objectStoreCredentials;
  if (!existsSync(file)) throw new Error(`no object store credentials in ${file}: run \`kok dev up --state-dir ${config.stateDir}\` first`);
  const parsed = JSON.parse(readFileSync(file, "utf8")) as Partial<SigV4Credentials>;
  if (typeof parsed.accessKeyId !== "string" || typeof parsed.secretAccessKey !== "string") {
    throw new Error(`${file}: want {"accessKeyId": ..., "secretAccessKey": ...}; remove it and run \`kok dev up\` to make new ones`);
  }
  return { accessKeyId: parsed.accessKeyId, secretAccessKey: parsed.secretAccessKey };
}

export function objectStoreTarget(config: DevConfig): S3Target {
  return { endpoint: objectStoreEndpoint(config), region: OBJECT_STORE_REGION, credentials: readObjectStoreCredentials(config) };
}

/**
 * Pulumi's state backend URL for this store (`kok operator --backend-url`), under `prefix` when
 * given (several operators or tests share the bucket): gocloud's s3 opener (AWS SDK v2) takes the
 * endpoint with its scheme and needs path-style addressing, since `kok-dev.127.0.0.1` resolves
 * nowhere. No credentials: the engine reads them from AWS_* (objectStoreEnv).
 */
export function objectStoreBackendUrl(config: DevConfig, prefix = ""): string {
  const path = prefix.replace(/^\/+|\/+$/g, "");
  return `s3://${OBJECT_STORE_BUCKET}${path ? `/${path}` : ""}?endpoint=${objectStoreEndpoint(config)}&region=${OBJECT_STORE_REGION}&use_path_style=true`;
}

/** The variables S3 clients read, plus the state backend URL for this store (objectStoreBackendUrl). */
export function objectStoreEnv(config: DevConfig): Record<string, string> {
  const { accessKeyId, secretAccessKey } = readObjectStoreCredentials(config);
  const endpoint = objectStoreEndpoint(config);
  return {
    KOK_S3_ENDPOINT: endpoint,
    // What a Cluster's spec.etcd.backup.store.s3.endpoint names: the backup job runs in a Pod.
    KOK_S3_POD_ENDPOINT: objectStorePodEndpoint(config),
    KOK_S3_BUCKET: OBJECT_STORE_BUCKET,
    KOK_S3_BACKEND_URL: objectStoreBackendUrl(config),
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secretAccessKey,
    AWS_REGION: OBJECT_STORE_REGION,
  };
}

export interface S3RequestOptions {
  readonly method: string;
  /** `/bucket` or `/bucket/key/with/slashes`, unencoded. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  readonly body?: Buffer | string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One signed S3 request (path-style); resolves with any status, rejects only when nothing answered. */
export function s3Request(target: S3Target, opts: S3RequestOptions): Promise<HttpResponse> {
  const body = typeof opts.body === "string" ? Buffer.from(opts.body) : opts.body;
  const path = opts.path.split("/").map(uriEncode).join("/");
  const query = opts.query ? `?${new URLSearchParams(opts.query as Record<string, string>).toString()}` : "";
  const url = `${target.endpoint}${path}${query}`;
  const signed = signV4(
    { method: opts.method, url, headers: { ...opts.headers, "x-amz-content-sha256": sha256Hex(body ?? "") }, payloadHash: sha256Hex(body ?? "") },
    target.credentials,
    { region: target.region, service: "s3", now: new Date() },
  );
  return httpRequest(url, { method: opts.method, headers: signed.headers, body });
}

/** S3's error code from an XML error body (`<Code>SignatureDoesNotMatch</Code>`), for messages. */
export function s3ErrorCode(res: HttpResponse): string {
  return /<Code>([^<]+)<\/Code>/.exec(res.body.toString("utf8"))?.[1] ?? `HTTP ${res.status}`;
}

export function objectStoreService(config: DevConfig): DevService {
  const paths = statePaths(config.stateDir);
  const bucket = `/${OBJECT_STORE_BUCKET}`;
  return {
    name: "object store",
    file: "object-store",
    binary: "versitygw",
    args: ["--port", `127.0.0.1:${config.ports.objectStore}`, "--region", OBJECT_STORE_REGION, "posix", paths.objectStoreData],
    env: () => {
      const { accessKeyId, secretAccessKey } = readObjectStoreCredentials(config);
      // The first of the names versitygw reads (ROOT_ACCESS_KEY_ID before ROOT_ACCESS_KEY).
      return { ROOT_ACCESS_KEY_ID: accessKeyId, ROOT_SECRET_ACCESS_KEY: secretAccessKey };
    },
    // versitygw takes every flag from a VGW_* variable too, and other root credentials from ROOT_*:
    // a developer's shell must change neither.
    dropEnv: (name) => name.startsWith("VGW_") || name.startsWith("ROOT_"),
    port: config.ports.objectStore,
    address: objectStoreEndpoint(config),
    prepare() {
      mkdirSync(paths.objectStoreData, { recursive: true });
      ensureObjectStoreCredentials(config);
    },
    async probe(): Promise<Probe> {
      // ListBuckets: answers 200 only to a request signed with the root credentials.
      const res = await s3Request(objectStoreTarget(config), { method: "GET", path: "/" });
      if (res.status >= 400 && res.status < 500) {
        // A server that answers refuses our request for good (versitygw: 403 SignatureDoesNotMatch, or
        // XAdminUserNotFound for an unknown key): it was started with other credentials than the file's.
        const detail = `ListBuckets answered ${s3ErrorCode(res)}: the running object store does not take the credentials in ${paths.objectStoreCredentials}; restart it (\`kok dev down\`, then \`kok dev up\`)`;
        return { serving: false, healthy: false, fatal: true, detail };
      }
      if (res.status !== 200) return { serving: false, healthy: false, detail: `ListBuckets answered ${s3ErrorCode(res)} (HTTP ${res.status})` };
      const hasBucket = res.body.toString("utf8").includes(`<Name>${OBJECT_STORE_BUCKET}</Name>`);
      return { serving: true, healthy: hasBucket, detail: hasBucket ? undefined : `bucket ${OBJECT_STORE_BUCKET} is missing (\`kok dev up\` creates it)` };
    },
    async ready() {
      const target = objectStoreTarget(config);
      const head = await s3Request(target, { method: "HEAD", path: bucket });
      if (head.status === 200) return `bucket ${OBJECT_STORE_BUCKET}`;
      if (head.status !== 404) throw new Error(`object store: HEAD ${bucket} answered ${head.status}`);
      const created = await s3Request(target, { method: "PUT", path: bucket });
      if (created.status !== 200) throw new Error(`object store: CreateBucket ${OBJECT_STORE_BUCKET} answered ${s3ErrorCode(created)}`);
      return `bucket ${OBJECT_STORE_BUCKET} created`;
    },
  };
}
