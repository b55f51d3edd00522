/**
 * What the worker integration tests (worker-kubelet-joins, kubelet-serving, worker-pods) stand
 * on: the package mirror serving the toolchain's artifacts, a throwaway cluster CA, a real
 * kube-apiserver signed by it, and sandbox sshd hosts — started together, stopped together with
 * the product's own stop of each host's services (kubelet, then containerd, waited for, and their
 * mounts under the host's root).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { PackageArtifact, WorkerPackages } from "../../src/api/v1alpha1";
import { startMirror, type Mirror } from "../../src/cli/mirror";
import { stopSandboxServices } from "../../src/dev/sandbox-fleet";
import { mirrorDirectory, workerArtifacts, TOOLCHAIN_KUBELET, type BuiltArtifact } from "./artifacts";
import { startBusinessApi, type BusinessApi } from "./business-api";
import { startSshHosts, stopSshHosts, type SshHost } from "./sshd-hosts";
import { servedArtifact, testClusterCa } from "./worker-fixtures";

export interface WorkerTestbed {
  readonly mirror: Mirror;
  /** The mirror's directory: a test may place more artifacts there before it serves them. */
  readonly mirrorDir: string;
  readonly api: BusinessApi;
  readonly ca: { readonly certFile: string; readonly keyFile: string };
  readonly hosts: SshHost[];
  /** An artifact as the mirror serves it (URL and checksum). */
  artifact(built: BuiltArtifact): PackageArtifact;
  /** The toolchain's containerd, runc, CNI plugins and kubelet v1.36, as served. */
  packages(): WorkerPackages;
  /** Stops the hosts' services, the hosts, the apiserver and the mirror; removes what it made. */
  stop(): Promise<void>;
}

export interface WorkerTestbedOptions {
  /** Names the sshd hosts (`<prefix>-<i>`). */
  readonly prefix: string;
  readonly hosts: number;
  /** Lays out more artifacts in the mirror's directory before the mirror starts. */
  readonly extraArtifacts?: (mirrorDir: string) => void;
}

export async function startWorkerTestbed(opts: WorkerTestbedOptions): Promise<WorkerTestbed> {
  if (!existsSync(TOOLCHAIN_KUBELET)) throw new Error(`${TOOLCHAIN_KUBELET} is missing: build it with \`npm run toolchain\``);
  const artifacts = workerArtifacts();
  const dir = mirrorDirectory(artifacts);
  const caDir = mkdtempSync(path.join(tmpdir(), "kok-ca-"));
  let mirror: Mirror | undefined;
  let api: BusinessApi | undefined;
  let hosts: SshHost[] = [];
  const stop = async () => {
    for (const host of hosts) await stopSandboxServices(host.root);
    await mirror?.close();
    dir.remove();
    await api?.stop();
    await stopSshHosts(hosts);
    rmSync(caDir, { recursive: true, force: true });
  };
  try {
    opts.extraArtifacts?.(dir.dir);
    mirror = await startMirror({ dir: dir.dir, host: "127.0.0.1", port: 0 });
    const ca = testClusterCa(caDir);
    api = await startBusinessApi({ ca });
    hosts = await startSshHosts(opts.hosts, opts.prefix);
    const served = mirror;
    const artifact = (built: BuiltArtifact) => servedArtifact(served, built);
    return {
      mirror,
      mirrorDir: dir.dir,
      api,
      ca,
      hosts,
      artifact,
      packages: () => ({ containerd: artifact(artifacts.containerd), runc: artifact(artifacts.runc), kubelet: artifact(artifacts.kubelet), cni: artifact(artifacts.cni) }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
