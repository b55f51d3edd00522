/**
 * (1) Cluster overhead. One Cluster → Ready three ways, one after another in each run:
 *
 * - the operator: `kubectl apply` of the Cluster resource until its status says Ready (the
 *   operator runs as `kok operator` in its own process, started once before the runs);
 * - raw engine: `pulumi up` of the same inline program through the Automation API, stack creation
 *   included (what the operator's stack runner does for it);
 * - the floor: `kubectl apply` of the Kubernetes objects that `up` produced (rendered from its
 *   state, certificates included), then `kubectl rollout status` of every workload, since the
 *   engine's `up` also waits for them. The floor skips what only the engine does: generating the
 *   PKI, diffing against state, writing state.
 *
 * Each approach cleans up (destroy, delete) untimed before the next one starts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { deleteClusters, clusterResource, nodePortSpec, rawClusterStack, renderedObjects, waitReady, waitWorkloads } from "./cluster-stack";
import { devEnvironment, type DevEnvironment } from "./dev-environment";
import { summarize, timed, until, type Benchmark } from "./harness";
import { NAMESPACE } from "./meta-objects";
import { spawnOperator, type OperatorProcess } from "./operator-process";

export interface BenchOperator {
  readonly op: OperatorProcess;
  /** Its --state-dir: the file backend is `<stateDir>/state`. */
  readonly stateDir: string;
  stop(): Promise<void>;
}

/** `kok operator` on the dev meta-cluster, no drift checks during a measurement (resync 1 h). */
export async function startBenchOperator(env: DevEnvironment, extra: string[] = []): Promise<BenchOperator> {
  const stateDir = mkdtempSync(path.join(tmpdir(), "kok-bench-operator-"));
  const op = spawnOperator(
    ["--kubeconfig", env.kubeconfig, "--state-dir", stateDir, "--metrics-addr", "127.0.0.1:0", "--resync-interval", "1h", ...extra],
    env.engineEnv(),
  );
  await until("operator started", () => (op.exited() ? Promise.reject(new Error(`operator ${op.exited()}: ${op.problems.join("\n")}`)) : op.startedAt()), 300_000);
  return {
    op,
    stateDir,
    async stop() {
      await op.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

async function namespaceGone(env: DevEnvironment, namespace: string): Promise<void> {
  await until(`namespace ${namespace} gone`, () => (env.kubectl("get", "namespaces", "-o", "name").includes(`namespace/${namespace}\n`) ? undefined : true), 600_000, 1000);
}

export const clusterOverheadBenchmark: Benchmark = {
  id: "overhead",
  title: "(1) Cluster overhead: one Cluster → Ready",
  sizes: { quick: { clusters: 1 }, full: { clusters: 1 } },
  runs: { quick: 1, full: 3 },
  async run(_size, ctx) {
    const env = await devEnvironment(ctx.log);
    const operatorMs: number[] = [];
    const rawMs: number[] = [];
    const kubectlMs: number[] = [];
    const operator = await startBenchOperator(env);
    try {
      for (let run = 1; run <= ctx.runs; run++) {
        const viaOperator = `ov-op-${run}`;
        const spec = nodePortSpec(await env.freeNodePort());
        const op = await timed(async () => {
          env.apply(viaOperator, [clusterResource(viaOperator, spec)]);
          await waitReady(env, viaOperator);
        });
        operatorMs.push(op.ms);
        await deleteClusters(env, [viaOperator]);

        const raw = `ov-raw-${run}`;
        const rawSpec = nodePortSpec(await env.freeNodePort());
        const up = await timed(async () => {
          const stack = await rawClusterStack(env, raw, rawSpec);
          await stack.up();
          return stack;
        });
        rawMs.push(up.ms);
        const objects = await renderedObjects(up.value);
        await up.value.destroy();
        await namespaceGone(env, `${NAMESPACE}-${raw}`);

        const floor = await timed(async () => {
          env.apply(`${raw}-rendered`, objects);
          waitWorkloads(env, `${NAMESPACE}-${raw}`);
        });
        kubectlMs.push(floor.ms);
        env.kubectl("delete", "namespace", `${NAMESPACE}-${raw}`, "--wait=false");
        env.kubectl("-n", NAMESPACE, "delete", "secret", `${raw}-admin-kubeconfig`, "--ignore-not-found");
        await namespaceGone(env, `${NAMESPACE}-${raw}`);
        ctx.log(`  run ${run}: operator ${(op.ms / 1000).toFixed(1)} s, raw up ${(up.ms / 1000).toFixed(1)} s, kubectl apply ${(floor.ms / 1000).toFixed(1)} s (${objects.length} objects)`);
      }
    } finally {
      await operator.stop();
    }
    const s = (ms: number[]) => ms.map((m) => m / 1000);
    const ratio = (a: number[], b: number[]) => summarize(a).median / summarize(b).median;
    return [
      { name: "Cluster → Ready via the operator", unit: "s", samples: s(operatorMs), baseline: { name: "raw pulumi up", samples: s(rawMs) }, target: "≤ 1.15×", met: ratio(operatorMs, rawMs) <= 1.15 },
      { name: "Cluster → Ready via the operator", unit: "s", samples: s(operatorMs), baseline: { name: "kubectl apply of the rendered objects", samples: s(kubectlMs) }, note: "kubectl apply is the floor: no PKI generation, no diff, no state" },
    ];
  },
};
