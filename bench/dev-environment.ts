/**
 * One local meta-cluster (`kok dev up`: etcd, kube-apiserver and the real node — kubelet,
 * containerd, runc — that runs the masters' Pods in containers) shared by the benchmarks that
 * need real masters, started on first use and stopped when the run ends. Each benchmark cleans up
 * what it created.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";
import { toolchainBinary, toolchainEngineEnv } from "../src/dev/toolchain";
import { devUp, freeNodePort, installCrds, kok, newDevCluster, type DevCluster } from "../test/support";
import { NAMESPACE } from "./meta-objects";

export const PASSPHRASE = "kok-bench-passphrase";

export interface DevEnvironment {
  readonly kubeconfig: string;
  /** A scratch directory for this run's files. */
  readonly work: string;
  kubectl(...args: string[]): string;
  /** `kubectl apply -f` of objects written to a YAML file. */
  apply(name: string, objects: readonly object[]): void;
  /** The engine environment (toolchain CLI and plugins, passphrase) with KUBECONFIG = the meta-cluster. */
  engineEnv(): Record<string, string>;
  freeNodePort(): Promise<number>;
}

let shared: Promise<{ env: DevEnvironment; cluster: DevCluster }> | undefined;
export function devEnvironment(log: (m: string) => void): Promise<DevEnvironment> {
  shared ??= (async () => {
    const cluster = await newDevCluster();
    log(`  starting the local meta-cluster (kok dev up, state ${cluster.stateDir})`);
    await devUp(cluster);
    const work = mkdtempSync(path.join(tmpdir(), "kok-bench-"));
    installCrds(cluster, work);
    const kubectl = (...args: string[]) =>
      execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 256 * 1024 * 1024 });
    kubectl("create", "namespace", NAMESPACE);
    const env: DevEnvironment = {
      kubeconfig: cluster.kubeconfig,
      work,
      kubectl,
      apply(name, objects) {
        const file = path.join(work, `${name}.yaml`);
        writeFileSync(file, objects.map((o) => stringify(o)).join("---\n"));
        kubectl("apply", "-f", file);
      },
      engineEnv: () => ({ ...toolchainEngineEnv(PASSPHRASE), KUBECONFIG: cluster.kubeconfig }),
      freeNodePort,
    };
    return { env, cluster };
  })();
  return shared.then((s) => s.env);
}

/** Stops the shared meta-cluster, if one was started. */
export async function stopDevEnvironment(): Promise<void> {
  if (!shared) return;
  const { cluster } = await shared.catch(() => ({ cluster: undefined }));
  shared = undefined;
  if (cluster) await kok(["dev", "down", ...cluster.args, "--purge"]);
}
