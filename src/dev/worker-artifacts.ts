/**
 * Real worker artifacts for the integration tests and the demo's package mirror, packed from the
 * toolchain's own builds (tools/toolchain.sh: containerd, runc, CNI plugins, kubelet) into the
 * upstream release layouts WorkerNode expects, and cached outside the work tree:
 *   containerd-<v>-linux-amd64.tar.gz  (bin/containerd, bin/ctr, bin/containerd-shim-runc-v2)
 *   runc.amd64                         (the runc binary, named as upstream names it)
 *   cni-plugins-linux-amd64-<v>.tgz    (bridge, host-local, loopback, portmap, ...)
 *   kubelet-<v>-linux-amd64            (the toolchain's kubelet)
 * The archives are deterministic (entries sorted, owner 0, one fixed mtime, gzip without a name
 * or timestamp), so the same binaries give the same sha256. Debian's containerd 1.6 is not used
 * any more: the v1.36 kubelet expects containerd 2, and the upgrade tests change the kubelet, not
 * the runtime (test/support/artifacts.ts bumps a kubelet build).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, renameSync, rmSync, statSync } from "node:fs";
import { homedir } from "node:os";
import * as path from "node:path";
import { toolchainBinary, toolchainDir } from "./toolchain";

export const CACHE = path.join(homedir(), ".cache", "kube-on-kube", "artifacts");
export const TOOLCHAIN_KUBELET = path.join(toolchainDir(), "bin", "kubelet");

export interface BuiltArtifact {
  readonly file: string;
  readonly version: string;
}

export interface WorkerArtifacts {
  readonly containerd: BuiltArtifact;
  readonly runc: BuiltArtifact;
  readonly cni: BuiltArtifact;
  readonly kubelet: BuiltArtifact;
  /** Where the kubelet binary came from, for test names and reports. */
  readonly kubeletSource: string;
  /** Arguments that make the kubelet binary print its version. */
  readonly kubeletVersionCommand: string;
}

const CONTAINERD_BINARIES = ["containerd", "containerd-shim-runc-v2", "ctr"] as const;
/** The plugins a worker needs (the network add-on of issue 16 uses bridge/host-local/portmap/loopback). */
const REQUIRED_CNI_PLUGINS = ["bridge", "host-local", "loopback", "portmap"] as const;
/** 2020-01-01T00:00:00Z: every archive entry's mtime, so repacking gives the same bytes. */
const FIXED_MTIME = "@1577836800";

/** The toolchain's CNI plugin directory (tools/toolchain-env.sh exports it as KOK_CNI_BIN_DIR). */
export function cniBinDir(): string {
  return process.env.KOK_CNI_BIN_DIR || path.join(toolchainDir(), "cni", "bin");
}

function cniPlugins(): { dir: string; plugins: string[] } {
  const dir = cniBinDir();
  const plugins = existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith(".")).sort() : [];
  const missing = REQUIRED_CNI_PLUGINS.filter((p) => !plugins.includes(p));
  if (missing.length) {
    throw new Error(`CNI plugins ${missing.join(", ")} not found in ${dir}: build them with \`bash tools/toolchain.sh cni-plugins\` (or set KOK_CNI_BIN_DIR)`);
  }
  return { dir, plugins };
}

/** The first `v1.2.3…` a binary prints for `args`, without the "v" unless `keepV`. */
function printedVersion(binary: string, args: string[], keepV = false): string {
  // CNI plugins print their version on stderr and exit 1 when run without CNI_COMMAND.
  const run = spawnSync(binary, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
  if (run.error) throw run.error;
  const out = `${run.stdout}${run.stderr}`;
  const m = /v?(\d+\.\d+\.\d+[0-9A-Za-z.+~-]*)/.exec(out);
  if (!m) throw new Error(`${binary} ${args.join(" ")} printed no version: ${out.slice(0, 200)}`);
  return keepV ? `v${m[1]}` : m[1];
}

/** A key of the inputs' identity (path, size, mtime): a rebuilt toolchain binary gets a new cache entry. */
function inputsKey(files: readonly string[]): string {
  const h = createHash("sha256");
  for (const f of files) {
    const s = statSync(f);
    h.update(`${f}\0${s.size}\0${s.mtimeMs}\0`);
  }
  return h.digest("hex").slice(0, 12);
}

/** A deterministic .tar.gz of `entries` (relative to `cwd`), written atomically. */
function tarball(out: string, cwd: string, entries: readonly string[]): void {
  const part = `${out}.part`;
  const tar = ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", `--mtime=${FIXED_MTIME}`, "--mode=u+rwX,go+rX,go-w", "--format=gnu"];
  execFileSync("bash", ["-c", 'set -o pipefail; tar -c "$@" | gzip -n -9 > "$OUT"', "tar", ...tar, "-C", cwd, ...entries], { env: { ...process.env, OUT: part } });
  renameSync(part, out);
}

/** Makes `file` once (in its own cache directory) with `make(tmpDir)`; returns it. */
function cached(dir: string, name: string, make: (out: string, work: string) => void): string {
  const file = path.join(dir, name);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(path.join(dir, ".work-"));
  try {
    make(file, work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return file;
}

function containerdArtifact(): BuiltArtifact {
  const bins = CONTAINERD_BINARIES.map((b) => toolchainBinary(b));
  const version = printedVersion(bins[0], ["--version"]);
  const name = `containerd-${version}-linux-amd64.tar.gz`;
  const file = cached(path.join(CACHE, `containerd-${version}-${inputsKey(bins)}`), name, (out, work) => {
    mkdirSync(path.join(work, "bin"));
    for (const b of bins) copyFileSync(b, path.join(work, "bin", path.basename(b)));
    tarball(out, work, ["bin"]);
  });
  return { file, version };
}

function runcArtifact(): BuiltArtifact {
  const runc = toolchainBinary("runc");
  const version = printedVersion(runc, ["--version"]);
  const file = cached(path.join(CACHE, `runc-${version}-${inputsKey([runc])}`), "runc.amd64", (out) => {
    copyFileSync(runc, `${out}.part`);
    renameSync(`${out}.part`, out);
  });
  return { file, version };
}

function cniArtifact(): BuiltArtifact {
  const { dir, plugins } = cniPlugins();
  const version = printedVersion(path.join(dir, "bridge"), [], true);
  const name = `cni-plugins-linux-amd64-${version}.tgz`;
  const file = cached(path.join(CACHE, `cni-${version}-${inputsKey(plugins.map((p) => path.join(dir, p)))}`), name, (out, work) => {
    // Copies, so the archive is made from regular files whatever the toolchain links.
    for (const p of plugins) copyFileSync(path.join(dir, p), path.join(work, p));
    tarball(out, work, plugins.map((p) => `./${p}`));
  });
  return { file, version };
}

function kubeletArtifact(): BuiltArtifact {
  const kubelet = toolchainBinary("kubelet");
  const version = printedVersion(kubelet, ["--version"], true);
  const file = cached(path.join(CACHE, `kubelet-${version}-${inputsKey([kubelet])}`), `kubelet-${version}-linux-amd64`, (out) => {
    copyFileSync(kubelet, `${out}.part`);
    renameSync(`${out}.part`, out);
  });
  return { file, version };
}

/** Packs (once per toolchain build) and returns the artifacts; a missing toolchain part names its build command. */
export function workerArtifacts(): WorkerArtifacts {
  const problems: string[] = [];
  const attempt = <T>(make: () => T): T | undefined => {
    try {
      return make();
    } catch (error) {
      problems.push(error instanceof Error ? error.message : String(error));
      return undefined;
    }
  };
  const containerd = attempt(containerdArtifact);
  const runc = attempt(runcArtifact);
  const cni = attempt(cniArtifact);
  const kubelet = attempt(kubeletArtifact);
  if (!containerd || !runc || !cni || !kubelet) throw new Error(`the worker artifacts cannot be packed:\n  ${problems.join("\n  ")}`);
  return { containerd, runc, cni, kubelet, kubeletSource: `the toolchain's kubelet (${TOOLCHAIN_KUBELET})`, kubeletVersionCommand: "--version" };
}

/** Puts the four artifacts into a mirror directory. */
export function fillMirror(artifacts: WorkerArtifacts, dir: string): void {
  for (const a of [artifacts.containerd, artifacts.runc, artifacts.cni, artifacts.kubelet]) placeArtifact(a.file, dir);
}

/**
 * Puts a file into a mirror directory (under `name`, default its own): a hard link where the
 * source and the directory share a file system, so no 200 MB copy per run; a copy otherwise.
 */
export function placeArtifact(from: string, dir: string, name = path.basename(from)): string {
  const to = path.join(dir, name);
  // The file itself: a link to a symlink would be a symlink, which the mirror does not serve.
  const file = realpathSync(from);
  try {
    linkSync(file, to);
  } catch {
    copyFileSync(file, to);
  }
  return to;
}
