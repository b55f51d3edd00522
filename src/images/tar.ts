/**
 * A deterministic tar writer for image layers. The same entries always give the same bytes:
 * entries sorted by path, every parent directory present, mtime 0, owner and group numeric only
 * (no user or group names), modes given explicitly, and PAX headers (with fixed names) only where
 * ustar cannot say it: paths or link targets over 100 bytes and extended attributes (a file
 * capability such as CoreDNS's cap_net_bind_service). Contents are streamed from their files, so a
 * 100 MB binary is never held in memory.
 */
import { createReadStream, statSync } from "node:fs";

interface Common {
  /** Relative, "/"-separated, no leading "/" or trailing "/": "usr/local/bin/etcd". */
  readonly path: string;
  /** Permission bits with setuid/setgid/sticky (0o1777 for /tmp). Default 0o755 (dir) / 0o644 (file). */
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

export type TarEntry =
  | (Common & { readonly type: "dir" })
  | (Common & { readonly type: "file"; readonly source: string | Buffer; readonly xattrs?: Readonly<Record<string, Buffer>> })
  | (Common & { readonly type: "symlink"; readonly target: string })
  /** `target` is another entry's path in the same layer. */
  | (Common & { readonly type: "hardlink"; readonly target: string });

const BLOCK = 512;

function checkPath(p: string, what: string): void {
  if (!p || p.startsWith("/") || p.endsWith("/") || p.split("/").some((s) => s === "" || s === "." || s === "..") || p.includes("\0")) {
    throw new Error(`tar entry ${what} "${p}": want a relative path without empty, "." or ".." segments`);
  }
}

/**
 * The entries in write order: sorted by path (byte order, so the result does not depend on the
 * locale), duplicates refused, and every missing parent directory added as root-owned 0755.
 */
export function normalizeEntries(entries: readonly TarEntry[]): TarEntry[] {
  const byPath = new Map<string, TarEntry>();
  for (const entry of entries) {
    checkPath(entry.path, "path");
    if (entry.type === "hardlink") checkPath(entry.target, `${entry.path} link target`);
    if (byPath.has(entry.path)) throw new Error(`tar entry "${entry.path}" is given twice`);
    byPath.set(entry.path, entry);
  }
  for (const entry of [...byPath.values()]) {
    const parts = entry.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      const existing = byPath.get(parent);
      if (!existing) byPath.set(parent, { type: "dir", path: parent });
      else if (existing.type !== "dir") throw new Error(`tar entry "${entry.path}" is under "${parent}", which is not a directory`);
    }
  }
  reorderHardlinks(byPath);
  return [...byPath.values()].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

/**
 * A hard link must follow its target in the archive, or extraction has nothing to link to; in
 * sorted order `bin/[` comes before `bin/busybox`. So in each group of paths naming one file, the
 * first in sorted order carries the content and the others link to it (as tar itself does with
 * the first name it meets).
 */
function reorderHardlinks(byPath: Map<string, TarEntry>): void {
  const groups = new Map<string, string[]>();
  for (const entry of byPath.values()) {
    if (entry.type !== "hardlink") continue;
    const target = byPath.get(entry.target);
    if (target?.type !== "file") throw new Error(`tar hard link "${entry.path}" → "${entry.target}": the target must be a file entry`);
    groups.set(entry.target, [...(groups.get(entry.target) ?? [entry.target]), entry.path]);
  }
  for (const [file, paths] of groups) {
    const first = paths.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))[0]!;
    if (first === file) continue;
    const content = byPath.get(file)!;
    byPath.set(first, { ...content, path: first });
    for (const p of paths) if (p !== first) byPath.set(p, { type: "hardlink", path: p, target: first, mode: content.mode, uid: content.uid, gid: content.gid });
  }
}

/** The size of a file entry's content. */
export function contentSize(source: string | Buffer): number {
  return typeof source === "string" ? statSync(source).size : source.length;
}

function octal(value: number, width: number): string {
  // width-1 digits and a NUL, as ustar readers expect.
  const text = value.toString(8);
  if (text.length > width - 1) throw new Error(`tar field value ${value} does not fit ${width - 1} octal digits`);
  return text.padStart(width - 1, "0") + "\0";
}

/** One PAX record: "<len> key=value\n", where len counts the whole record itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

interface Header {
  readonly name: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly typeflag: string;
  readonly linkname: string;
}

function headerBlock(h: Header): Buffer {
  const block = Buffer.alloc(BLOCK);
  Buffer.from(h.name).copy(block, 0, 0, 100);
  block.write(octal(h.mode, 8), 100, "ascii");
  block.write(octal(h.uid, 8), 108, "ascii");
  block.write(octal(h.gid, 8), 116, "ascii");
  block.write(octal(h.size, 12), 124, "ascii");
  block.write(octal(0, 12), 136, "ascii"); // mtime: always the epoch
  block.write(h.typeflag, 156, "ascii");
  Buffer.from(h.linkname).copy(block, 157, 0, 100);
  block.write("ustar\0", 257, "ascii");
  block.write("00", 263, "ascii");
  block.write(octal(0, 8), 329, "ascii"); // devmajor
  block.write(octal(0, 8), 337, "ascii"); // devminor
  // The checksum is computed with its own field as eight spaces.
  block.fill(" ", 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return block;
}

const padding = (size: number) => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

const TYPEFLAG = { file: "0", hardlink: "1", symlink: "2", dir: "5" } as const;

/** The header blocks of one entry (a PAX header first when needed) and its content size. */
function headersOf(entry: TarEntry): { blocks: Buffer[]; size: number } {
  const name = entry.type === "dir" ? `${entry.path}/` : entry.path;
  const linkname = entry.type === "symlink" || entry.type === "hardlink" ? entry.target : "";
  const size = entry.type === "file" ? contentSize(entry.source) : 0;
  const mode = entry.mode ?? (entry.type === "dir" ? 0o755 : entry.type === "symlink" ? 0o777 : 0o644);
  const records: Buffer[] = [];
  if (Buffer.byteLength(name) > 100) records.push(paxRecord("path", Buffer.from(name)));
  if (Buffer.byteLength(linkname) > 100) records.push(paxRecord("linkpath", Buffer.from(linkname)));
  if (entry.type === "file" && entry.xattrs) {
    for (const key of Object.keys(entry.xattrs).sort()) records.push(paxRecord(`SCHILY.xattr.${key}`, entry.xattrs[key]!));
  }
  const blocks: Buffer[] = [];
  if (records.length > 0) {
    const pax = Buffer.concat(records);
    const base = entry.path.slice(entry.path.lastIndexOf("/") + 1).slice(0, 80);
    blocks.push(headerBlock({ name: `PaxHeaders/${base}`, mode: 0o644, uid: 0, gid: 0, size: pax.length, typeflag: "x", linkname: "" }), pax, padding(pax.length));
  }
  // Over 100 bytes the ustar fields hold the first 100 (headerBlock cuts them); the PAX record wins.
  blocks.push(headerBlock({ name, mode, uid: entry.uid ?? 0, gid: entry.gid ?? 0, size, typeflag: TYPEFLAG[entry.type], linkname }));
  return { blocks, size };
}

/**
 * The archive's bytes, in chunks. `entries` must come from normalizeEntries. A file that changes
 * size while it is read fails the layer rather than writing a corrupt archive.
 */
export async function* tarStream(entries: readonly TarEntry[]): AsyncGenerator<Buffer> {
  for (const entry of entries) {
    const { blocks, size } = headersOf(entry);
    yield* blocks;
    if (entry.type !== "file") continue;
    if (typeof entry.source !== "string") {
      yield entry.source;
    } else {
      let read = 0;
      for await (const chunk of createReadStream(entry.source)) {
        read += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (read !== size) throw new Error(`${entry.source} changed size while it was archived (${size} → ${read} bytes)`);
    }
    yield padding(size);
  }
  yield Buffer.alloc(BLOCK * 2);
}
