/**
 * (3) Fleet install. N machines on loopback sshd hosts, from nothing to installed (containerd,
 * runc, CNI, kubelet from the real mirror; the Node Ready in the business cluster): the operator
 * with N Machine resources at once, against a naive loop of one raw stack per machine. Both use
 * the same program (src/program/machine-program.ts); see fleet-world.ts.
 */
import { cpus } from "node:os";
import type { Benchmark } from "./harness";
import { fleetWorld } from "./fleet-world";

export const fleetInstallBenchmark: Benchmark = {
  id: "fleet",
  title: "(3) Fleet install",
  sizes: { quick: { machines: 5 }, full: { machines: 50 } },
  // One install per host: a repetition would need a fresh fleet.
  runs: { quick: 1, full: 1 },
  async run(size, ctx) {
    const w = await fleetWorld(size.machines, ctx.log);
    const cores = cpus().length;
    const perMinute = (ms: number) => w.n / (ms / 60_000);
    const operator = perMinute(w.operatorInstallMs);
    const naive = perMinute(w.sequentialInstallMs);
    ctx.log(`  operator ${(w.operatorInstallMs / 1000).toFixed(1)} s, sequential stacks ${(w.sequentialInstallMs / 1000).toFixed(1)} s for ${w.n} machines`);
    return [
      {
        name: `${w.n} machines installed, operator (--concurrency 4)`,
        unit: "per min",
        samples: [operator],
        baseline: { name: "one stack per machine, sequentially", samples: [naive] },
        target: "≥ 10×",
        met: operator / naive >= 10,
      },
      { name: "time to install the fleet, operator", unit: "s", samples: [w.operatorInstallMs / 1000], baseline: { name: "sequential stacks", samples: [w.sequentialInstallMs / 1000] } },
      {
        name: "CPU per machine on the operator's side (operator + engine processes)",
        unit: "s",
        samples: [w.operatorInstallCpu / w.n],
        baseline: { name: "sequential stacks (incl. serving the mirror)", samples: [w.sequentialInstallCpu / w.n] },
        // The hosts' own work (unpacking, starting daemons) runs on this machine's two cores here,
        // on the hosts themselves in a real fleet: there the operator's CPU is what bounds the rate.
        note: `with the hosts' work elsewhere, ${cores} cores would bound the operator at ≈ ${((cores * 60) / (w.operatorInstallCpu / w.n)).toFixed(0)} machines/min (a projection from this CPU figure, not a measurement)`,
      },
    ];
  },
};
