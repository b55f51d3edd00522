/**
 * `pushImages`: the built layouts into a registry over the OCI distribution API: for each blob
 * HEAD (present: skip), a cross-repository mount when this run already pushed it elsewhere, else
 * POST an upload and PUT it whole with ?digest=; then PUT the manifest under each tag and check
 * the digest the registry answers with. Repositories keep their path and drop the upstream host
 * (registry.k8s.io/kube-apiserver:v1.36.3 → HOST:PORT/kube-apiserver:v1.36.3), so a containerd
 * mirror for registry.k8s.io and docker.io pointed at HOST:PORT finds every image by its usual
 * name. Plain HTTP, so only to a registry on loopback: nothing leaves the machine unencrypted.
 */
import { createReadStream, existsSync, readdirSync, statSync } from "node:fs";
import { request, type IncomingHttpHeaders } from "node:http";
import * as path from "node:path";
import { defaultImagesDir, formatSize, type BuiltImage } from "./build";
import { readBlob, readLayout, type ImageReference } from "./layout";
import { blobPath, type Descriptor } from "./oci";

export interface PushOptions {
  /** HOST:PORT of a registry on loopback (127.0.0.0/8, localhost, [::1]). Default $KOK_REGISTRY. */
  readonly registry?: string;
  /** What to push: buildImages' result. Default: every layout under the images directory. */
  readonly images?: readonly BuiltImage[];
  readonly imagesDir?: string;
  readonly log?: (line: string) => void;
}

export interface PushedImage {
  /** The upstream reference: "registry.k8s.io/kube-apiserver:v1.36.3". */
  readonly source: string;
  /** Where it is now: "127.0.0.1:5000/kube-apiserver:v1.36.3". */
  readonly target: string;
  readonly digest: string;
  /** Blobs uploaded (not already there nor mounted). */
  readonly uploaded: number;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\]):(\d{1,5})$/;
/** No answer for this long means the registry is stuck; better an error than a hang. */
const IDLE_TIMEOUT_MS = 60_000;

/** The mirror's name of an upstream image: its repository path and tag on `registry`. */
export function mirrorReference(ref: ImageReference, registry: string): string {
  return `${registry}/${ref.repository}:${ref.tag}`;
}

export function checkRegistry(registry: string | undefined): string {
  if (!registry) throw new Error("no registry to push to: pass --registry HOST:PORT or set KOK_REGISTRY (`kok dev env` prints it)");
  const match = LOOPBACK.exec(registry);
  if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) {
    throw new Error(`registry "${registry}": pushes go over plain HTTP, so only to HOST:PORT on loopback (127.0.0.1:5000, localhost:5000, [::1]:5000)`);
  }
  return registry;
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

class Registry {
  constructor(readonly address: string) {}

  call(method: string, urlPath: string, body?: { readonly data: Buffer | string; readonly size: number; readonly type: string }): Promise<Answer> {
    const url = new URL(urlPath, `http://${this.address}`);
    // An upload Location elsewhere (a redirect to other storage) would carry the blob off loopback.
    if (url.protocol !== "http:" || url.host !== this.address) {
      return Promise.reject(new Error(`registry ${this.address} sent the upload to ${url.origin}; only ${this.address} is used, over plain HTTP on loopback`));
    }
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = body ? { "Content-Type": body.type, "Content-Length": body.size } : {};
      const req = request(url, { method, headers, timeout: IDLE_TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error(`no answer in ${IDLE_TIMEOUT_MS / 1000}s`)));
      req.on("error", (error) => reject(new Error(`registry ${this.address} is not reachable (${method} ${url.pathname}: ${error.message}): start it (\`kok dev up\`) or pass --registry HOST:PORT of a running one`)));
      if (!body) req.end();
      else if (typeof body.data === "string") createReadStream(body.data).on("error", (e) => req.destroy(e)).pipe(req);
      else req.end(body.data);
    });
  }
}

/** "404 BLOB_UNKNOWN: blob unknown to registry" from a distribution error answer. */
function describe(answer: Answer): string {
  try {
    const errors = (JSON.parse(answer.body) as { errors?: { code?: string; message?: string }[] }).errors ?? [];
    if (errors.length > 0) return `${answer.status} ${errors.map((e) => `${e.code}: ${e.message}`).join("; ")}`;
  } catch {
    // not JSON: the status and the start of the body say enough
  }
  return `${answer.status} ${answer.body.slice(0, 200).trim()}`;
}

/** The upload URL with ?digest= (or &digest=) added; Location may be relative or absolute. */
function withDigest(location: string, digest: string): string {
  return `${location}${location.includes("?") ? "&" : "?"}digest=${encodeURIComponent(digest)}`;
}

async function pushBlob(registry: Registry, repository: string, layout: string, blob: Descriptor, mountFrom: Map<string, string>): Promise<boolean> {
  const head = await registry.call("HEAD", `/v2/${repository}/blobs/${blob.digest}`);
  if (head.status === 200) return false;
  const from = mountFrom.get(blob.digest);
  const start = await registry.call("POST", `/v2/${repository}/blobs/uploads/${from ? `?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}` : ""}`);
  if (start.status === 201) return false;
  const location = start.headers.location;
  if (start.status !== 202 || !location) throw new Error(`starting the upload of ${blob.digest} to ${repository}: ${describe(start)}`);
  const file = blobPath(layout, blob.digest);
  const size = statSync(file).size;
  if (size !== blob.size) throw new Error(`${file} has ${size} bytes, its descriptor says ${blob.size}: the layout is damaged; run \`kok images build --force\``);
  const put = await registry.call("PUT", withDigest(location, blob.digest), { data: file, size, type: "application/octet-stream" });
  if (put.status !== 201) throw new Error(`uploading ${blob.digest} to ${repository}: ${describe(put)}`);
  return true;
}

/** Every image layout under the images directory (directories holding `oci-layout`). */
function layoutsUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  const walk = (d: string) => {
    if (existsSync(path.join(d, "oci-layout"))) return void found.push(d);
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory() && e.name !== "debs" && !e.name.includes(".tmp-")) walk(path.join(d, e.name));
  };
  walk(dir);
  return found.sort();
}

/** Pushes the images; returns one entry per tag pushed. Fails naming the image, blob and registry. */
export async function pushImages(opts: PushOptions = {}): Promise<PushedImage[]> {
  const address = checkRegistry(opts.registry ?? process.env.KOK_REGISTRY);
  const log = opts.log ?? (() => undefined);
  const layouts = opts.images ? opts.images.map((i) => i.layout) : layoutsUnder(opts.imagesDir ?? defaultImagesDir());
  if (layouts.length === 0) throw new Error(`no images under ${opts.imagesDir ?? defaultImagesDir()}: run \`kok images build\` first`);
  const registry = new Registry(address);
  const mountFrom = new Map<string, string>();
  const pushed: PushedImage[] = [];
  for (const layout of layouts) {
    for (const { ref, manifest } of readLayout(layout)) {
      const source = `${ref.host}/${ref.repository}:${ref.tag}`;
      const target = mirrorReference(ref, address);
      const started = process.hrtime.bigint();
      try {
        const content = readBlob(layout, manifest.digest);
        const parsed = JSON.parse(content.toString("utf8")) as { config: Descriptor; layers: Descriptor[] };
        let uploaded = 0;
        let bytes = 0;
        for (const blob of [...parsed.layers, parsed.config]) {
          if (await pushBlob(registry, ref.repository, layout, blob, mountFrom)) {
            uploaded++;
            bytes += blob.size;
          }
          mountFrom.set(blob.digest, ref.repository);
        }
        const put = await registry.call("PUT", `/v2/${ref.repository}/manifests/${ref.tag}`, { data: content, size: content.length, type: manifest.mediaType });
        if (put.status !== 201) throw new Error(`putting the manifest: ${describe(put)}`);
        const answered = put.headers["docker-content-digest"];
        if (answered && answered !== manifest.digest) throw new Error(`the registry stored the manifest as ${String(answered)}, not ${manifest.digest}`);
        pushed.push({ source, target, digest: manifest.digest, uploaded });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        log(`${target}  ${manifest.digest.slice(0, 19)}  ${uploaded} blob(s) uploaded (${formatSize(bytes)}) in ${seconds.toFixed(1)}s`);
      } catch (error) {
        throw new Error(`pushing ${source} to ${target}: ${(error as Error).message}`);
      }
    }
  }
  return pushed;
}
