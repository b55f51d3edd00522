/**
 * The operator image's application: this package's production install, made the way a user
 * installs a release: `npm run build`, `npm pack`, the tarball unpacked and `npm install
 * --omit=dev` in it. The peers the programs load (@pulumi/pulumi, @pulumi/kubernetes, @pulumi/tls:
 * every non-optional peerDependency) become dependencies at the versions of the project's
 * package-lock.json, which is copied beside; npm keeps every locked version, and the stage fails
 * naming any installed package whose version differs from the lock, so node_modules is the
 * project's lock minus the development packages. No install script runs (`--ignore-scripts`:
 * @pulumi/kubernetes's would download a plugin; nothing in the production tree needs one).
 *
 * A stage is kept under <images dir>/operator-app/<key>, where the key is a sha256 over the
 * files the package is made of (src, provider, docs, README.md, package.json, package-lock.json,
 * tsconfig*.json): an unchanged checkout reuses it without building or installing again.
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";

/** The checkout this file belongs to (src/images → the repository root). */
export const REPO_ROOT = path.resolve(__dirname, "..", "..");

/** What the stage's key covers: everything `npm run build` reads and `npm pack` packs. */
const SOURCES = ["src", "provider", "docs", "README.md", "LICENSE", "package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json"];

export interface AppStage {
  /** The unpacked package with its node_modules: what goes to /usr/lib/kube-on-kube. */
  readonly dir: string;
  readonly name: string;
  readonly version: string;
  /** The package's `bin` (command → file under dir): `kok` → dist/cli/main.js. */
  readonly bins: Readonly<Record<string, string>>;
  /** Every installed npm package (path under node_modules → version), from npm's hidden lockfile. */
  readonly packages: ReadonlyMap<string, string>;
}

interface LockFile {
  packages: Record<string, { version?: string; dev?: boolean; link?: boolean }>;
}

function files(root: string, rel: string, out: string[]): void {
  const full = path.join(root, rel);
  if (!existsSync(full)) return;
  if (statSync(full).isDirectory()) for (const name of readdirSync(full).sort()) files(root, `${rel}/${name}`, out);
  else out.push(rel);
}

/** sha256 over the package's sources (paths and contents). */
export function sourceKey(repo: string = REPO_ROOT): string {
  const hash = createHash("sha256");
  const list: string[] = [];
  for (const source of SOURCES) files(repo, source, list);
  for (const rel of list) hash.update(`${rel}\0`).update(readFileSync(path.join(repo, rel))).update("\0");
  return hash.digest("hex").slice(0, 16);
}

function run(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv): string {
  try {
    return execFileSync(command, args, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(`\`${command} ${args.join(" ")}\` in ${cwd} failed: ${(e.stderr || e.stdout || e.message).trim().split("\n").slice(-5).join(" / ")}`);
  }
}

/** The installed packages of a stage, from node_modules/.package-lock.json (npm's record of the tree). */
function installedPackages(dir: string): Map<string, string> {
  const hidden = JSON.parse(readFileSync(path.join(dir, "node_modules", ".package-lock.json"), "utf8")) as LockFile;
  const found = new Map<string, string>();
  for (const [at, entry] of Object.entries(hidden.packages)) if (at && entry.version && !entry.link) found.set(at, entry.version);
  return new Map([...found].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * package.json for the install: the packed one with the non-optional peers as dependencies (at the
 * lock's versions), no devDependencies and no scripts (nothing of development runs in the image).
 */
export function productionManifest(packed: Record<string, unknown>, lock: LockFile): Record<string, unknown> {
  const peers = (packed.peerDependencies ?? {}) as Record<string, string>;
  const meta = (packed.peerDependenciesMeta ?? {}) as Record<string, { optional?: boolean }>;
  const dependencies = { ...((packed.dependencies ?? {}) as Record<string, string>) };
  for (const name of Object.keys(peers).sort()) {
    if (meta[name]?.optional) continue;
    const locked = lock.packages[`node_modules/${name}`]?.version;
    if (!locked) throw new Error(`peer dependency ${name} is not in package-lock.json: run npm install in the checkout`);
    dependencies[name] = locked;
  }
  const manifest: Record<string, unknown> = { ...packed, dependencies };
  delete manifest.devDependencies;
  delete manifest.scripts;
  return manifest;
}

/** The stage's installed versions against the project's lock: every difference, one line each. */
export function lockDifferences(installed: ReadonlyMap<string, string>, lock: LockFile): string[] {
  const differences: string[] = [];
  for (const [at, version] of installed) {
    const locked = lock.packages[at]?.version;
    if (locked !== version) differences.push(`${at}: installed ${version}, package-lock.json ${locked ?? "has none"}`);
  }
  return differences;
}

/**
 * The production install of this checkout, built once per source key under `stagesDir`. `node` is
 * the Node the build and npm run with (first on PATH, so npm's scripts and tsc use it too).
 */
export function stageApp(stagesDir: string, node: string, log: (line: string) => void = () => undefined, repo: string = REPO_ROOT): AppStage {
  const key = sourceKey(repo);
  const dir = path.join(stagesDir, key);
  if (!existsSync(path.join(dir, "app", "node_modules", ".package-lock.json"))) {
    mkdirSync(stagesDir, { recursive: true });
    // Older stages are of sources no longer checked out: removed, as a rebuild would replace them.
    for (const name of readdirSync(stagesDir)) if (name !== key && !name.includes(".tmp-")) rmSync(path.join(stagesDir, name), { recursive: true, force: true });
    const env = { ...process.env, PATH: `${path.dirname(node)}:${process.env.PATH ?? ""}`, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" };
    const started = Date.now();
    log(`operator: npm run build and npm pack in ${repo}`);
    run("npm", ["run", "build"], repo, env);
    // Built beside the entry and renamed into place: a killed build leaves no half stage.
    const work = mkdtempSync(`${dir}.tmp-`);
    try {
      const packed = JSON.parse(run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], repo, env)) as { filename: string }[];
      const app = path.join(work, "app");
      mkdirSync(app);
      run("tar", ["-xzf", path.join(work, packed[0]!.filename), "-C", app, "--strip-components=1", "--no-same-owner"], work, env);
      const lock = JSON.parse(readFileSync(path.join(repo, "package-lock.json"), "utf8")) as LockFile;
      const manifest = productionManifest(JSON.parse(readFileSync(path.join(app, "package.json"), "utf8")) as Record<string, unknown>, lock);
      writeFileSync(path.join(app, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
      writeFileSync(path.join(app, "package-lock.json"), JSON.stringify(lock, null, 2));
      log(`operator: npm install --omit=dev of ${packed[0]!.filename}`);
      run("npm", ["install", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"], app, env);
      // The lock npm rewrites for the changed manifest is not part of the image: the hidden one is.
      rmSync(path.join(app, "package-lock.json"));
      const differences = lockDifferences(installedPackages(app), lock);
      if (differences.length > 0) throw new Error(`the production install differs from package-lock.json:\n  ${differences.join("\n  ")}`);
      rmSync(dir, { recursive: true, force: true });
      renameSync(work, dir);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    log(`operator: production install staged in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  }
  const app = path.join(dir, "app");
  const manifest = JSON.parse(readFileSync(path.join(app, "package.json"), "utf8")) as { name: string; version: string; bin?: Record<string, string> };
  const bins = Object.fromEntries(Object.entries(manifest.bin ?? {}).map(([name, file]) => [name, path.posix.normalize(file)]));
  return { dir: app, name: manifest.name, version: manifest.version, bins, packages: installedPackages(app) };
}
