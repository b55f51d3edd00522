/**
 * (4) Drift sweep, steady state, nothing changed. The operator's sweep is what its reconcilers
 * run on their periods, called here directly on the fleet it installed (the operator is stopped
 * first, so nothing else touches the stacks):
 *
 * - per Machine: the short SSH probe of installed versions and services (HostProbe), plus a Node
 *   lookup in the watch cache (no request, so not timed);
 * - per Cluster: the fingerprint of its live objects (LiveClusterObjects), which is all a steady
 *   check runs once a full preview has verified the stack. The full `preview --refresh` (first
 *   check after a start or an update, a moved fingerprint, the renewal window, daily) is measured
 *   too, as its own figure.
 *
 * The baseline is a full `pulumi refresh` of each of the same stacks, 4 at a time (the operator's
 * default `--concurrency`, its cap on engine processes). The probes run as the operator runs them:
 * on its Machine workers (default `--machine-workers`, 4 × concurrency = 16), which need no engine
 * slot. Besides wall time, the CPU the sweep costs on the
 * operator's side (this process and the ssh / pulumi processes it waited for; the hosts' own sshd
 * work is not counted, it runs on the hosts) is reported per object.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { stackNameOf, type ClusterObject } from "../src/api/v1alpha1";
import { ClusterReconciler, objectsLocationOf } from "../src/controllers/cluster/reconciler";
import { HostProbe } from "../src/host/host-probe";
import { LiveClusterObjects } from "../src/controllers/cluster/live-fingerprint";
import { StackRunner, type PlannedChange } from "../src/runtime/stack-runner";
import { BUSINESS, fleetWorld, stopFleetWorld } from "./fleet-world";
import { pool, summarize, timed, type Benchmark } from "./harness";
import { NAMESPACE } from "./meta-objects";
import { processUsage } from "./operator-process";

const CONCURRENCY = 4;
const MACHINE_WORKERS = 4 * CONCURRENCY;

/** CPU seconds of this process and its reaped children spent in `fn`. */
async function withCpu<T>(fn: () => Promise<T>): Promise<{ ms: number; cpuMs: number; value: T }> {
  const before = processUsage(process.pid).cpuSeconds;
  const t = await timed(fn);
  return { ...t, cpuMs: (processUsage(process.pid).cpuSeconds - before) * 1000 };
}

export const driftSweepBenchmark: Benchmark = {
  id: "drift",
  title: "(4) Drift sweep, steady state",
  sizes: { quick: { machines: 5 }, full: { machines: 50 } },
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
      // The inline program runs in this process, and the meta-cluster provider takes its kubeconfig
      // from the process's KUBECONFIG when the program gives none (as the operator's does): use
      // the one the operator process had, or every preview shows that provider input as changed.
      process.env.KUBECONFIG = w.env.kubeconfig;
      const cluster = JSON.parse(w.env.kubectl("-n", NAMESPACE, "get", "cluster", BUSINESS, "-o", "json")) as ClusterObject;
      const program = new ClusterReconciler({ store: undefined as never, events: undefined as never, namespaceLabels: undefined as never, stacks: clusters, resyncMs: 0 }).program(cluster);
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(w.env.kubeconfig);
      const live = new LiveClusterObjects(kubeConfig);
      const probe = new HostProbe();
      const machineStacks = w.operatorHosts.map((_, i) => stackNameOf({ metadata: { namespace: NAMESPACE, name: `m${i}` } }));
      const objects = w.operatorHosts.length + 1;
      const sweepMs: number[] = [];
      const sweepCpu: number[] = [];
      const refreshMs: number[] = [];
      const refreshCpu: number[] = [];
      const probes: number[] = [];
      const fingerprints: number[] = [];
      const previews: number[] = [];
      const machineRefresh: number[] = [];
      const clusterRefresh: number[] = [];
      const clusterChanges: string[] = [];
      const fingerprintsSeen = new Set<string>();
      for (let run = 1; run <= ctx.runs; run++) {
        const sweep = await withCpu(() =>
          Promise.all([
            timed(() => live.fingerprint(objectsLocationOf(cluster))).then((t) => {
              fingerprints.push(t.ms);
              fingerprintsSeen.add(t.value);
            }),
            pool(w.operatorHosts, MACHINE_WORKERS, async (host, i) => {
              const t = await timed(() =>
                probe.probe({ host: host.ip, port: host.port, user: host.user, hostKey: host.hostKey, privateKey: host.privateKey }, { installRoot: host.root, serviceManager: "process" }),
              );
              probes.push(t.ms);
              if (t.value.observedVersions.kubelet !== "v1.36.3") throw new Error(`m${i} runs kubelet ${t.value.observedVersions.kubelet}`);
            }),
          ]),
        );
        sweepMs.push(sweep.ms / objects);
        sweepCpu.push(sweep.cpuMs / objects);
        // The full check a moved fingerprint (or the daily period) leads to. Steady state should
        // preview as all "same"; anything else is named with the figure, not hidden.
        const planned: PlannedChange[] = [];
        const full = await timed(() => clusters.preview(stackNameOf(cluster), program, { refresh: true, onChange: (c) => planned.push(c) }));
        previews.push(full.ms);
        for (const c of planned) clusterChanges.push(`${c.op} ${c.type} ${c.name}${c.properties.length ? ` (${c.properties.join(", ")})` : ""}`);
        const refresh = await withCpu(() =>
          pool([stackNameOf(cluster), ...machineStacks], CONCURRENCY, async (stack) => {
            const isCluster = stack === stackNameOf(cluster);
            const t = await timed(() => (isCluster ? clusters : machines).refresh(stack, async () => ({})));
            (isCluster ? clusterRefresh : machineRefresh).push(t.ms);
          }),
        );
        refreshMs.push(refresh.ms / objects);
        refreshCpu.push(refresh.cpuMs / objects);
        ctx.log(`  run ${run}: sweep ${(sweep.ms / 1000).toFixed(2)} s (CPU ${(sweep.cpuMs / 1000).toFixed(2)} s), refresh of every stack ${(refresh.ms / 1000).toFixed(1)} s (CPU ${(refresh.cpuMs / 1000).toFixed(1)} s), ${objects} objects`);
      }
      const ratio = summarize(sweepMs).median / summarize(refreshMs).median;
      return [
        {
          name: `sweep per object (${objects - 1} Machines + 1 Cluster), wall`,
          unit: "ms/object",
          samples: sweepMs,
          baseline: { name: "pulumi refresh of every stack", samples: refreshMs },
          target: "≤ 1/20 (0.05×)",
          met: ratio <= 0.05,
        },
        { name: "sweep per object, operator-side CPU", unit: "ms/object", samples: sweepCpu, baseline: { name: "CPU of refreshing every stack", samples: refreshCpu } },
        { name: "one Machine: SSH probe", unit: "ms", samples: probes, baseline: { name: "refresh of its stack", samples: machineRefresh } },
        {
          name: "one Cluster: live-object fingerprint (a steady check)",
          unit: "ms",
          samples: fingerprints,
          baseline: { name: "refresh of its stack", samples: clusterRefresh },
          note: fingerprintsSeen.size > 1 ? `the fingerprint moved ${fingerprintsSeen.size - 1} time(s) in steady state (each costs one full preview)` : undefined,
        },
        {
          name: "one Cluster: full preview --refresh (after a start, an update, a moved fingerprint, daily)",
          unit: "ms",
          samples: previews,
          baseline: { name: "refresh of its stack", samples: clusterRefresh },
          note: clusterChanges.length ? `the steady-state preview was not all "same": ${[...new Set(clusterChanges)].join("; ")}` : undefined,
        },
      ];
    } finally {
      // A cleanup failure must not hide the benchmark's own error.
      await stopFleetWorld().catch((error: unknown) => ctx.log(`  cleanup failed: ${error instanceof Error ? error.message : String(error)}`));
    }
  },
};
