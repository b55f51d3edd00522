/**
 * (2) Cluster rate. N Clusters applied at once (one `kubectl apply`) → all Ready through the
 * operator, against the same N done one after another by a naive loop of `pulumi up` of the same
 * program. The operator's CPU counts its engine processes too (children it waited for), its peak
 * RSS is the operator process alone. The masters request little CPU (`packedSpec`) so that 20 of
 * them fit the dev node, which advertises this machine's 2 cores.
 */
import { clusterResource, deleteClusters, packedSpec, rawClusterStack, waitReady } from "./cluster-stack";
import { startBenchOperator } from "./cluster-overhead";
import { devEnvironment } from "./dev-environment";
import { summarize, timed, type Benchmark } from "./harness";
import { NAMESPACE } from "./meta-objects";
import type { Stack } from "@pulumi/pulumi/automation";

export const clusterRateBenchmark: Benchmark = {
  id: "rate",
  title: "(2) Cluster rate",
  sizes: { quick: { clusters: 2, concurrency: 4 }, full: { clusters: 20, concurrency: 4 } },
  runs: { quick: 1, full: 1 },
  async run(size, ctx) {
    const env = await devEnvironment(ctx.log);
    const operatorRate: number[] = [];
    const naiveRate: number[] = [];
    const cpu: number[] = [];
    const rss: number[] = [];
    const perMinute = (ms: number) => size.clusters / (ms / 60_000);
    for (let run = 1; run <= ctx.runs; run++) {
      const operator = await startBenchOperator(env, ["--concurrency", String(size.concurrency)]);
      const names = Array.from({ length: size.clusters }, (_, i) => `rate-${run}-${i}`);
      try {
        const before = operator.op.usage();
        const resources: object[] = [];
        for (const name of names) resources.push(clusterResource(name, packedSpec(await env.freeNodePort())));
        const op = await timed(async () => {
          env.apply(`rate-${run}`, resources);
          await Promise.all(names.map((n) => waitReady(env, n, 3_600_000)));
        });
        const after = operator.op.usage();
        operatorRate.push(perMinute(op.ms));
        cpu.push(after.cpuSeconds - before.cpuSeconds);
        rss.push(after.peakRssMb);
        ctx.log(`  run ${run}: operator ${(op.ms / 1000).toFixed(1)} s for ${size.clusters} Clusters`);
        await deleteClusters(env, names);
      } finally {
        await operator.stop();
      }
      const stacks: Stack[] = [];
      const naive = await timed(async () => {
        for (const name of names.map((n) => n.replace("rate-", "naive-"))) {
          const stack = await rawClusterStack(env, name, packedSpec(await env.freeNodePort()));
          await stack.up();
          stacks.push(stack);
        }
      });
      naiveRate.push(perMinute(naive.ms));
      ctx.log(`  run ${run}: naive loop ${(naive.ms / 1000).toFixed(1)} s`);
      for (const stack of stacks) {
        await stack.destroy();
        env.kubectl("delete", "namespace", `${NAMESPACE}-${stack.name}`, "--ignore-not-found", "--wait=false");
      }
    }
    return [
      { name: `${size.clusters} Clusters at once → Ready (--concurrency ${size.concurrency})`, unit: "per min", samples: operatorRate, baseline: { name: "naive loop of pulumi up", samples: naiveRate }, target: "≥ 3×", met: summarize(operatorRate).median / summarize(naiveRate).median >= 3 },
      { name: "operator CPU (its engine processes included)", unit: "s", samples: cpu },
      { name: "operator peak RSS", unit: "MB", samples: rss },
    ];
  },
};
