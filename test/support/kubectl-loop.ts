/**
 * A client that keeps asking: `kubectl get namespaces` every half second with one kubeconfig, each
 * try's time and outcome kept, for tests that change what a business apiserver trusts (a CA
 * rotation) and must show which clients kept working and when one stopped.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { toolchainBinary } from "../../src/dev/toolchain";

export interface KubectlTry {
  readonly at: number;
  readonly ok: boolean;
  readonly error?: string;
}

export function kubectlLoop(kubeconfig: string): { readonly tries: KubectlTry[]; stop(): Promise<void> } {
  const tries: KubectlTry[] = [];
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      const at = Date.now();
      try {
        await promisify(execFile)(toolchainBinary("kubectl"), ["--kubeconfig", kubeconfig, "--request-timeout=10s", "get", "namespaces", "-o", "name"], { encoding: "utf8" });
        tries.push({ at, ok: true });
      } catch (error) {
        tries.push({ at, ok: false, error: String((error as { stderr?: string }).stderr ?? error).trim().split("\n")[0] });
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return {
    tries,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

/** The CA data of a kubeconfig file (its first cluster), as PEM. */
export function caDataOf(kubeconfig: string): string {
  const data = /certificate-authority-data: (\S+)/.exec(readFileSync(kubeconfig, "utf8"))?.[1];
  if (!data) throw new Error(`${kubeconfig} has no certificate-authority-data`);
  return Buffer.from(data, "base64").toString("utf8");
}
