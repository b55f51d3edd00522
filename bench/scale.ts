/**
 * (5) Scale of the control loop. `clusters` Clusters and `machines` Machines, all paused, in a
 * real kube-apiserver + etcd (no engine, no SSH): the operator process's start-up to caches
 * synced, its first pass over every object, its peak RSS, and the time from an edit of one
 * Machine (a spec change, so a new generation) to that Machine's reconcile starting.
 *
 * Each run starts a fresh operator on the same objects: run 1 is a cold start (it adds every
 * finalizer and writes every status), later runs are what a restart or failover sees.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as k8s from "@kubernetes/client-node";
import { API_GROUP, API_VERSION } from "../src/api/v1alpha1";
import { toolchainEngineEnv } from "../src/dev/toolchain";
import { startTestApiserver } from "../test/support";
import { percentile, sleep, until, type Benchmark, type BenchmarkContext, type Figure, type Size } from "./harness";
import { createNamespace, createPausedFleet, installCrdsWithKubectl, machineName, NAMESPACE, writeKubeconfig } from "./meta-objects";
import { spawnOperator, type OperatorProcess } from "./operator-process";

interface RunResult {
  startupMs: number;
  firstPassMs: number;
  /** Reconciles until the first pass went quiet, by kind. */
  reconcilesByKind: Record<string, number>;
  peakRssMb: number;
  cpuSeconds: number;
  latencies: number[];
}

/** The first pass is over when every object was reconciled once and the queue has been quiet a while. */
async function firstPass(op: OperatorProcess, objects: number, deadlineMs: number): Promise<number> {
  const seen = new Set<string>();
  let lastAt = Date.now();
  op.onReconcile((line) => {
    if (line.kind !== "ClusterPackageVersion") seen.add(`${line.kind} ${line.key}`);
    lastAt = Date.now();
  });
  for (const line of op.reconciles) if (line.kind !== "ClusterPackageVersion") seen.add(`${line.kind} ${line.key}`);
  const started = op.startedAt()!;
  const allSeen = await until("every object reconciled once", () => (op.exited() ? Promise.reject(new Error(`operator ${op.exited()}`)) : seen.size >= objects ? Date.now() : undefined), deadlineMs, 100);
  await until("the queue quiet for 2 s", () => (Date.now() - lastAt > 2_000 ? true : undefined), deadlineMs, 200);
  return allSeen - started;
}

/** Edits `count` random Machines at `perSecond`, and resolves each edit's delay to its reconcile start. */
async function editLatencies(kc: k8s.KubeConfig, op: OperatorProcess, machines: number, count: number, perSecond: number, run: number): Promise<number[]> {
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  const waiting = new Map<string, { editedAt: number; resolve: (ms: number) => void }>();
  op.onReconcile((line) => {
    const w = line.kind === "Machine" ? waiting.get(line.key) : undefined;
    if (w && line.startedAt >= w.editedAt) {
      waiting.delete(line.key);
      w.resolve(line.startedAt - w.editedAt);
    }
  });
  const picked = new Set<number>();
  while (picked.size < Math.min(count, machines)) picked.add(Math.floor(Math.random() * machines));
  const results: Promise<number>[] = [];
  for (const [i, m] of [...picked].entries()) {
    const name = machineName(m);
    const editedAt = Date.now();
    results.push(new Promise<number>((resolve) => waiting.set(`${NAMESPACE}/${name}`, { editedAt, resolve })));
    await api.patchNamespacedCustomObject(
      { group: API_GROUP, version: API_VERSION, plural: "machines", namespace: NAMESPACE, name, body: { spec: { labels: { pool: "general", bench: `r${run}-e${i}` } } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    await sleep(1000 / perSecond);
  }
  return Promise.race([
    Promise.all(results),
    sleep(120_000).then(() => Promise.reject(new Error(`${waiting.size} edits never reached a reconcile in 120 s`))),
  ]);
}

/** The operator's environment; `heapMb` > 0 caps V8's old space (`--max-old-space-size`), as a Deployment may. */
function operatorEnv(size: Size): Record<string, string> {
  const env = toolchainEngineEnv("kok-bench-passphrase");
  return size.heapMb > 0 ? { ...env, NODE_OPTIONS: `--max-old-space-size=${size.heapMb}` } : env;
}

async function idleOperatorRss(kubeconfig: string, size: Size) {
  const stateDir = mkdtempSync(path.join(tmpdir(), "kok-bench-operator-"));
  const op = spawnOperator(["--kubeconfig", kubeconfig, "--state-dir", stateDir, "--metrics-addr", "127.0.0.1:0", "--concurrency", String(size.concurrency)], operatorEnv(size));
  try {
    await until("idle operator started", () => (op.exited() ? Promise.reject(new Error(`operator ${op.exited()}`)) : op.startedAt()), 300_000);
    await sleep(3_000);
    return op.usage();
  } finally {
    await op.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function oneRun(kc: k8s.KubeConfig, kubeconfig: string, size: Size, run: number, ctx: BenchmarkContext): Promise<RunResult> {
  const stateDir = mkdtempSync(path.join(tmpdir(), "kok-bench-operator-"));
  const op = spawnOperator(
    ["--kubeconfig", kubeconfig, "--state-dir", stateDir, "--metrics-addr", "127.0.0.1:0", "--resync-interval", "1h", "--concurrency", String(size.concurrency)],
    operatorEnv(size),
  );
  try {
    await until("operator started (caches synced)", () => (op.exited() ? Promise.reject(new Error(`operator ${op.exited()}: ${op.problems.join("\n")}`)) : op.startedAt()), 600_000);
    const startupMs = op.startedAt()! - op.spawnedAt;
    const firstPassMs = await firstPass(op, size.clusters + size.machines, 1_800_000);
    const reconcilesByKind: Record<string, number> = {};
    for (const line of op.reconciles) reconcilesByKind[line.kind] = (reconcilesByKind[line.kind] ?? 0) + 1;
    ctx.log(`  run ${run}: synced in ${(startupMs / 1000).toFixed(1)} s, first pass ${(firstPassMs / 1000).toFixed(1)} s; editing ${size.edits} Machines`);
    const latencies = await editLatencies(kc, op, size.machines, size.edits, size.editsPerSecond, run);
    const usage = op.usage();
    return { startupMs, firstPassMs, reconcilesByKind, latencies, ...usage };
  } finally {
    await op.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

export const scaleBenchmark: Benchmark = {
  id: "scale",
  title: "(5) Scale of the control loop",
  sizes: {
    quick: { clusters: 10, machines: 500, edits: 50, editsPerSecond: 10, concurrency: 4, heapMb: 0 },
    full: { clusters: 100, machines: 10_000, edits: 200, editsPerSecond: 10, concurrency: 4, heapMb: 0 },
  },
  runs: { quick: 2, full: 3 },
  async run(size, ctx) {
    const apiserver = await startTestApiserver();
    const dir = mkdtempSync(path.join(tmpdir(), "kok-bench-scale-"));
    try {
      const kc = apiserver.kubeConfig();
      const kubeconfig = writeKubeconfig(kc, path.join(dir, "kubeconfig"));
      installCrdsWithKubectl(kubeconfig, dir);
      await createNamespace(kc);
      // The same process with nothing to watch: what node, the loader and the operator's modules cost.
      const idle: number[] = [];
      for (let run = 1; run <= ctx.runs; run++) idle.push((await idleOperatorRss(kubeconfig, size)).peakRssMb);
      ctx.log(`  creating ${size.clusters} Clusters and ${size.machines} Machines (paused)`);
      await createPausedFleet(kc, { clusters: size.clusters, machines: size.machines }, ctx.log);
      const results: RunResult[] = [];
      for (let run = 1; run <= ctx.runs; run++) results.push(await oneRun(kc, kubeconfig, size, run, ctx));
      const objects = `${size.clusters} Clusters + ${size.machines} Machines`;
      const p = (q: number) => results.map((r) => percentile(r.latencies, q));
      const peak = results.map((r) => r.peakRssMb);
      const p99 = p(99);
      const figures: Figure[] = [
        { name: `start-up → caches synced (${objects})`, unit: "s", samples: results.map((r) => r.startupMs / 1000), note: "process spawn (node loading the compiled operator) to informers listed and synced" },
        { name: "first pass: every object reconciled once", unit: "s", samples: results.map((r) => r.firstPassMs / 1000), note: `--concurrency ${size.concurrency} (Machine workers ${4 * size.concurrency}); run 1 also adds every finalizer and status` },
        {
          name: "reconciles in the first pass",
          unit: "count",
          samples: results.map((r) => Object.values(r.reconcilesByKind).reduce((a, b) => a + b, 0)),
          note: results.map((r) => Object.entries(r.reconcilesByKind).map(([k, n]) => `${k} ${n}`).join(", ")).join(" | "),
        },
        { name: "operator peak RSS", unit: "MB", samples: peak, baseline: { name: "idle operator, no objects", samples: idle }, target: "≤ 300 MB", met: Math.max(...peak) <= 300 },
        { name: "operator CPU, start-up to end of edits", unit: "s", samples: results.map((r) => r.cpuSeconds) },
        { name: `edit → reconcile start, p50 (${size.edits} edits at ${size.editsPerSecond}/s)`, unit: "ms", samples: p(50) },
        { name: "edit → reconcile start, p99", unit: "ms", samples: p99, target: "≤ 1000 ms", met: Math.max(...p99) <= 1000 },
      ];
      return figures;
    } finally {
      await apiserver.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
