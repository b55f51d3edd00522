/**
 * The layer writer (src/images/tar.ts, oci.ts): GNU tar reads what it writes with the modes,
 * owners, times and links given; the same entries in any order give the same bytes; long paths and
 * file capabilities travel in PAX records; hard links are ordered so extraction can make them; the
 * gzip header carries no time. Bad entries are refused naming the path.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { netBindServiceCapability } from "../../src/images/definitions";
import { imageConfig, imageManifest, MEDIA_TYPES, writeLayer, type LayerBlob } from "../../src/images/oci";
import { normalizeEntries, type TarEntry } from "../../src/images/tar";
import { listLayer, paxRecords } from "../support/oci-layout";

const work = mkdtempSync(path.join(tmpdir(), "kok-images-tar-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let layouts = 0;
async function layer(entries: TarEntry[]): Promise<LayerBlob & { file: string }> {
  const dir = path.join(work, `layout-${layouts++}`);
  const blob = await writeLayer(dir, normalizeEntries(entries));
  return { ...blob, file: path.join(dir, "blobs", "sha256", blob.digest.slice(7)) };
}

const source = path.join(work, "binary");
writeFileSync(source, Buffer.alloc(70_000, 7));
const longPath = `usr/share/${"a-rather-long-directory-name/".repeat(4)}file-with-a-long-name.txt`;

const sample = (): TarEntry[] => [
  { type: "file", path: "usr/local/bin/tool", source, mode: 0o755 },
  { type: "file", path: "etc/passwd", source: Buffer.from("root:x:0:0::/root:/bin/sh\n") },
  { type: "dir", path: "tmp", mode: 0o1777 },
  { type: "dir", path: "home/nonroot", mode: 0o700, uid: 65532, gid: 65532 },
  { type: "symlink", path: "etc/localtime", target: "/usr/share/zoneinfo/UTC" },
  { type: "file", path: longPath, source: Buffer.from("long\n") },
  { type: "file", path: "coredns", source: Buffer.from("binary"), mode: 0o755, xattrs: { "security.capability": netBindServiceCapability() } },
];

describe("layers", () => {
  it("GNU tar lists every entry, with parents added, sorted, owned by root unless said, at the epoch", async () => {
    const blob = await layer(sample());
    const listed = listLayer(blob.file);
    expect(listed.map((e) => e.path)).toEqual(["coredns", "etc", "etc/localtime", "etc/passwd", "home", "home/nonroot", "tmp", "usr", "usr/local", "usr/local/bin", "usr/local/bin/tool", "usr/share", ...longPath.split("/").slice(2).map((_, i, all) => `usr/share/${all.slice(0, i + 1).join("/")}`)]);
    const by = Object.fromEntries(listed.map((e) => [e.path, e]));
    expect(by["usr/local/bin/tool"]).toMatchObject({ mode: "-rwxr-xr-x", owner: "0/0" });
    expect(by["etc/passwd"]).toMatchObject({ mode: "-rw-r--r--", owner: "0/0" });
    expect(by["tmp"]).toMatchObject({ mode: "drwxrwxrwt", owner: "0/0" });
    expect(by["home/nonroot"]).toMatchObject({ mode: "drwx------", owner: "65532/65532" });
    expect(by["usr/local"]).toMatchObject({ mode: "drwxr-xr-x", owner: "0/0" });
    expect(by["etc/localtime"]).toMatchObject({ mode: "lrwxrwxrwx", link: "/usr/share/zoneinfo/UTC" });
    expect(new Set(listed.map((e) => e.time))).toEqual(new Set(["1970-01-01 00:00:00"]));
  });

  it("extracted, the files hold their content (a 100-byte-plus path included)", async () => {
    const blob = await layer(sample());
    const out = mkdtempSync(path.join(work, "x-"));
    execFileSync("tar", ["-xzf", blob.file, "-C", out]);
    expect(readFileSync(path.join(out, "usr/local/bin/tool")).equals(readFileSync(source))).toBe(true);
    expect(readFileSync(path.join(out, longPath), "utf8")).toBe("long\n");
  });

  it("the same entries in another order give the same bytes; a changed byte changes both digests", async () => {
    const a = await layer(sample());
    const b = await layer(sample().reverse());
    expect(b.digest).toBe(a.digest);
    expect(b.diffId).toBe(a.diffId);
    expect(readFileSync(b.file).equals(readFileSync(a.file))).toBe(true);
    const changed = sample().map((e) => (e.path === "etc/passwd" ? { ...e, source: Buffer.from("root:x:0:0::/root:/bin/ash\n") } : e));
    const c = await layer(changed);
    expect(c.digest).not.toBe(a.digest);
    expect(c.diffId).not.toBe(a.diffId);
  });

  it("digest and diff_id are the sha256 of the gzip and of the tar, and the gzip header has no time", async () => {
    const blob = await layer(sample());
    const gz = readFileSync(blob.file);
    expect(blob.digest).toBe(`sha256:${createHash("sha256").update(gz).digest("hex")}`);
    expect(blob.size).toBe(gz.length);
    const tar = gunzipSync(gz);
    expect(blob.diffId).toBe(`sha256:${createHash("sha256").update(tar).digest("hex")}`);
    expect(blob.tarSize).toBe(tar.length);
    // ID1 ID2 CM FLG MTIME(4) XFL OS: deflate, no flags, mtime 0.
    expect([...gz.subarray(0, 8)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    expect(readdirSync(path.dirname(blob.file)).filter((f) => f.startsWith("."))).toEqual([]);
  });

  it("carries a file capability as a PAX xattr record: cap_net_bind_service, effective", async () => {
    const blob = await layer(sample());
    const records = paxRecords(blob.file, "coredns");
    const cap = records["SCHILY.xattr.security.capability"]!;
    expect(cap.length).toBe(20);
    expect(cap.readUInt32LE(0)).toBe(0x02000001);
    expect(cap.readUInt32LE(4)).toBe(1 << 10);
    expect(paxRecords(blob.file, longPath).path?.toString()).toBe(longPath);
  });

  it("puts the content of hard-linked names on the first in sorted order, so links follow it", async () => {
    const blob = await layer([
      { type: "file", path: "bin/busybox", source: Buffer.from("bb"), mode: 0o755 },
      { type: "hardlink", path: "bin/[", target: "bin/busybox" },
      { type: "hardlink", path: "bin/sh", target: "bin/busybox" },
    ]);
    const listed = listLayer(blob.file);
    expect(listed.map((e) => [e.path, e.mode[0], e.link])).toEqual([["bin", "d", undefined], ["bin/[", "-", undefined], ["bin/busybox", "h", "bin/["], ["bin/sh", "h", "bin/["]]);
    const out = mkdtempSync(path.join(work, "x-"));
    execFileSync("tar", ["-xzf", blob.file, "-C", out]);
    expect(readFileSync(path.join(out, "bin/sh"), "utf8")).toBe("bb");
  });

  it("refuses absolute or escaping paths, duplicates, entries under a file and links to nothing", () => {
    expect(() => normalizeEntries([{ type: "dir", path: "/etc" }])).toThrow(/"\/etc": want a relative path/);
    expect(() => normalizeEntries([{ type: "dir", path: "a/../../etc" }])).toThrow(/"a\/..\/..\/etc"/);
    expect(() => normalizeEntries([{ type: "dir", path: "etc" }, { type: "dir", path: "etc" }])).toThrow(/"etc" is given twice/);
    expect(() => normalizeEntries([{ type: "file", path: "etc", source: Buffer.from("") }, { type: "dir", path: "etc/x" }])).toThrow(/under "etc", which is not a directory/);
    expect(() => normalizeEntries([{ type: "hardlink", path: "bin/sh", target: "bin/busybox" }])).toThrow(/"bin\/sh" → "bin\/busybox": the target must be a file/);
  });
});

describe("image config and manifest", () => {
  it("are OCI documents with the run settings, diff_ids in layer order and the epoch as the only time", () => {
    const config = JSON.parse(
      imageConfig({ entrypoint: ["/coredns"], env: ["PATH=/bin"], user: "nonroot:nonroot", workingDir: "/", exposedPorts: ["53/udp", "53/tcp"] }, [
        { diffId: "sha256:aa", comment: "base" },
        { diffId: "sha256:bb", comment: "coredns" },
      ]).toString(),
    ) as Record<string, unknown>;
    expect(config).toEqual({
      created: "1970-01-01T00:00:00Z",
      architecture: "amd64",
      os: "linux",
      config: { User: "nonroot:nonroot", ExposedPorts: { "53/tcp": {}, "53/udp": {} }, Env: ["PATH=/bin"], Entrypoint: ["/coredns"], WorkingDir: "/" },
      rootfs: { type: "layers", diff_ids: ["sha256:aa", "sha256:bb"] },
      history: [
        { created: "1970-01-01T00:00:00Z", created_by: "kok images build", comment: "base" },
        { created: "1970-01-01T00:00:00Z", created_by: "kok images build", comment: "coredns" },
      ],
    });
    const manifest = JSON.parse(imageManifest({ mediaType: MEDIA_TYPES.config, digest: "sha256:cc", size: 3 }, [{ mediaType: MEDIA_TYPES.layer, digest: "sha256:dd", size: 4 }]).toString()) as Record<string, unknown>;
    expect(manifest).toEqual({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: "sha256:cc", size: 3 },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: "sha256:dd", size: 4 }],
    });
  });
});
