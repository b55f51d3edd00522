/**
 * A toolchain directory for image tests: links to the real toolchain's etcd, kube-scheduler
 * (the default minor), pause and flanneld (the tests run them from the images), and small stand-ins where a binary's own behaviour does not
 * matter to the image builder (it copies binaries as opaque files and only asks them for their
 * version): kube-proxy, coredns and local-path-provisioner. The stand-ins keep the tests quick;
 * the real ones are built by `kok images build` itself.
 */
import { copyFileSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { toolchainDir } from "../../src/dev/toolchain";

export const FIXTURE_KUBE_VERSION = "v1.36.3";

/** Fails naming the missing real binary and the toolchain target that builds it. */
function real(rel: string, target: string): string {
  const file = path.join(toolchainDir(), rel);
  try {
    return realpathSync(file);
  } catch {
    throw new Error(`the image tests need ${file}: build it with \`bash tools/toolchain.sh ${target}\``);
  }
}

function script(file: string, output: string): void {
  writeFileSync(file, `#!/bin/sh\necho '${output}'\n`, { mode: 0o755 });
}

/** Creates the fixture toolchain under `dir` and returns `dir`. */
export function fixtureToolchain(dir: string): string {
  const bin = path.join(dir, "bin");
  const kube = path.join(dir, "k8s", FIXTURE_KUBE_VERSION, "bin");
  mkdirSync(bin, { recursive: true });
  mkdirSync(kube, { recursive: true });
  for (const b of ["etcd", "etcdctl", "etcdutl"]) symlinkSync(real(`bin/${b}`, "etcd"), path.join(bin, b));
  symlinkSync(real(`k8s/${FIXTURE_KUBE_VERSION}/bin/kube-scheduler`, "kube-1.36"), path.join(kube, "kube-scheduler"));
  symlinkSync(real("bin/pause", "pause"), path.join(bin, "pause"));
  symlinkSync(real("bin/pause.version", "pause"), path.join(bin, "pause.version"));
  symlinkSync(real("bin/flanneld", "flannel"), path.join(bin, "flanneld"));
  copyFileSync("/bin/true", path.join(kube, "kube-proxy"));
  script(path.join(bin, "coredns"), "CoreDNS-1.15.0");
  script(path.join(bin, "local-path-provisioner"), "local-path-provisioner version v0.0.30");
  return dir;
}
