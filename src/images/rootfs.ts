/**
 * Layer contents: files of unpacked Debian packages, the small base every image shares (what the
 * distroless base of upstream's images provides: users and groups, nsswitch.conf, CA certificates,
 * time zones, /tmp), and the busybox applet links. Modes are normalised (directories 0755, files
 * 0755 when any execute bit is set, else 0644), so neither the umask nor the user who unpacked the
 * packages changes a layer.
 */
import { execFileSync } from "node:child_process";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import * as path from "node:path";
import type { UnpackedDeb } from "./debs";
import type { TarEntry } from "./tar";

/** uid/gid of distroless's `nonroot`, which CoreDNS's upstream image runs as. */
export const NONROOT = 65532;

const fileMode = (mode: number) => (mode & 0o111 ? 0o755 : 0o644);

/**
 * The entries of a directory tree, placed under `prefix`, keeping only paths `keep` accepts
 * (relative to the tree, "/"-separated; `keep` sees every path, also below a directory it refuses).
 */
export function treeEntries(root: string, keep: (rel: string) => boolean = () => true, prefix = ""): TarEntry[] {
  const entries: TarEntry[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      const child = rel ? `${rel}/${name}` : name;
      const full = path.join(root, child);
      const stat = lstatSync(full);
      const at = prefix ? `${prefix}/${child}` : child;
      if (stat.isDirectory()) {
        if (keep(child)) entries.push({ type: "dir", path: at });
        walk(child);
      } else if (keep(child)) {
        if (stat.isSymbolicLink()) entries.push({ type: "symlink", path: at, target: readlinkSync(full) });
        else if (stat.isFile()) entries.push({ type: "file", path: at, source: full, mode: fileMode(stat.mode) });
        else throw new Error(`${full}: neither a file, a directory nor a symlink; images hold no device files`);
      }
    }
  };
  walk("");
  return entries;
}

/** Every file of some packages, documentation and manual pages left out (as slim images do). */
export function packageEntries(debs: readonly UnpackedDeb[]): TarEntry[] {
  const seen = new Map<string, TarEntry>();
  const skip = (rel: string) => /^usr\/share\/(doc|man|info|lintian|bug|locale)(\/|$)/.test(rel);
  for (const deb of debs) {
    for (const entry of treeEntries(deb.tree, (rel) => !skip(rel))) {
      const before = seen.get(entry.path);
      // Packages share directories; a file given twice would be a conflict dpkg refuses too.
      if (before && !(before.type === "dir" && entry.type === "dir")) throw new Error(`${entry.path} is in two packages (${deb.name} and an earlier one)`);
      seen.set(entry.path, entry);
    }
  }
  return [...seen.values()];
}

const text = (p: string, content: string, mode = 0o644): TarEntry => ({ type: "file", path: p, source: Buffer.from(content), mode });

/**
 * The base layer: distroless's users (root, nobody, nonroot) and groups, nsswitch.conf, the CA
 * bundle made the way update-ca-certificates makes it (Mozilla's certificates of Debian's
 * ca-certificates, in name order), tzdata's zoneinfo, /tmp (1777), /root and /home/nonroot.
 */
export function baseEntries(caCertificates: UnpackedDeb, tzdata: UnpackedDeb): TarEntry[] {
  const mozilla = path.join(caCertificates.tree, "usr/share/ca-certificates/mozilla");
  const certs = readdirSync(mozilla).filter((f) => f.endsWith(".crt")).sort();
  if (certs.length === 0) throw new Error(`${caCertificates.deb}: no certificates under usr/share/ca-certificates/mozilla`);
  const bundle = certs.map((f) => readFileSync(path.join(mozilla, f), "utf8").replace(/\n*$/, "\n")).join("");
  const zoneinfo = treeEntries(path.join(tzdata.tree, "usr/share/zoneinfo"), () => true, "usr/share/zoneinfo");
  if (!zoneinfo.some((e) => e.path === "usr/share/zoneinfo/UTC")) throw new Error(`${tzdata.deb}: no usr/share/zoneinfo/UTC`);
  return [
    text("etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
    text("etc/group", "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\ntty:x:5:\nstaff:x:50:\n"),
    text("etc/nsswitch.conf", "hosts: files dns\nnetworks: files\npasswd: files\ngroup: files\n"),
    text("etc/ssl/certs/ca-certificates.crt", bundle),
    ...zoneinfo,
    { type: "symlink", path: "etc/localtime", target: "/usr/share/zoneinfo/UTC" },
    { type: "dir", path: "tmp", mode: 0o1777 },
    { type: "dir", path: "root", mode: 0o700 },
    { type: "dir", path: "home/nonroot", mode: 0o700, uid: NONROOT, gid: NONROOT },
  ];
}

/**
 * busybox as Docker's busybox image lays it out: /bin/busybox with every applet a hard link
 * beside it (so `sh`, `wget`, `httpd`, `nslookup` are on PATH), plus the users, groups and
 * directories that image has. The applet list comes from the binary itself.
 */
export function busyboxEntries(busyboxStatic: UnpackedDeb): TarEntry[] {
  return [
    ...busyboxApplets(busyboxStatic, ["sh", "wget", "httpd", "nslookup"]),
    text("etc/passwd", "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n"),
    text("etc/group", "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nnogroup:x:65534:\n"),
    { type: "dir", path: "tmp", mode: 0o1777 },
    { type: "dir", path: "root", mode: 0o700 },
    { type: "dir", path: "home" },
    { type: "dir", path: "usr/sbin" },
    { type: "dir", path: "var/www" },
    { type: "dir", path: "var/spool/mail" },
  ];
}

/**
 * /bin/busybox and every applet it lists as a hard link beside it; throws naming any of `required`
 * the binary lacks.
 */
export function busyboxApplets(busyboxStatic: UnpackedDeb, required: readonly string[]): TarEntry[] {
  const binary = path.join(busyboxStatic.tree, "bin/busybox");
  const applets = execFileSync(binary, ["--list"], { encoding: "utf8" }).split("\n").filter((a) => a && a !== "busybox" && !a.includes("/"));
  const missing = required.filter((r) => !applets.includes(r));
  if (missing.length > 0) throw new Error(`${binary} has no ${missing.join(", ")} applet (its applets: ${applets.join(" ")})`);
  return [{ type: "file", path: "bin/busybox", source: binary, mode: 0o755 }, ...applets.map((a): TarEntry => ({ type: "hardlink", path: `bin/${a}`, target: "bin/busybox" }))];
}
