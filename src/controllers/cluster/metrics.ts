/**
 * Metrics of Clusters, in the operator's registry (runtime/metrics.ts): drift checks and
 * corrections, and certificate expiry. Expiry is the one series per Cluster: Clusters are dozens,
 * and an alert has to name the Cluster whose certificates run out.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import { METRIC_PREFIX } from "../../runtime/metrics";
import type { ClusterReconcilerHooks, DriftCheckResult } from "./reconciler";

export class ClusterMetrics {
  readonly driftChecks: Counter<"kind" | "method" | "result">;
  readonly driftCorrections: Counter<"kind">;
  readonly certificatesExpireAt: Gauge<"namespace" | "name">;

  constructor(registry: Registry) {
    this.driftChecks = new Counter({
      name: `${METRIC_PREFIX}drift_checks_total`,
      help: "Drift checks of reconciled objects, by kind, method (fingerprint: the live objects were unchanged; preview: a full preview with refresh) and result (in-sync, drifted, error).",
      labelNames: ["kind", "method", "result"] as const,
      registers: [registry],
    });
    this.driftCorrections = new Counter({
      name: `${METRIC_PREFIX}drift_corrections_total`,
      help: "Drift found by a drift check and put back by a successful update, by kind.",
      labelNames: ["kind"] as const,
      registers: [registry],
    });
    this.certificatesExpireAt = new Gauge({
      name: `${METRIC_PREFIX}certificates_expire_at_seconds`,
      help: "Unix time at which the earliest certificate of a Cluster expires (status.certificatesExpireAt), by Cluster.",
      labelNames: ["namespace", "name"] as const,
      registers: [registry],
    });
  }

  /** Every ClusterReconciler hook: drift checks and corrections of `kind`, certificate expiry. */
  hooks(kind: string): Required<Pick<ClusterReconcilerHooks, "driftChecked" | "driftCorrected" | "certificatesExpireAt">> {
    return { ...this.driftHooks(kind), certificatesExpireAt: (namespace, name, at) => this.setCertificatesExpireAt(namespace, name, at) };
  }

  /**
   * ClusterReconciler hooks for drift checks and corrections of one kind. Its series start at
   * zero, so `increase()` and alerts on them work before the first drift is ever found.
   */
  driftHooks(kind: string): Required<Pick<ClusterReconcilerHooks, "driftChecked" | "driftCorrected">> {
    for (const result of ["in-sync", "drifted", "error"] satisfies DriftCheckResult[]) this.driftChecks.inc({ kind, method: "preview", result }, 0);
    this.driftChecks.inc({ kind, method: "fingerprint", result: "in-sync" }, 0);
    this.driftCorrections.inc({ kind }, 0);
    return {
      driftChecked: (result, method) => this.driftChecks.inc({ kind, method, result }),
      driftCorrected: () => this.driftCorrections.inc({ kind }),
    };
  }

  /** Sets a Cluster's certificate expiry; `undefined` removes its series (the Cluster is going). */
  setCertificatesExpireAt(namespace: string, name: string, expiresAt: Date | undefined): void {
    const seconds = expiresAt ? expiresAt.getTime() / 1000 : Number.NaN;
    if (Number.isNaN(seconds)) this.certificatesExpireAt.remove({ namespace, name });
    else this.certificatesExpireAt.set({ namespace, name }, seconds);
  }
}
