/**
 * Checks of built images against their bytes, independent of the code that wrote them: every
 * blob's sha256 is its name and its descriptor's size, each layer's diff_id is the sha256 of the
 * gunzipped tar, media types and platform are what containerd accepts. Layer contents are listed
 * by GNU tar (a second, independent tar reader), PAX records by a small parser here.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { gunzipSync } from "node:zlib";

const sha = (data: Buffer) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

export interface CheckedImage {
  readonly ref: string;
  readonly digest: string;
  readonly config: { architecture: string; os: string; config: Record<string, unknown>; rootfs: { type: string; diff_ids: string[] } };
  /** Layer blob paths, in order. */
  readonly layers: string[];
}

/** Validates an OCI layout; returns its images and the problems found (empty when valid). */
export function checkLayout(dir: string): { images: CheckedImage[]; problems: string[] } {
  const problems: string[] = [];
  const blob = (digest: string, size: number, what: string): Buffer => {
    const file = path.join(dir, "blobs", "sha256", digest.replace(/^sha256:/, ""));
    const data = readFileSync(file);
    if (sha(data) !== digest) problems.push(`${what} ${digest}: content hashes to ${sha(data)}`);
    if (data.length !== size) problems.push(`${what} ${digest}: ${data.length} bytes, descriptor says ${size}`);
    return data;
  };
  const marker = JSON.parse(readFileSync(path.join(dir, "oci-layout"), "utf8")) as { imageLayoutVersion: string };
  if (marker.imageLayoutVersion !== "1.0.0") problems.push(`oci-layout: imageLayoutVersion ${marker.imageLayoutVersion}`);
  const index = JSON.parse(readFileSync(path.join(dir, "index.json"), "utf8")) as { schemaVersion: number; mediaType: string; manifests: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }[] };
  if (index.schemaVersion !== 2 || index.mediaType !== "application/vnd.oci.image.index.v1+json") problems.push(`index.json: schemaVersion ${index.schemaVersion}, mediaType ${index.mediaType}`);
  const images: CheckedImage[] = [];
  for (const m of index.manifests) {
    const ref = m.annotations["io.containerd.image.name"] ?? "";
    if (!ref.endsWith(`:${m.annotations["org.opencontainers.image.ref.name"]}`)) problems.push(`index.json: ref.name ${m.annotations["org.opencontainers.image.ref.name"]} is not the tag of ${ref}`);
    if (m.mediaType !== "application/vnd.oci.image.manifest.v1+json") problems.push(`${ref}: manifest media type ${m.mediaType}`);
    const manifest = JSON.parse(blob(m.digest, m.size, `${ref} manifest`).toString("utf8")) as { schemaVersion: number; mediaType: string; config: { mediaType: string; digest: string; size: number }; layers: { mediaType: string; digest: string; size: number }[] };
    if (manifest.schemaVersion !== 2 || manifest.mediaType !== m.mediaType) problems.push(`${ref}: manifest schemaVersion/mediaType ${manifest.schemaVersion} ${manifest.mediaType}`);
    if (manifest.config.mediaType !== "application/vnd.oci.image.config.v1+json") problems.push(`${ref}: config media type ${manifest.config.mediaType}`);
    const config = JSON.parse(blob(manifest.config.digest, manifest.config.size, `${ref} config`).toString("utf8")) as CheckedImage["config"];
    if (config.architecture !== "amd64" || config.os !== "linux") problems.push(`${ref}: platform ${config.os}/${config.architecture}`);
    if (config.rootfs.type !== "layers" || config.rootfs.diff_ids.length !== manifest.layers.length) problems.push(`${ref}: rootfs ${JSON.stringify(config.rootfs)} for ${manifest.layers.length} layers`);
    manifest.layers.forEach((layer, i) => {
      if (layer.mediaType !== "application/vnd.oci.image.layer.v1.tar+gzip") problems.push(`${ref}: layer ${i} media type ${layer.mediaType}`);
      const tar = gunzipSync(blob(layer.digest, layer.size, `${ref} layer ${i}`));
      if (sha(tar) !== config.rootfs.diff_ids[i]) problems.push(`${ref}: layer ${i} diff_id ${config.rootfs.diff_ids[i]}, the tar hashes to ${sha(tar)}`);
    });
    images.push({ ref, digest: m.digest, config, layers: manifest.layers.map((l) => path.join(dir, "blobs", "sha256", l.digest.slice(7))) });
  }
  const named = new Set(readdirSync(path.join(dir, "blobs", "sha256")));
  for (const name of named) if (!statSync(path.join(dir, "blobs", "sha256", name)).isFile()) problems.push(`blobs/sha256/${name}: not a file`);
  return { images, problems };
}

export interface ListedEntry {
  /** "-rwxr-xr-x", "drwxrwxrwt", "hrwxr-xr-x", "lrwxrwxrwx". */
  readonly mode: string;
  readonly owner: string;
  readonly time: string;
  readonly path: string;
  readonly link?: string;
}

/** A gzipped layer's entries as GNU tar lists them (numeric owners, full times). */
export function listLayer(file: string): ListedEntry[] {
  const out = execFileSync("tar", ["--numeric-owner", "--full-time", "-tvzf", file], { encoding: "utf8", maxBuffer: 64 << 20 });
  return out
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const m = /^(\S+) (\S+)\s+\d+ (\S+ \S+) (.*?)(?: (?:->|link to) (.*))?$/.exec(line);
      if (!m) throw new Error(`unexpected tar listing line: ${line}`);
      return { mode: m[1]!, owner: m[2]!, time: m[3]!, path: m[4]!.replace(/\/$/, ""), link: m[5] };
    });
}

/** The PAX extended-header records in front of `entryPath` in a gzipped layer. */
export function paxRecords(file: string, entryPath: string): Record<string, Buffer> {
  const tar = gunzipSync(readFileSync(file));
  let pending: Record<string, Buffer> = {};
  for (let at = 0; at + 512 <= tar.length; ) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.subarray(0, 100).toString("utf8").replace(/\0.*$/s, "");
    const size = parseInt(header.subarray(124, 136).toString("ascii").replace(/\0.*$/s, "").trim() || "0", 8);
    const type = String.fromCharCode(header[156]!);
    const body = tar.subarray(at + 512, at + 512 + size);
    if (type === "x") {
      pending = {};
      for (let i = 0; i < body.length; ) {
        const space = body.indexOf(0x20, i);
        const length = Number(body.subarray(i, space).toString("ascii"));
        const record = body.subarray(space + 1, i + length - 1);
        const eq = record.indexOf(0x3d);
        pending[record.subarray(0, eq).toString("utf8")] = Buffer.from(record.subarray(eq + 1));
        i += length;
      }
    } else {
      const full = pending.path?.toString("utf8") ?? name;
      if (full.replace(/\/$/, "") === entryPath) return pending;
      pending = {};
    }
    at += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${entryPath} not in ${file}`);
}
