/**
 * OCI image pieces with their sha256 digests: a layer (a deterministic tar, gzip-compressed), the
 * image config (with rootfs.diff_ids, the digests of the *uncompressed* layers, which containerd
 * checks after unpacking) and the image manifest. JSON is written with a fixed key order and no
 * whitespace, so equal content gives equal digests. Media types are the OCI ones containerd and
 * distribution accept.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { tarStream, type TarEntry } from "./tar";

export const MEDIA_TYPES = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  index: "application/vnd.oci.image.index.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
} as const;

/** The only timestamp an image carries: the epoch, so builds at different times are identical. */
export const EPOCH = "1970-01-01T00:00:00Z";

/** gzip level: zlib's default, a fair balance for 100 MB Go binaries on two cores. */
const GZIP_LEVEL = 6;

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface LayerBlob extends Descriptor {
  /** sha256 of the uncompressed tar: the config's rootfs.diff_ids entry. */
  readonly diffId: string;
  /** Size of the uncompressed tar. */
  readonly tarSize: number;
}

export const sha256 = (data: Buffer | string) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

/** Where a blob lives in an OCI layout: blobs/sha256/<hex>. */
export function blobPath(layoutDir: string, digest: string): string {
  const [algorithm, hex] = digest.split(":");
  if (algorithm !== "sha256" || !/^[0-9a-f]{64}$/.test(hex ?? "")) throw new Error(`not a sha256 digest: ${digest}`);
  return path.join(layoutDir, "blobs", "sha256", hex!);
}

/** A pass-through stream that hashes and counts what flows through it. */
function hashing(): Transform & { digest(): string; bytes(): number } {
  const hash = createHash("sha256");
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  return Object.assign(stream, { digest: () => `sha256:${hash.digest("hex")}`, bytes: () => bytes });
}

/** Writes a layer blob into the layout (tar → gzip in one streaming pass) and describes it. */
export async function writeLayer(layoutDir: string, entries: readonly TarEntry[]): Promise<LayerBlob> {
  const dir = path.join(layoutDir, "blobs", "sha256");
  await mkdir(dir, { recursive: true });
  const temporary = path.join(dir, `.layer-${process.pid}-${Math.random().toString(16).slice(2)}`);
  const tar = hashing();
  const gz = hashing();
  try {
    await pipeline(Readable.from(tarStream(entries)), tar, createGzip({ level: GZIP_LEVEL }), gz, createWriteStream(temporary));
    const digest = gz.digest();
    await rename(temporary, blobPath(layoutDir, digest));
    return { mediaType: MEDIA_TYPES.layer, digest, size: gz.bytes(), diffId: tar.digest(), tarSize: tar.bytes() };
  } finally {
    await rm(temporary, { force: true });
  }
}

/** Writes a small blob (JSON) into the layout. */
export async function writeBlob(layoutDir: string, mediaType: string, content: Buffer): Promise<Descriptor> {
  const digest = sha256(content);
  await mkdir(path.join(layoutDir, "blobs", "sha256"), { recursive: true });
  await writeFile(blobPath(layoutDir, digest), content);
  return { mediaType, digest, size: content.length };
}

/** What a container of the image runs with (the OCI config's `config` object). */
export interface RunConfig {
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  readonly env: readonly string[];
  readonly user?: string;
  readonly workingDir?: string;
  readonly exposedPorts?: readonly string[];
  /** Paths a runtime should put on volumes (the operator's writable directories). */
  readonly volumes?: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
}

/** The image config JSON. `history` says, per layer, what it holds (shown by `crane config`). */
export function imageConfig(run: RunConfig, layers: readonly { diffId: string; comment: string }[]): Buffer {
  const config: Record<string, unknown> = {};
  if (run.user !== undefined) config.User = run.user;
  if (run.exposedPorts?.length) config.ExposedPorts = Object.fromEntries([...run.exposedPorts].sort().map((p) => [p, {}]));
  config.Env = [...run.env];
  if (run.entrypoint) config.Entrypoint = [...run.entrypoint];
  if (run.cmd) config.Cmd = [...run.cmd];
  if (run.workingDir !== undefined) config.WorkingDir = run.workingDir;
  // Only when given: the images without them keep their bytes.
  if (run.volumes?.length) config.Volumes = Object.fromEntries([...run.volumes].sort().map((v) => [v, {}]));
  if (run.labels) config.Labels = Object.fromEntries(Object.keys(run.labels).sort().map((k) => [k, run.labels![k]]));
  return Buffer.from(
    JSON.stringify({
      created: EPOCH,
      architecture: "amd64",
      os: "linux",
      config,
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((l) => ({ created: EPOCH, created_by: "kok images build", comment: l.comment })),
    }),
  );
}

/** The image manifest JSON. */
export function imageManifest(config: Descriptor, layers: readonly Descriptor[]): Buffer {
  const descriptor = (d: Descriptor) => ({ mediaType: d.mediaType, digest: d.digest, size: d.size });
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.manifest, config: descriptor(config), layers: layers.map(descriptor) }));
}
