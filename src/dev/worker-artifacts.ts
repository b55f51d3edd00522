/**
 * Real worker artifacts for the integration tests and the demo's package mirror, made from Debian's packages (fetched with
 * `apt-get download`, unpacked with `dpkg-deb`) into the upstream release layouts WorkerNode
 * expects, and cached outside the work tree:
 *   containerd-<v>-linux-amd64.tar.gz  (bin/containerd, bin/ctr, bin/containerd-shim-runc-v2)
 *   runc-<v>.amd64                     (the runc binary)
 *   cni-plugins-linux-amd64-<v>.tgz    (bridge, host-local, loopback, ...)
 *   kubelet-<v>-linux-amd64            (the toolchain's kubelet when built; otherwise Debian's
 *                                       kubectl as a stand-in binary, and `kubeletSource` says so)
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import * as path from "node:path";
import { toolchainDir } from "./toolchain";

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
  /** Arguments that make the kubelet binary print its version (`--version`; the stand-in needs `version --client`). */
  readonly kubeletVersionCommand: string;
}

const DEBS = { containerd: "containerd", runc: "runc", cni: "containernetworking-plugins", kubectl: "kubernetes-client" } as const;

function debianVersion(pkg: string): string {
  const candidate = () => /Candidate:\s*(\S+)/.exec(execFileSync("apt-cache", ["policy", pkg], { encoding: "utf8" }))?.[1];
  let version = candidate();
  if (!version || version === "(none)") {
    // A fresh machine may have no package lists yet.
    execFileSync("apt-get", ["update"], { stdio: "pipe" });
    version = candidate();
  }
  if (!version || version === "(none)") throw new Error(`Debian package ${pkg} is unknown to apt even after apt-get update`);
  return version;
}

/** Downloads and unpacks one Debian package; returns the directory it was unpacked into. */
function unpackDeb(pkg: string, work: string): string {
  const download = () => execFileSync("apt-get", ["download", pkg], { cwd: work, stdio: "pipe" });
  try {
    download();
  } catch {
    execFileSync("apt-get", ["update"], { stdio: "pipe" });
    download();
  }
  const deb = readdirSync(work).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
  if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb in ${work}`);
  const tree = path.join(work, `${pkg}-tree`);
  execFileSync("dpkg-deb", ["-x", path.join(work, deb), tree]);
  return tree;
}

/** Upstream-style version from a Debian one: 1.6.20~ds1-1+deb12u3 → 1.6.20~ds1. */
const upstream = (debian: string) => debian.replace(/^\d+:/, "").replace(/-[^-]+$/, "");

function tarball(out: string, cwd: string, entries: string[]): void {
  execFileSync("tar", ["-czf", out, "--owner=0", "--group=0", "--mtime=2020-01-01", "-C", cwd, ...entries]);
}

/** Builds (once) and returns the artifacts. */
export function workerArtifacts(): WorkerArtifacts {
  mkdirSync(CACHE, { recursive: true });
  const versions = { containerd: upstream(debianVersion(DEBS.containerd)), runc: upstream(debianVersion(DEBS.runc)), cni: `v${upstream(debianVersion(DEBS.cni)).replace(/\+.*$/, "")}` };
  const files = {
    containerd: path.join(CACHE, `containerd-${versions.containerd}-linux-amd64.tar.gz`),
    runc: path.join(CACHE, `runc-${versions.runc}.amd64`),
    cni: path.join(CACHE, `cni-plugins-linux-amd64-${versions.cni}.tgz`),
  };
  const work = mkdtempSync(path.join(tmpdir(), "kok-debs-"));
  try {
    if (!existsSync(files.containerd)) {
      const tree = unpackDeb(DEBS.containerd, work);
      mkdirSync(path.join(work, "containerd", "bin"), { recursive: true });
      for (const bin of ["containerd", "ctr", "containerd-shim-runc-v2"]) copyFileSync(path.join(tree, "usr/bin", bin), path.join(work, "containerd", "bin", bin));
      tarball(`${files.containerd}.part`, path.join(work, "containerd"), ["bin"]);
      execFileSync("mv", [`${files.containerd}.part`, files.containerd]);
    }
    if (!existsSync(files.runc)) {
      const tree = unpackDeb(DEBS.runc, work);
      copyFileSync(path.join(tree, "usr/sbin/runc"), `${files.runc}.part`);
      execFileSync("mv", [`${files.runc}.part`, files.runc]);
    }
    if (!existsSync(files.cni)) {
      const tree = unpackDeb(DEBS.cni, work);
      const dir = path.join(tree, "usr/lib/cni");
      tarball(`${files.cni}.part`, dir, readdirSync(dir).sort());
      execFileSync("mv", [`${files.cni}.part`, files.cni]);
    }
    let kubelet: BuiltArtifact;
    let kubeletSource: string;
    if (existsSync(TOOLCHAIN_KUBELET)) {
      const version = /v\d+\.\d+\.\d+\S*/.exec(execFileSync(TOOLCHAIN_KUBELET, ["--version"], { encoding: "utf8" }))?.[0] ?? "v0.0.0-unknown";
      const file = path.join(CACHE, `kubelet-${version}-linux-amd64`);
      if (!existsSync(file)) copyFileSync(TOOLCHAIN_KUBELET, file);
      kubelet = { file, version };
      kubeletSource = `the toolchain's kubelet (${TOOLCHAIN_KUBELET})`;
    } else {
      const version = `v${upstream(debianVersion(DEBS.kubectl)).replace(/^.*really/, "")}`;
      const file = path.join(CACHE, `kubelet-standin-${version}-linux-amd64`);
      if (!existsSync(file)) {
        const tree = unpackDeb(DEBS.kubectl, work);
        copyFileSync(path.join(tree, "usr/bin/kubectl"), file);
      }
      kubelet = { file, version };
      kubeletSource = `Debian's kubectl ${version} as a stand-in binary (the toolchain kubelet ${TOOLCHAIN_KUBELET} is not built yet)`;
    }
    return {
      containerd: { file: files.containerd, version: versions.containerd },
      runc: { file: files.runc, version: versions.runc },
      cni: { file: files.cni, version: versions.cni },
      kubelet,
      kubeletSource,
      kubeletVersionCommand: existsSync(TOOLCHAIN_KUBELET) ? "--version" : "version --client",
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
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
