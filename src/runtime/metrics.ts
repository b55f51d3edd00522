/**
 * The operator's Prometheus metrics, in a Registry of their own (not prom-client's global one) so
 * that two operators in one test process, or a library user's own metrics, never collide.
 * Names carry the `kube_on_kube_` prefix; labels are low-cardinality on purpose: `kind`, never
 * the object key (thousands of Machines would mean thousands of series). The one exception is
 * certificate expiry, one series per Cluster: Clusters are dozens, and an alert has to name the
 * Cluster whose certificates run out.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ClusterReconcilerHooks, DriftCheckResult } from "../controllers/cluster/reconciler";
import type { ReconcileEvent } from "./controller";

export const METRIC_PREFIX = "kube_on_kube_";

export class OperatorMetrics {
  readonly registry = new Registry();

  readonly reconciles = new Counter({
    name: `${METRIC_PREFIX}reconciles_total`,
    help: "Reconciles finished, by kind and result (success, requeue, error, terminal).",
    labelNames: ["kind", "result"] as const,
    registers: [this.registry],
  });

  readonly reconcileDuration = new Histogram({
    name: `${METRIC_PREFIX}reconcile_duration_seconds`,
    help: "Time one reconcile took, by kind.",
    labelNames: ["kind"] as const,
    // Reconciles range from a cache read (ms) to a full `pulumi up` of a control plane (minutes).
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });

  readonly workqueueDepth = new Gauge({
    name: `${METRIC_PREFIX}workqueue_depth`,
    help: "Keys ready to be reconciled and waiting for a worker, by kind.",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });

  readonly workqueueRetries = new Counter({
    name: `${METRIC_PREFIX}workqueue_retries_total`,
    help: "Keys re-queued with backoff after a failed reconcile, by kind.",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });

  readonly stackOperations = new Counter({
    name: `${METRIC_PREFIX}stack_operations_total`,
    help: "Pulumi stack operations (up, preview, refresh, destroy, cancel), by kind, operation and result.",
    labelNames: ["kind", "operation", "result"] as const,
    registers: [this.registry],
  });

  readonly stackOperationDuration = new Histogram({
    name: `${METRIC_PREFIX}stack_operation_duration_seconds`,
    help: "Time one Pulumi stack operation took, by operation.",
    labelNames: ["operation"] as const,
    buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600],
    registers: [this.registry],
  });

  readonly driftChecks = new Counter({
    name: `${METRIC_PREFIX}drift_checks_total`,
    help: "Drift checks of reconciled objects, by kind, method (fingerprint: the live objects were unchanged; preview: a full preview with refresh) and result (in-sync, drifted, error).",
    labelNames: ["kind", "method", "result"] as const,
    registers: [this.registry],
  });

  readonly driftCorrections = new Counter({
    name: `${METRIC_PREFIX}drift_corrections_total`,
    help: "Drift found by a drift check and put back by a successful update, by kind.",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });

  readonly certificatesExpireAt = new Gauge({
    name: `${METRIC_PREFIX}certificates_expire_at_seconds`,
    help: "Unix time at which the earliest certificate of a Cluster expires (status.certificatesExpireAt), by Cluster.",
    labelNames: ["namespace", "name"] as const,
    registers: [this.registry],
  });

  readonly leader = new Gauge({
    name: `${METRIC_PREFIX}leader`,
    help: "1 while this replica holds the leader lease, else 0.",
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    this.leader.set(0);
    // Process metrics (memory, event-loop lag, handles) are how a leaking or stalled operator
    // shows up; tests turn them off to keep the output small.
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  /** A Controller `onReconcile` hook that counts and times reconciles. */
  reconcileHook(): (event: ReconcileEvent) => void {
    return (event) => {
      this.reconciles.inc({ kind: event.kind, result: event.result });
      this.reconcileDuration.observe({ kind: event.kind }, event.durationMs / 1000);
    };
  }

  /** WorkQueue `onDepth`/`onRetry` hooks for one kind. */
  queueHooks(kind: string): { onDepth: (depth: number) => void; onRetry: () => void } {
    return {
      onDepth: (depth) => this.workqueueDepth.set({ kind }, depth),
      onRetry: () => this.workqueueRetries.inc({ kind }),
    };
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

  /** Records one stack operation (the stack runner calls this around each Automation API call). */
  recordStackOperation(kind: string, operation: string, result: "success" | "error", durationMs: number): void {
    this.stackOperations.inc({ kind, operation, result });
    this.stackOperationDuration.observe({ operation }, durationMs / 1000);
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
