/**
 * OCI image layouts (the image-spec's directory format: `oci-layout`, `index.json`,
 * `blobs/sha256/<hex>`), one per image, and image references. Each layout's index names its image
 * twice per tag: `org.opencontainers.image.ref.name` (the tag, as the image-spec suggests for a
 * layout holding one repository) and `io.containerd.image.name` (the whole reference, which
 * `ctr images import` uses as the image's name).
 */
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import * as path from "node:path";
import { blobPath, MEDIA_TYPES, type Descriptor } from "./oci";

export const REF_NAME = "org.opencontainers.image.ref.name";
export const CONTAINERD_NAME = "io.containerd.image.name";

export interface ImageReference {
  /** "registry.k8s.io", "docker.io". */
  readonly host: string;
  /** The path under the host: "kube-apiserver", "coredns/coredns", "library/busybox". */
  readonly repository: string;
  readonly tag: string;
}

const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

/** "registry.k8s.io/kube-apiserver:v1.36.3" → parts. Only fully qualified references with a tag. */
export function parseReference(ref: string): ImageReference {
  const slash = ref.indexOf("/");
  const colon = ref.lastIndexOf(":");
  const host = ref.slice(0, slash);
  const repository = ref.slice(slash + 1, colon);
  const tag = ref.slice(colon + 1);
  if (slash < 0 || colon < slash || !host.includes(".") || !REPOSITORY.test(repository) || !TAG.test(tag)) {
    throw new Error(`image reference "${ref}": want HOST/REPOSITORY:TAG, e.g. registry.k8s.io/kube-apiserver:v1.36.3`);
  }
  return { host, repository, tag };
}

export const formatReference = (r: ImageReference) => `${r.host}/${r.repository}:${r.tag}`;

/** The layout directory of an image under the images directory: <host>/<repository>/<first tag>. */
export function layoutDirOf(imagesDir: string, ref: ImageReference): string {
  return path.join(imagesDir, ref.host, ...ref.repository.split("/"), ref.tag);
}

/** Writes `oci-layout` and `index.json` (the blobs are written before, by oci.ts). */
export async function writeLayoutIndex(layoutDir: string, refs: readonly ImageReference[], manifest: Descriptor): Promise<void> {
  await writeFile(path.join(layoutDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const manifests = refs.map((r) => ({
    mediaType: manifest.mediaType,
    digest: manifest.digest,
    size: manifest.size,
    annotations: { [CONTAINERD_NAME]: formatReference(r), [REF_NAME]: r.tag },
  }));
  await writeFile(path.join(layoutDir, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.index, manifests }));
}

export interface LayoutEntry {
  readonly ref: ImageReference;
  readonly manifest: Descriptor;
}

/** The images of a layout, from its index.json; fails naming the directory when it is not one. */
export function readLayout(layoutDir: string): LayoutEntry[] {
  let index: { manifests?: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] };
  try {
    const marker = JSON.parse(readFileSync(path.join(layoutDir, "oci-layout"), "utf8")) as { imageLayoutVersion?: string };
    if (marker.imageLayoutVersion !== "1.0.0") throw new Error(`imageLayoutVersion ${marker.imageLayoutVersion}`);
    index = JSON.parse(readFileSync(path.join(layoutDir, "index.json"), "utf8")) as typeof index;
  } catch (error) {
    throw new Error(`${layoutDir} is not an OCI image layout (${(error as Error).message}): run \`kok images build\``);
  }
  return (index.manifests ?? []).map((m) => {
    const name = m.annotations?.[CONTAINERD_NAME];
    if (!name) throw new Error(`${layoutDir}/index.json: manifest ${m.digest} has no ${CONTAINERD_NAME} annotation`);
    return { ref: parseReference(name), manifest: { mediaType: m.mediaType, digest: m.digest, size: m.size } };
  });
}

/** A blob's bytes (manifests and configs; layers are streamed by the push client). */
export function readBlob(layoutDir: string, digest: string): Buffer {
  return readFileSync(blobPath(layoutDir, digest));
}
