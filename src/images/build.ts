/**
 * `buildImages`: every planned image written as its own OCI layout under the images directory,
 * skipped when its cache key (a hash of everything that decides its bytes: the definition, each
 * entry's path, mode, owner and link target, the sha256 of each file's content, the gzip
 * implementation and this file's format version) matches the one recorded beside the layout.
 * A layout is built in a temporary directory and renamed into place, so an interrupted build
 * leaves the previous image (or none), never half of one.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import * as path from "node:path";
import { BOM_FILE, renderBom } from "./bom";
import { DebCache } from "./debs";
import { DEFAULT_IMAGE_NAMES, IMAGE_NAMES, planImages, type ImageName, type ImagePlan } from "./definitions";
import { formatReference, layoutDirOf, writeLayoutIndex } from "./layout";
import { imageConfig, imageManifest, MEDIA_TYPES, writeBlob, writeLayer } from "./oci";
import { normalizeEntries, type TarEntry } from "./tar";

/** Bump when the bytes this code writes for the same inputs change: it invalidates every cache key. */
const BUILD_FORMAT = 1;
const RECORD = "build.json";

export function defaultImagesDir(): string {
  return process.env.KOK_IMAGES_DIR || path.join(homedir(), ".cache", "kube-on-kube", "images");
}

function defaultToolchainDir(): string {
  return process.env.KOK_TOOLCHAIN_DIR || path.join(homedir(), ".cache", "kube-on-kube", "toolchain");
}

export interface BuildOptions {
  /** Default: $KOK_IMAGES_DIR or ~/.cache/kube-on-kube/images. */
  readonly imagesDir?: string;
  /** Default: $KOK_TOOLCHAIN_DIR or ~/.cache/kube-on-kube/toolchain. */
  readonly toolchainDir?: string;
  /** Image names (IMAGE_NAMES) to build; default DEFAULT_IMAGE_NAMES (all but the operator). */
  readonly only?: readonly string[];
  /** Where downloaded Debian packages are kept. Default: <imagesDir>/debs. */
  readonly debsDir?: string;
  /** Rebuild even when the cache key matches. */
  readonly force?: boolean;
  /** One line per image. Default: nothing. */
  readonly log?: (line: string) => void;
}

export interface BuiltImage {
  readonly name: string;
  /** Full references: "registry.k8s.io/kube-apiserver:v1.36.3". */
  readonly refs: readonly string[];
  /** The image's OCI layout directory. */
  readonly layout: string;
  /** The manifest's digest: what a registry and containerd report for it. */
  readonly digest: string;
  /** Bytes of the manifest, config and compressed layers. */
  readonly size: number;
  readonly cached: boolean;
  readonly seconds: number;
}

interface BuildRecord {
  readonly key: string;
  readonly refs: readonly string[];
  readonly digest: string;
  readonly size: number;
}

/** `--only` values checked against the known names; unknown ones are a usage error worth naming. */
export function checkOnly(only: readonly string[]): ImageName[] {
  const unknown = only.filter((n) => !(IMAGE_NAMES as readonly string[]).includes(n));
  if (unknown.length > 0) throw new UnknownImageError(`unknown image ${unknown.map((n) => `"${n}"`).join(", ")}: choose from ${IMAGE_NAMES.join(", ")}`);
  return only as ImageName[];
}

export class UnknownImageError extends Error {}

const fileHashes = new Map<string, string>();

/** sha256 of a file, remembered per (path, size, mtime) within the process. */
async function fileSha256(file: string): Promise<string> {
  const stat = statSync(file);
  const memo = `${file}\0${stat.size}\0${stat.mtimeMs}`;
  const known = fileHashes.get(memo);
  if (known) return known;
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  const digest = hash.digest("hex");
  fileHashes.set(memo, digest);
  return digest;
}

async function entryKey(entry: TarEntry): Promise<unknown[]> {
  const common = [entry.type, entry.path, entry.mode ?? null, entry.uid ?? 0, entry.gid ?? 0];
  if (entry.type === "symlink" || entry.type === "hardlink") return [...common, entry.target];
  if (entry.type === "dir") return common;
  const content = typeof entry.source === "string" ? await fileSha256(entry.source) : createHash("sha256").update(entry.source).digest("hex");
  const xattrs = Object.entries(entry.xattrs ?? {}).map(([k, v]) => [k, v.toString("hex")]);
  return [...common, content, xattrs];
}

/** The cache key of a plan: equal keys give byte-identical layouts. */
export async function cacheKey(plan: ImagePlan): Promise<string> {
  const layers = [];
  for (const layer of plan.layers) {
    const entries = [];
    for (const entry of normalizeEntries(layer.entries)) entries.push(await entryKey(entry));
    layers.push({ comment: layer.comment, entries });
  }
  // The bill of materials is part of the key: a layout's bom.md is always the one of its build.
  const material = { format: BUILD_FORMAT, zlib: process.versions.zlib, refs: plan.refs.map(formatReference), run: plan.run, layers, ...(plan.bom ? { bom: plan.bom } : {}) };
  return createHash("sha256").update(JSON.stringify(material)).digest("hex");
}

function readRecord(layoutDir: string): BuildRecord | undefined {
  try {
    return JSON.parse(readFileSync(path.join(layoutDir, RECORD), "utf8")) as BuildRecord;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes what killed builds left beside a layout (`<tag>.tmp-<pid>` of processes that are gone). */
async function removeLeftovers(layoutDir: string): Promise<void> {
  const parent = path.dirname(layoutDir);
  const prefix = `${path.basename(layoutDir)}.tmp-`;
  const names = existsSync(parent) ? readdirSync(parent) : [];
  for (const name of names.filter((n) => n.startsWith(prefix))) {
    const pid = Number(name.slice(prefix.length));
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) await rm(path.join(parent, name), { recursive: true, force: true });
  }
}

/** Writes one image's layout into `layoutDir` (replacing what is there). */
async function writeImage(plan: ImagePlan, layoutDir: string, key: string): Promise<BuildRecord> {
  await removeLeftovers(layoutDir);
  const work = `${layoutDir}.tmp-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const layers = [];
    for (const layer of plan.layers) layers.push({ ...(await writeLayer(work, normalizeEntries(layer.entries))), comment: layer.comment });
    const config = await writeBlob(work, MEDIA_TYPES.config, imageConfig(plan.run, layers));
    const manifest = await writeBlob(work, MEDIA_TYPES.manifest, imageManifest(config, layers));
    await writeLayoutIndex(work, plan.refs, manifest);
    const record: BuildRecord = {
      key,
      refs: plan.refs.map(formatReference),
      digest: manifest.digest,
      size: manifest.size + config.size + layers.reduce((sum, l) => sum + l.size, 0),
    };
    await writeFile(path.join(work, RECORD), `${JSON.stringify(record, null, 2)}\n`);
    if (plan.bom) await writeFile(path.join(work, BOM_FILE), renderBom(record.refs, plan.bom));
    await rm(layoutDir, { recursive: true, force: true });
    await rename(work, layoutDir);
    return record;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export const formatSize = (bytes: number) => (bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`);

/**
 * Builds the images (all, or `only`) and returns them in build order. Missing toolchain binaries
 * fail before anything is written, naming each image, file and the toolchain target that builds it.
 */
export async function buildImages(opts: BuildOptions = {}): Promise<BuiltImage[]> {
  const imagesDir = opts.imagesDir ?? defaultImagesDir();
  const only = opts.only ? checkOnly(opts.only) : DEFAULT_IMAGE_NAMES;
  const log = opts.log ?? (() => undefined);
  const plans = planImages(
    { toolchainDir: opts.toolchainDir ?? defaultToolchainDir(), debs: new DebCache(opts.debsDir ?? path.join(imagesDir, "debs"), log), stagesDir: path.join(imagesDir, "operator-app"), log },
    only,
  );
  const built: BuiltImage[] = [];
  for (const plan of plans) {
    const started = process.hrtime.bigint();
    const layoutDir = layoutDirOf(imagesDir, plan.refs[0]!);
    const key = await cacheKey(plan);
    const previous = readRecord(layoutDir);
    const cached = !opts.force && previous?.key === key && existsSync(path.join(layoutDir, "index.json"));
    const record = cached ? previous! : await writeImage(plan, layoutDir, key);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    built.push({ name: plan.name, refs: record.refs, layout: layoutDir, digest: record.digest, size: record.size, cached, seconds });
    log(`${record.refs.join(", ")}  ${record.digest.slice(0, 19)}  ${formatSize(record.size)}  ${cached ? "up to date" : "built"} in ${seconds.toFixed(1)}s`);
  }
  return built;
}
