/**
 * (4) Drift sweep, steady state, nothing changed. The operator's sweep is what its reconcilers
 * run on their periods, called here directly on the fleet it installed (the operator is stopped
 * first, so nothing else touches the stacks):
 *
 * - per Machine: the short SSH probe of installed versions and services (HostProbe), plus a Node
 *   lookup in the watch cache (no request, so not timed);
 * - per Cluster: `preview --refresh` of its stack (StackRunner.preview), the operator's drift check.
 *
 * The baseline is a full `pulumi refresh` of each of the same stacks. Both sweeps run at the
 * operator's default concurrency of 4.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { ClusterReconciler, stackNameOf, type ClusterObject } from "../src/operator/cluster-reconciler";
import { HostProbe } from "../src/operator/host-probe";
import { machineStackName } from "../src/operator/machine-reconciler";
import { StackRunner } from "../src/operator/stack-runner";
import { BUSINESS, fleetWorld, stopFleetWorld } from "./fleet-world";
import { pool, summarize, timed, type Benchmark } from "./harness";
import { NAMESPACE } from "./meta-objects";

const CONCURRENCY = 4;

export const driftSweepBenchmark: Benchmark = {
  id: "drift",
  title: "(4) Drift sweep, steady state",
  sizes: { quick: { machines: 3 }, full: { machines: 50 } },
  runs: { quick: 2, full: 3 },
  async run(size, ctx) {
    const w = await fleetWorld(size.machines, ctx.log);
    try {
      await w.operator.op.stop();
      const backendUrl = `file://${path.join(w.operator.stateDir, "state")}`;
      const workRoot = mkdtempSync(path.join(tmpdir(), "kok-bench-drift-"));
      const runner = (projectName: string) => new StackRunner({ projectName, backendUrl, workRoot: path.join(workRoot, projectName), env: w.env.engineEnv() });
      const clusters = runner("kube-on-kube-clusters");
      const machines = runner("kube-on-kube-machines");
      const cluster = JSON.parse(w.env.kubectl("-n", NAMESPACE, "get", "cluster", BUSINESS, "-o", "json")) as ClusterObject;
      const program = new ClusterReconciler({ store: undefined as never, events: undefined as never, stacks: clusters, resyncMs: 0 }).program(cluster);
      const probe = new HostProbe();
      const machineStacks = w.operatorHosts.map((_, i) => machineStackName({ metadata: { namespace: NAMESPACE, name: `m${i}` } }));
      const objects = w.operatorHosts.length + 1;
      const cheap: number[] = [];
      const full: number[] = [];
      const probes: number[] = [];
      const previews: number[] = [];
      const machineRefresh: number[] = [];
      const clusterRefresh: number[] = [];
      const clusterChanges: string[] = [];
      for (let run = 1; run <= ctx.runs; run++) {
        const sweep = await timed(() =>
          Promise.all([
            timed(() => clusters.preview(stackNameOf(cluster), program, { refresh: true })).then((t) => {
              previews.push(t.ms);
              // Steady state should preview as all "same"; anything else is reported with the
              // figure (a finding to chase), not hidden and not a reason to drop the measurement.
              const changed = Object.entries(t.value).filter(([op, n]) => op !== "same" && n > 0);
              if (changed.length) clusterChanges.push(JSON.stringify(Object.fromEntries(changed)));
            }),
            pool(w.operatorHosts, CONCURRENCY - 1, async (host, i) => {
              const t = await timed(() =>
                probe.probe({ host: host.ip, port: host.port, user: host.user, hostKey: host.hostKey, privateKey: host.privateKey }, { installRoot: host.root, serviceManager: "process" }),
              );
              probes.push(t.ms);
              if (t.value.observedVersions.kubelet !== "v1.36.3") throw new Error(`m${i} runs kubelet ${t.value.observedVersions.kubelet}`);
            }),
          ]),
        );
        cheap.push(sweep.ms / objects);
        const refresh = await timed(() =>
          pool([stackNameOf(cluster), ...machineStacks], CONCURRENCY, async (stack) => {
            const isCluster = stack === stackNameOf(cluster);
            const t = await timed(() => (isCluster ? clusters : machines).refresh(stack, async () => ({})));
            (isCluster ? clusterRefresh : machineRefresh).push(t.ms);
          }),
        );
        full.push(refresh.ms / objects);
        ctx.log(`  run ${run}: sweep ${(sweep.ms / 1000).toFixed(1)} s, refresh of every stack ${(refresh.ms / 1000).toFixed(1)} s (${objects} objects)`);
      }
      return [
        { name: `sweep per object (${objects - 1} Machines + 1 Cluster)`, unit: "ms/object", samples: cheap, baseline: { name: "pulumi refresh of every stack", samples: full }, target: "≤ 1/20 (0.05×)", met: summarize(cheap).median / summarize(full).median <= 0.05 },
        { name: "one Machine: SSH probe", unit: "ms", samples: probes, baseline: { name: "refresh of its stack", samples: machineRefresh } },
        {
          name: "one Cluster: preview --refresh (the operator's drift check)",
          unit: "ms",
          samples: previews,
          baseline: { name: "refresh of its stack", samples: clusterRefresh },
          note: clusterChanges.length ? `the steady-state preview was not all "same": ${clusterChanges.join(", ")}` : undefined,
        },
      ];
    } finally {
      // A cleanup failure must not hide the benchmark's own error.
      await stopFleetWorld().catch((error: unknown) => ctx.log(`  cleanup failed: ${error instanceof Error ? error.message : String(error)}`));
    }
  },
};

