/**
 * The package as npm publishes it, built from the working tree: `dist/` compiled now with
 * tsconfig.build.json (a stale dist/ would prove nothing) into a staging directory beside
 * package.json, LICENSE, README.md and the other entries of package.json's `files`; then what
 * `npm pack` lists or writes for it. The repository's own dist/ is never touched, so the suites
 * that compile it can run at the same time.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { execFileSync } from "node:child_process";
import * as path from "node:path";

export const REPO = path.resolve(__dirname, "..", "..");

export interface PackList {
  /** Paths inside the package, e.g. "dist/index.js". */
  readonly files: readonly string[];
  readonly size: number;
  readonly unpackedSize: number;
}

/** Builds the package into `<work>/package` and returns that directory. */
export function stagePackage(work: string): string {
  const dir = path.join(work, "package");
  mkdirSync(dir, { recursive: true });
  const tsc = path.join(REPO, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", path.join(REPO, "tsconfig.build.json"), "--outDir", path.join(dir, "dist")], { cwd: REPO, stdio: "pipe" });
  const manifest = JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as { files?: string[] };
  const entries = new Set(["package.json", "LICENSE", "README.md", ...(manifest.files ?? [])]);
  entries.delete("dist");
  for (const entry of entries) {
    if (existsSync(path.join(REPO, entry))) cpSync(path.join(REPO, entry), path.join(dir, entry), { recursive: true });
  }
  return dir;
}

const npm = (dir: string, args: string[]) => execFileSync("npm", [...args, "--json", "--ignore-scripts"], { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** What `npm pack --dry-run` would put into the tarball of the staged package. */
export function packList(dir: string): PackList {
  const [result] = JSON.parse(npm(dir, ["pack", "--dry-run"])) as Array<{ files: Array<{ path: string }>; size: number; unpackedSize: number }>;
  return { files: result.files.map((f) => f.path), size: result.size, unpackedSize: result.unpackedSize };
}

/**
 * Packs the staged package and installs the tarball's contents as `node_modules/kube-on-kube` of
 * a new application directory `<work>/app`, next to links to this repository's dependencies,
 * as an application that installed the package would have them. Peers that `omit` names (e.g.
 * "@pulumi/command") are left out. Run Node there with --preserve-symlinks so the linked
 * packages resolve from the application's node_modules, as installed ones do.
 */
export function installPacked(work: string, staged: string, omit: readonly string[] = []): string {
  const [packed] = JSON.parse(npm(staged, ["pack", "--pack-destination", work])) as Array<{ filename: string }>;
  const app = path.join(work, "app");
  const target = path.join(app, "node_modules", "kube-on-kube");
  mkdirSync(target, { recursive: true });
  execFileSync("tar", ["-xzf", path.join(work, packed.filename), "-C", target, "--strip-components=1"]);
  const modules = path.join(REPO, "node_modules");
  const link = (name: string) => {
    if (omit.includes(name) || existsSync(path.join(app, "node_modules", name))) return;
    symlinkSync(path.join(modules, name), path.join(app, "node_modules", name));
  };
  for (const entry of readdirSync(modules)) {
    if (entry.startsWith(".")) continue;
    if (!entry.startsWith("@")) {
      link(entry);
      continue;
    }
    // A scope: its packages one by one, so that an omitted one stays out.
    mkdirSync(path.join(app, "node_modules", entry), { recursive: true });
    for (const name of readdirSync(path.join(modules, entry))) link(`${entry}/${name}`);
  }
  return app;
}
