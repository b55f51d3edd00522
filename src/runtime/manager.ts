/**
 * Wires the pieces into one operator process, in the order that keeps it safe:
 *
 * 1. Start every informer and wait for their caches (all replicas do this, so a standby that
 *    takes over already knows every object).
 * 2. With leader election, campaign; without it, lead at once.
 * 3. On becoming leader: run `beforeReconciling` (the crash-safety step: clear stale stack locks
 *    and pending operations before any update), then start one Controller per kind and enqueue
 *    every cached key, since the previous leader's queue died with it.
 * 4. On losing leadership or stopping: stop the controllers and wait for in-flight reconciles,
 *    then (election) release the lease.
 *
 * Controllers are created anew for each leadership term: a stopped WorkQueue cannot restart, and
 * a fresh queue means no stale backoff or delayed key survives a lost term.
 */
import { Controller, type Reconcile, type ReconcileEvent } from "./controller";
import { operatorReadiness, type ReadinessCheck } from "./http-server";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { KeySource, ObjectSource } from "./informer";
import type { ObjectChange, Predicate } from "./predicates";
import { LeaderElector, type LeaderElectionOptions } from "./leader-election";
import type { OperatorMetrics } from "./metrics";
import { objectKey } from "./keys";
import { exponentialDelay, type BackoffOptions, type TokenBucketOptions } from "./rate-limiter";
import { WorkQueue } from "./work-queue";
import { realClock, sleep, type Clock } from "./clock";

/**
 * A cross-kind wake-up, declared with the registration that receives it (controller-runtime's
 * `Watches(source, EnqueueRequestsFromMapFunc)`): every change of `informer` that passes
 * `predicate` enqueues the keys `map` returns, of the registering kind.
 */
export interface Watch<S extends KubernetesObject = KubernetesObject> {
  readonly informer: ObjectSource<S>;
  readonly predicate?: Predicate<S>;
  /** Keys of the registering kind to enqueue; sees the object before and after the change. */
  readonly map: (change: ObjectChange<S>) => Iterable<string>;
}

/** Declares a watch with its object type checked, then erases it for the registration's list. */
export function watch<S extends KubernetesObject>(w: Watch<S>): Watch {
  return w as unknown as Watch;
}

export interface KindRegistration<T extends KubernetesObject = KubernetesObject> {
  /** The kind reconciled, e.g. "Cluster"; labels metrics. */
  readonly kind: string;
  /** The informer whose keys are this kind's keys. */
  readonly informer: ObjectSource<T>;
  readonly reconcile: Reconcile;
  /** Most reconciles of this kind at once (`--concurrency`). Default 1. */
  readonly concurrency?: number;
  readonly backoff?: BackoffOptions;
  readonly rateLimit?: TokenBucketOptions;
  /**
   * Which changes of the kind's own objects wake the reconciler (predicates.ts). Default: all.
   * Reconcilers that write status use it to ignore their own status writes, so a failing object
   * waits for its backoff instead of being retried by its own status update.
   */
  readonly predicate?: Predicate<T>;
  /** Changes of other kinds that concern objects of this kind. */
  readonly watches?: readonly Watch[];
}

export interface ManagerOptions {
  readonly metrics?: OperatorMetrics;
  /**
   * This manager's name in `leader_election_master_status{name}`. Default: the election's Lease
   * name, or "manager" without election (the one replica then always leads).
   */
  readonly name?: string;
  /** Leader election; absent: this process always leads (a single replica, or tests). */
  readonly election?: Omit<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading">;
  /**
   * Runs on becoming leader, before any reconcile (crash-safety cleanup). If it throws it is
   * retried with backoff (1 s doubling to 1 min) while this replica still leads; no controller
   * starts until it succeeds. `termEnded` aborts when leadership is lost meanwhile: stop then.
   */
  readonly beforeReconciling?: (termEnded: AbortSignal) => Promise<void>;
  /** Every reconcile outcome (logs); metrics are recorded already when `metrics` is set. */
  readonly onReconcile?: (event: ReconcileEvent) => void;
  readonly onError?: (err: unknown) => void;
  readonly clock?: Clock;
}

export class Manager {
  private readonly options: ManagerOptions;
  private readonly kinds = new Map<string, KindRegistration>();
  /** Every informer a registration reads, its own or watched: started and synced before leading. */
  private readonly sources = new Set<KeySource>();
  private readonly elector: LeaderElector | undefined;
  private readonly name: string;
  private controllers = new Map<string, Controller>();
  private leading = false;
  private started = false;
  /** Without leader election: the one term, ended by stop(), and its start-up. */
  private soleTerm: { readonly ended: AbortController; readonly starting: Promise<void> } | undefined;

  constructor(options: ManagerOptions = {}) {
    this.options = options;
    this.name = options.name ?? options.election?.name ?? "manager";
    options.metrics?.setLeader(this.name, false);
    if (options.election) {
      this.elector = new LeaderElector({
        ...options.election,
        // The elector runs this beside its renewals, aborts the signal when the term ends, and
        // waits for this to return before calling onStoppedLeading.
        onStartedLeading: (termEnded) => this.lead(termEnded),
        onStoppedLeading: () => this.stopLeading(),
      });
    }
  }

  /**
   * Adds a kind: every change of its own objects that passes its predicate, and every key its
   * watches map a change of another kind to, is enqueued while this replica leads.
   */
  register<T extends KubernetesObject>(registration: KindRegistration<T>): void {
    const { kind, informer, predicate } = registration;
    if (this.started) throw new Error(`manager: register ${kind} before start()`);
    if (this.kinds.has(kind)) throw new Error(`manager: kind ${kind} registered twice`);
    this.kinds.set(kind, registration as unknown as KindRegistration);
    this.sources.add(informer);
    this.options.metrics?.registerController(kind, registration.concurrency ?? 1);
    informer.onObjectChange((change) => {
      if (!predicate || predicate(change)) this.enqueue(kind, change.key);
    });
    for (const w of registration.watches ?? []) {
      this.sources.add(w.informer);
      w.informer.onObjectChange((change) => {
        if (w.predicate && !w.predicate(change)) return;
        for (const key of w.map(change)) this.enqueue(kind, key);
      });
    }
  }

  /** Enqueues a key of `kind` (e.g. a Machine change that concerns its Cluster); dropped while standing by. */
  enqueue(kind: string, key: string): void {
    this.controllers.get(kind)?.enqueue(key);
  }

  isLeading(): boolean {
    return this.leading;
  }

  /** For `/readyz`: caches synced, and leading or knowing who leads. */
  readiness(): ReadinessCheck {
    return operatorReadiness({
      cachesSynced: () => [...this.sources].every((informer) => informer.hasSynced()),
      election: this.elector,
    });
  }

  /** Starts informers, waits for their caches, then leads or campaigns. Resolves once that began. */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const informer of this.sources) informer.start();
    await Promise.all([...this.sources].map((informer) => informer.waitForSync(signal)));
    if (this.elector) {
      this.elector.start();
    } else {
      const ended = new AbortController();
      this.soleTerm = { ended, starting: this.lead(ended.signal) };
    }
  }

  /** Stops reconciling (draining in-flight work), releases the lease, stops informers. */
  async stop(): Promise<void> {
    if (this.elector) {
      await this.elector.stop();
    } else {
      this.soleTerm?.ended.abort();
      await this.soleTerm?.starting;
      await this.stopLeading();
    }
    await Promise.all([...this.sources].map((informer) => informer.stop()));
  }

  /** A leadership term begins: clean up (retrying), then start one controller per kind. */
  private async lead(term: AbortSignal): Promise<void> {
    this.leading = true;
    this.options.metrics?.setLeader(this.name, true);
    const clock = this.options.clock ?? realClock;
    for (let attempt = 0; this.options.beforeReconciling; attempt++) {
      try {
        await this.options.beforeReconciling(term);
        break;
      } catch (err) {
        this.report(err);
        if (!(await sleep(clock, exponentialDelay(attempt, 1000, 60_000), term))) return;
      }
    }
    if (term.aborted) return;
    const { metrics } = this.options;
    for (const registration of this.kinds.values()) {
      const queue = new WorkQueue({
        clock: this.options.clock,
        backoff: registration.backoff,
        rateLimit: registration.rateLimit,
        ...metrics?.queueHooks(registration.kind),
      });
      const recordMetrics = metrics?.reconcileHook();
      const controller = new Controller({
        kind: registration.kind,
        reconcile: registration.reconcile,
        concurrency: registration.concurrency,
        queue,
        clock: this.options.clock,
        onReconcile: (event) => {
          recordMetrics?.(event);
          this.options.onReconcile?.(event);
        },
      });
      this.controllers.set(registration.kind, controller);
      controller.start();
      // The previous leader's queue died with it: look at everything once.
      for (const obj of registration.informer.list()) controller.enqueue(objectKey(obj));
    }
  }

  private async stopLeading(): Promise<void> {
    this.leading = false;
    this.options.metrics?.setLeader(this.name, false);
    const running = [...this.controllers.values()];
    this.controllers = new Map();
    await Promise.all(running.map((c) => c.stop()));
  }

  private report(err: unknown): void {
    try {
      this.options.onError?.(err);
    } catch {
      // Logging must not break the manager.
    }
  }
}
