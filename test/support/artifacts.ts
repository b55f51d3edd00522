/** The worker artifacts (src/dev/worker-artifacts.ts, the demo serves them too) and the tests' mirror directory. */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fillMirror, type BuiltArtifact, type WorkerArtifacts } from "../../src/dev/worker-artifacts";

export * from "../../src/dev/worker-artifacts";

/**
 * A mirror directory with the artifacts, plus a second kubelet build for upgrade tests: the same
 * binary with bytes appended (an ELF ignores trailing data), so it is a different artifact with
 * a different sha256 that still runs. Its version is the original's with "-bump".
 */
export function mirrorDirectory(artifacts: WorkerArtifacts): { dir: string; bumpedKubelet: BuiltArtifact; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), "kok-mirror-"));
  fillMirror(artifacts, dir);
  const bumped = { version: `${artifacts.kubelet.version}-bump`, file: path.join(dir, `kubelet-${artifacts.kubelet.version}-bump-linux-amd64`) };
  copyFileSync(artifacts.kubelet.file, bumped.file);
  writeFileSync(bumped.file, "\nkube-on-kube test build: bumped\n", { flag: "a" });
  return { dir, bumpedKubelet: bumped, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
