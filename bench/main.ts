/**
 * `npm run bench [-- --quick] [--only scale,overhead] [--runs N] [--write-docs] [--no-docs] [id.param=value …]`
 *
 * Runs each benchmark at its size (`--quick`: small enough for CI on every landing; default: the
 * issue's full sizes; `scale.machines=2000` overrides one parameter), prints one table, writes
 * bench/results.json, and refreshes docs/benchmarks.md. The doc holds the latest *full* result of
 * each benchmark (bench/full-results.json, merged per benchmark): a quick run never writes it, a
 * partial or resized run only with `--write-docs`; a failed benchmark keeps its previous result.
 */
import * as path from "node:path";
import { parseArgs } from "node:util";
import { clusterOverheadBenchmark } from "./cluster-overhead";
import { clusterRateBenchmark } from "./cluster-rate";
import { driftSweepBenchmark } from "./drift-sweep";
import { fleetInstallBenchmark } from "./fleet-install";
import { stopFleetWorld } from "./fleet-world";
import { stopDevEnvironment } from "./dev-environment";
import type { Benchmark, Size } from "./harness";
import { consoleTable, currentCommit, machineInfo, notes, recordFullResults, refreshDoc, writeResults, type BenchmarkResult } from "./report";
import { scaleBenchmark } from "./scale";

const BENCHMARKS: readonly Benchmark[] = [clusterOverheadBenchmark, clusterRateBenchmark, fleetInstallBenchmark, driftSweepBenchmark, scaleBenchmark];
const ROOT = path.resolve(__dirname, "..");

function usage(problem: string): never {
  console.error(`npm run bench: ${problem}\nusage: npm run bench -- [--quick] [--only ${BENCHMARKS.map((b) => b.id).join(",")}] [--runs N] [--write-docs|--no-docs] [id.param=value …]`);
  process.exit(2);
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      runs: { type: "string" },
      "write-docs": { type: "boolean", default: false },
      "no-docs": { type: "boolean", default: false },
    },
  });
  const ids = values.only?.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = ids?.filter((id) => !BENCHMARKS.some((b) => b.id === id)) ?? [];
  if (unknown.length) usage(`unknown benchmark ${unknown.join(", ")}`);
  const selected = BENCHMARKS.filter((b) => !ids || ids.includes(b.id));
  const overrides = new Map<string, Size>();
  for (const p of positionals) {
    const m = /^(\w+)\.(\w+)=(\d+(?:\.\d+)?)$/.exec(p);
    const bench = m && BENCHMARKS.find((b) => b.id === m[1]);
    if (!m || !bench || !(m[2] in bench.sizes.full)) usage(`"${p}" is not id.param=number with a known id and param`);
    overrides.set(m[1], { ...overrides.get(m[1]), [m[2]]: Number(m[3]) });
  }
  const runsOverride = values.runs === undefined ? undefined : Number(values.runs);
  if (runsOverride !== undefined && (!Number.isInteger(runsOverride) || runsOverride < 1)) usage(`--runs "${values.runs}" must be a positive integer`);
  const mode = values.quick ? "quick" : "full";
  // A run of some benchmarks replaces only their rows in the doc; a resized or shortened one must ask.
  const partial = overrides.size > 0 || runsOverride !== undefined;

  const results: BenchmarkResult[] = [];
  // The code measured is the code at the start: later commits during a long run do not count.
  const commit = currentCommit(ROOT);
  const began = Date.now();
  for (const bench of selected) {
    const size = { ...bench.sizes[mode], ...overrides.get(bench.id) };
    const runs = runsOverride ?? bench.runs[mode];
    const log = (message: string) => console.log(`[${bench.id} ${((Date.now() - began) / 1000).toFixed(0)}s] ${message}`);
    log(`${bench.title}: ${JSON.stringify(size)}, ${runs} run(s)`);
    const started = Date.now();
    try {
      const figures = await bench.run(size, { runs, log });
      results.push({ id: bench.id, title: bench.title, size, runs, seconds: (Date.now() - started) / 1000, figures });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log(`FAILED: ${message}`);
      results.push({ id: bench.id, title: bench.title, size, runs, seconds: (Date.now() - started) / 1000, figures: [], error: message });
    }
  }

  await stopFleetWorld();
  await stopDevEnvironment();
  const machine = machineInfo();
  console.log(`\n${machine.cpu}, ${machine.cores} cores, ${machine.ramGb} GB RAM, Node ${machine.node}; ${mode} run in ${((Date.now() - began) / 1000).toFixed(0)} s\n`);
  console.log(consoleTable(results));
  for (const note of notes(results)) console.log(`  · ${note}`);
  writeResults(path.join(ROOT, "bench", "results.json"), machine, mode, results);
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
  const writeDoc = !values["no-docs"] && mode === "full" && (!partial || values["write-docs"]);
  if (values["write-docs"] && mode === "quick") console.log("\n--write-docs ignored: docs/benchmarks.md holds full runs only");
  if (writeDoc) {
    const measured = results.filter((r) => !r.error);
    const recorded = recordFullResults(path.join(ROOT, "bench", "full-results.json"), BENCHMARKS.map((b) => b.id), machine, command, commit, measured);
    refreshDoc(path.join(ROOT, "docs", "benchmarks.md"), recorded);
    console.log("\nwrote bench/results.json, bench/full-results.json and docs/benchmarks.md");
  } else {
    console.log("\nwrote bench/results.json (docs/benchmarks.md unchanged: it holds the latest full run)");
  }
  return results.some((r) => r.error) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
