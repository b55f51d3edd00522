/**
 * The operator's Prometheus metrics, in a Registry of their own (not prom-client's global one) so
 * that two operators in one test process, or a library user's own metrics, never collide.
 *
 * Generic parts carry the names dashboards for Kubernetes controllers already graph, so stock
 * dashboards and alerts work unchanged:
 * - process and Node.js metrics under prom-client's usual names (`process_cpu_seconds_total`,
 *   `nodejs_eventloop_lag_seconds`, ...);
 * - controller-runtime's controller metrics (`controller_runtime_reconcile_total{controller,result}`
 *   and its neighbours), label `controller` = the kind;
 * - client-go's work queue metrics (`workqueue_depth{name}`, ...), label `name` = the kind;
 * - client-go's `leader_election_master_status{name}`, label `name` = the Lease.
 * What only this project has (stack operations here; drift, certificates, machines and rollouts
 * in src/controllers) carries the `kube_on_kube_` prefix. Labels stay low-cardinality on purpose:
 * the kind, never the object key (thousands of Machines would mean thousands of series).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ReconcileEvent } from "./controller";
import type { WorkQueueOptions } from "./work-queue";

export const METRIC_PREFIX = "kube_on_kube_";

/** controller-runtime's result label: a requeue after a delay is `requeue_after`; a terminal error is an error. */
const RESULT_LABEL = { success: "success", requeue: "requeue_after", error: "error", terminal: "error" } as const;

/**
 * Reconciles and queue waits range from a cache read (ms) to a full `pulumi up` of a control plane
 * (minutes); client-go's default buckets stop at 10 s, which would put every engine run in +Inf.
 */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800];

export class OperatorMetrics {
  readonly registry = new Registry();

  readonly reconciles = new Counter({
    name: "controller_runtime_reconcile_total",
    help: "Reconciles finished, by controller (the kind) and result (success, requeue_after, error).",
    labelNames: ["controller", "result"] as const,
    registers: [this.registry],
  });

  readonly reconcileErrors = new Counter({
    name: "controller_runtime_reconcile_errors_total",
    help: "Reconciles that failed (retried with backoff, or terminal), by controller.",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });

  readonly terminalReconcileErrors = new Counter({
    name: "controller_runtime_terminal_reconcile_errors_total",
    help: "Reconciles that failed in a way retrying cannot fix (an invalid spec), by controller.",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });

  readonly reconcileTime = new Histogram({
    name: "controller_runtime_reconcile_time_seconds",
    help: "Time one reconcile took, by controller.",
    labelNames: ["controller"] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  readonly maxConcurrentReconciles = new Gauge({
    name: "controller_runtime_max_concurrent_reconciles",
    help: "Most reconciles a controller runs at once (its workers), by controller.",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });

  readonly activeWorkers = new Gauge({
    name: "controller_runtime_active_workers",
    help: "Workers reconciling right now, by controller.",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });

  readonly workqueueDepth = new Gauge({
    name: "workqueue_depth",
    help: "Keys ready to be reconciled and waiting for a worker, by queue (the kind).",
    labelNames: ["name"] as const,
    registers: [this.registry],
  });

  readonly workqueueAdds = new Counter({
    name: "workqueue_adds_total",
    help: "Keys added to a queue (an add of a key already waiting is not counted), by queue.",
    labelNames: ["name"] as const,
    registers: [this.registry],
  });

  readonly workqueueQueueDuration = new Histogram({
    name: "workqueue_queue_duration_seconds",
    help: "Time a key waited in a queue between being added and handed to a worker, by queue.",
    labelNames: ["name"] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  readonly workqueueWorkDuration = new Histogram({
    name: "workqueue_work_duration_seconds",
    help: "Time a worker held a key (its reconcile), by queue.",
    labelNames: ["name"] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  readonly workqueueRetries = new Counter({
    name: "workqueue_retries_total",
    help: "Keys re-queued with backoff after a failed reconcile, by queue.",
    labelNames: ["name"] as const,
    registers: [this.registry],
  });

  readonly leaderStatus = new Gauge({
    name: "leader_election_master_status",
    help: "1 while this replica holds the leader lease (or leads alone, without election), else 0; by lease name.",
    labelNames: ["name"] as const,
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

  constructor(options: { processMetrics?: boolean } = {}) {
    // Process metrics (memory, event-loop lag, handles) are how a leaking or stalled operator
    // shows up; under their usual names, so stock Node.js dashboards find them. Tests turn them
    // off to keep the output small.
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Starts a controller's series at zero, so `rate()` and alerts on them work before its first
   * reconcile (and on a standby replica). The Manager calls this when a kind is registered.
   */
  registerController(controller: string, concurrency: number): void {
    for (const result of new Set(Object.values(RESULT_LABEL))) this.reconciles.inc({ controller, result }, 0);
    this.reconcileErrors.inc({ controller }, 0);
    this.terminalReconcileErrors.inc({ controller }, 0);
    this.maxConcurrentReconciles.set({ controller }, concurrency);
    this.activeWorkers.set({ controller }, 0);
    this.workqueueDepth.set({ name: controller }, 0);
    this.workqueueAdds.inc({ name: controller }, 0);
    this.workqueueRetries.inc({ name: controller }, 0);
  }

  /** A Controller `onReconcile` hook that counts and times reconciles. */
  reconcileHook(): (event: ReconcileEvent) => void {
    return (event) => {
      const controller = event.kind;
      this.reconciles.inc({ controller, result: RESULT_LABEL[event.result] });
      if (event.result === "error" || event.result === "terminal") this.reconcileErrors.inc({ controller });
      if (event.result === "terminal") this.terminalReconcileErrors.inc({ controller });
      this.reconcileTime.observe({ controller }, event.durationMs / 1000);
    };
  }

  /** WorkQueue hooks for the queue of one kind. */
  queueHooks(name: string): Required<Pick<WorkQueueOptions, "onDepth" | "onRetry" | "onAdd" | "onGet" | "onDone">> {
    return {
      onDepth: (depth) => this.workqueueDepth.set({ name }, depth),
      onRetry: () => this.workqueueRetries.inc({ name }),
      onAdd: () => this.workqueueAdds.inc({ name }),
      onGet: (_key, queuedMs) => {
        this.workqueueQueueDuration.observe({ name }, queuedMs / 1000);
        this.activeWorkers.inc({ controller: name });
      },
      onDone: (_key, workedMs) => {
        this.workqueueWorkDuration.observe({ name }, workedMs / 1000);
        this.activeWorkers.dec({ controller: name });
      },
    };
  }

  /** Whether this replica leads, under the Lease's name. */
  setLeader(name: string, leading: boolean): void {
    this.leaderStatus.set({ name }, leading ? 1 : 0);
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
