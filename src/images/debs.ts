/**
 * Debian packages as image content: `apt-get download` of apt's candidate version (nothing is
 * installed on this machine), unpacked with `dpkg-deb -x`, cached under <images dir>/debs/ per
 * package and version, so a rebuild does not fetch again and the same apt state gives the same
 * files. `withDependencies` follows Depends and Pre-Depends (first alternative) the way apt would,
 * minus packages an image without a package manager or init system has no use for.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import * as path from "node:path";

export interface UnpackedDeb {
  readonly name: string;
  readonly version: string;
  /** The .deb file. */
  readonly deb: string;
  /** Its files, unpacked. */
  readonly tree: string;
}

function run(command: string, args: readonly string[], cwd?: string): string {
  try {
    return execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(" ")} failed: ${(e.stderr || e.message).trim().split("\n").slice(-3).join(" / ")}`);
  }
}

/** apt's candidate versions of some packages, from one `apt-cache policy` (it takes a second to load). */
function candidates(names: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  let current: string | undefined;
  for (const line of run("apt-cache", ["policy", ...names]).split("\n")) {
    const section = /^(\S+):$/.exec(line);
    if (section) current = section[1]!.replace(/:amd64$/, "");
    const candidate = /^\s+Candidate:\s*(\S+)/.exec(line)?.[1];
    if (current && candidate && candidate !== "(none)") found.set(current, candidate);
  }
  return found;
}

/** Package names of a Depends/Pre-Depends field: the first alternative of each, without version or arch. */
export function parseDepends(field: string): string[] {
  return field
    .split(",")
    .map((clause) => clause.split("|")[0]!.trim().split(/[\s(]/)[0]!.replace(/:.*$/, ""))
    .filter((name) => name.length > 0);
}

/** Packages never pulled in as dependencies: package management, init and configuration tooling. */
export const NOT_IN_IMAGES: ReadonlySet<string> = new Set(["debconf", "dpkg", "init-system-helpers", "lsb-base", "sysvinit-utils", "debianutils", "perl-base", "libc-bin", "base-files", "usrmerge", "usr-is-merged"]);

export class DebCache {
  private readonly updated = { done: false };
  private readonly unpacked = new Map<string, UnpackedDeb>();
  private readonly versions = new Map<string, string>();

  constructor(
    private readonly dir: string,
    /** Told about each download, the slow part of a first build. */
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /** Looks up the candidate versions of `names` not known yet (at once: apt-cache takes a second to start); one `apt-get update` if apt knows some not. */
  resolve(names: readonly string[]): void {
    let unknown = names.filter((n) => !this.versions.has(n));
    for (const attempt of [0, 1]) {
      if (unknown.length === 0) return;
      if (attempt === 1) {
        if (this.updated.done) break;
        this.updated.done = true;
        run("apt-get", ["update"]);
      }
      for (const [name, version] of candidates(unknown)) this.versions.set(name, version);
      unknown = unknown.filter((n) => !this.versions.has(n));
    }
    if (unknown.length > 0) throw new Error(`Debian package(s) ${unknown.join(", ")} unknown to apt (after apt-get update): check /etc/apt/sources.list`);
  }

  /** One package at apt's candidate version, downloaded and unpacked once per version. */
  get(name: string): UnpackedDeb {
    const known = this.unpacked.get(name);
    if (known) return known;
    this.resolve([name]);
    const version = this.versions.get(name)!;
    const entry = path.join(this.dir, `${name}_${version.replace(/:/g, "%3a")}`);
    if (!existsSync(path.join(entry, "tree"))) {
      mkdirSync(this.dir, { recursive: true });
      this.log(`fetching Debian package ${name} ${version}`);
      // Built beside the entry and renamed into place: a killed build leaves no half entry.
      const work = mkdtempSync(`${entry}.tmp-`);
      try {
        try {
          run("apt-get", ["download", `${name}=${version}`], work);
        } catch (error) {
          if (this.updated.done) throw error;
          this.updated.done = true;
          run("apt-get", ["update"]);
          run("apt-get", ["download", `${name}=${version}`], work);
        }
        const deb = readdirSync(work).find((f) => f.endsWith(".deb"));
        if (!deb) throw new Error(`apt-get download ${name}=${version} left no .deb in ${work}`);
        run("dpkg-deb", ["-x", path.join(work, deb), path.join(work, "tree")]);
        rmSync(entry, { recursive: true, force: true });
        renameSync(work, entry);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    }
    const deb = readdirSync(entry).find((f) => f.endsWith(".deb"));
    if (!deb) throw new Error(`${entry}: no .deb (a damaged cache entry: delete it and build again)`);
    const unpacked = { name, version, deb: path.join(entry, deb), tree: path.join(entry, "tree") };
    this.unpacked.set(name, unpacked);
    return unpacked;
  }

  /** `roots` and everything they depend on (but NOT_IN_IMAGES and `skip`), sorted by name. */
  withDependencies(roots: readonly string[], skip: readonly string[] = []): UnpackedDeb[] {
    const excluded = new Set([...NOT_IN_IMAGES, ...skip]);
    const found = new Map<string, UnpackedDeb>();
    // Breadth first, one apt-cache call per level of the dependency tree.
    let level = [...new Set(roots)].filter((n) => !excluded.has(n));
    while (level.length > 0) {
      this.resolve(level);
      const next = new Set<string>();
      for (const name of level) {
        const deb = this.get(name);
        found.set(name, deb);
        const fields = run("dpkg-deb", ["-f", deb.deb, "Depends", "Pre-Depends"]);
        for (const line of fields.split("\n")) {
          const value = line.replace(/^(Pre-)?Depends:\s*/, "");
          if (value.trim()) for (const dep of parseDepends(value)) next.add(dep);
        }
      }
      level = [...next].filter((n) => !found.has(n) && !excluded.has(n));
    }
    return [...found.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}
