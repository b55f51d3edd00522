/**
 * Metrics of the worker fleet, in the operator's registry: machines by phase (computed from the
 * informer cache at scrape time, so they are never stale and cost nothing between scrapes),
 * installs and repairs by action and result, SSH probe durations, and each rollout's progress.
 * Rollout series are per ClusterPackageVersion (tens per meta-cluster), never per Machine. The
 * kubelet certificates' expiry is per Machine (two series each), since the alert must name the
 * host; it too is read from the cache at scrape time, so a deleted Machine leaves no series.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { MachinePhase, type MachineCertificates } from "../../api/v1alpha1";
import { METRIC_PREFIX } from "../../runtime/metrics";

const PHASES = (MachinePhase as unknown as { anyOf: { const: string }[] }).anyOf?.map((s) => s.const) ?? [];

/** What the fleet's gauges read of a cached Machine. */
export interface FleetMachine {
  readonly metadata?: { readonly namespace: string; readonly name: string };
  readonly spec?: { readonly clusterRef: { readonly name: string } };
  readonly status?: { readonly phase?: string; readonly certificates?: MachineCertificates };
}

export class FleetMetrics {
  private readonly actions: Counter<"action" | "result">;
  private readonly ssh: Histogram<"operation" | "result">;
  private readonly rollout: Gauge<"namespace" | "name" | "state">;

  constructor(registry: Registry, machines: () => readonly FleetMachine[]) {
    new Gauge({
      name: `${METRIC_PREFIX}machines`,
      help: "Machines by phase (Pending, Installing, Ready, NotReady, Remediating, Failed, ...).",
      labelNames: ["phase"] as const,
      registers: [registry],
      collect() {
        const counts = new Map<string, number>(PHASES.map((p) => [p, 0]));
        for (const m of machines()) {
          const phase = m.status?.phase ?? "Pending";
          counts.set(phase, (counts.get(phase) ?? 0) + 1);
        }
        for (const [phase, n] of counts) this.set({ phase }, n);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}machine_certificate_expiry_timestamp_seconds`,
      help: "When a Machine's kubelet certificate (client or serving) expires, as its stack issued it (status.certificates).",
      labelNames: ["namespace", "name", "cluster", "certificate"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const m of machines()) {
          const certs = m.status?.certificates;
          for (const [certificate, c] of [["client", certs?.kubeletClient], ["serving", certs?.kubeletServing]] as const) {
            const at = c ? Date.parse(c.notAfter) : NaN;
            if (m.metadata && !Number.isNaN(at)) this.set({ namespace: m.metadata.namespace, name: m.metadata.name, cluster: m.spec?.clusterRef.name ?? "", certificate }, at / 1000);
          }
        }
      },
    });
    this.actions = new Counter({
      name: `${METRIC_PREFIX}machine_actions_total`,
      help: "Machine installs, upgrades, drift corrections, repairs (restart-services, reinstall) and certificate renewals (certificates), by result.",
      labelNames: ["action", "result"] as const,
      registers: [registry],
    });
    this.ssh = new Histogram({
      name: `${METRIC_PREFIX}ssh_operation_duration_seconds`,
      help: "Short SSH operations outside the engine (probe, restart), by result.",
      labelNames: ["operation", "result"] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    this.rollout = new Gauge({
      name: `${METRIC_PREFIX}rollout_machines`,
      help: "Machines of a ClusterPackageVersion's rollout: total, updated (on the new catalog) and ready.",
      labelNames: ["namespace", "name", "state"] as const,
      registers: [registry],
    });
  }

  recordAction(action: string, result: "success" | "error"): void {
    this.actions.inc({ action, result });
  }

  recordSsh(operation: string, result: "success" | "error", durationMs: number): void {
    this.ssh.observe({ operation, result }, durationMs / 1000);
  }

  recordRollout(key: string, progress: { updated?: number; ready?: number; total?: number }): void {
    const [namespace, name] = key.split("/");
    for (const state of ["total", "updated", "ready"] as const) this.rollout.set({ namespace, name, state }, progress[state] ?? 0);
  }

  forgetRollout(key: string): void {
    const [namespace, name] = key.split("/");
    for (const state of ["total", "updated", "ready"]) this.rollout.remove({ namespace, name, state });
  }
}
