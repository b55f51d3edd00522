/**
 * A local meta-cluster and one Cluster stack of an inline program on it, up through the real
 * engine: what the ControlPlane e2e suites stand on. The first `up` is timed and printed (a
 * figure, never asserted); `stop` cleans up whatever a failed test left.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { kubectl } from "./business-cluster";
import { devUp, freeNodePort, kok, newDevCluster, type DevCluster } from "./dev-cluster";
import { assertPlugins, CONTROL_PLANE_PLUGINS, newTestStack, type TestStack } from "./engine";

export interface ClusterStackWorld {
  readonly cluster: DevCluster;
  readonly test: TestStack;
  /** A NodePort free when the world started, for the business apiserver's Service. */
  readonly nodePort: number;
  /** A scratch directory of the suite's, removed by `stop`. */
  readonly work: string;
  /** The business cluster's admin kubeconfig file (0600), from the first up's output. */
  readonly adminKubeconfig: string;
  /** kubectl against the meta-cluster. */
  meta(...args: string[]): string;
  /** Destroys the stack (a failure is printed: this only cleans up), its state, the dev cluster and `work`. */
  stop(): Promise<void>;
}

export interface ClusterStackOptions {
  /** Names the project (`kok-e2e-<name>`), the temporary directories and the printed figure. */
  readonly name: string;
  readonly stackName: string;
  /** What the printed figure calls the first up, e.g. "a minimal ControlPlane". */
  readonly what: string;
  /** The program, made once the meta-cluster is up. */
  program(world: { cluster: DevCluster; nodePort: number; metaKubeconfig: string }): PulumiFn;
}

const log = (line: string) => process.stdout.write(line);

export async function upClusterStack(opts: ClusterStackOptions): Promise<ClusterStackWorld> {
  assertPlugins(CONTROL_PLANE_PLUGINS);
  const work = mkdtempSync(join(tmpdir(), `kok-e2e-${opts.name}-`));
  const cluster = await newDevCluster();
  let test: TestStack | undefined;
  const stop = async () => {
    if (test) await test.stack.destroy({ onOutput: log }).catch((error: unknown) => console.error(error));
    test?.dispose();
    // Normally already down after the last test; after a failure this cleans up, and says when it cannot.
    const down = await kok(["dev", "down", ...cluster.args, "--purge"]);
    if (down.code !== 0) console.error(`kok dev down failed:\n${down.stdout}\n${down.stderr}`);
    rmSync(work, { recursive: true, force: true });
  };
  try {
    const nodePort = await freeNodePort();
    await devUp(cluster);
    const program = opts.program({ cluster, nodePort, metaKubeconfig: readFileSync(cluster.kubeconfig, "utf8") });
    test = await newTestStack(`kok-e2e-${opts.name}`, program, opts.stackName);
    const started = Date.now();
    const result = await test.stack.up({ onOutput: log });
    console.log(`pulumi up of ${opts.what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const adminKubeconfig = join(work, "admin.kubeconfig");
    writeFileSync(adminKubeconfig, String(result.outputs.adminKubeconfig.value), { mode: 0o600 });
    return { cluster, test, nodePort, work, adminKubeconfig, meta: (...args) => kubectl(cluster.kubeconfig, ...args), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
