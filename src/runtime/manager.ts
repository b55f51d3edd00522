/**
 * Wires the pieces into one operator process, in the order that keeps it safe:
 *
 * 1. Start every informer and wait for their caches (all replicas do this, so a standby that
 *    takes over already knows every object).
 * 2. With leader election, campaign; without it, lead at once.
 * 3. On becoming leader: open the engine fence (fencing.ts), run `beforeReconciling`, start the
 *    term's per-object recoveries (recovery.ts: each object is held until its own stacks are
 *    recovered), then start one Controller per kind and enqueue every cached key, since the
 *    previous leader's queue died with it.
 * 4. On *losing* the lease: at once, stop taking keys and close the fence (abort and kill every
 *    engine), all before `fenceBy`; if engines survive the kill, `onFenceFailed` (the operator
 *    exits). Then wait for in-flight reconciles to return.
 * 5. On stopping: stop the controllers and wait for in-flight reconciles (their engines finish),
 *    close the fence, then (election) release the lease.
 *
 * Controllers are created anew for each leadership term: a stopped WorkQueue cannot restart, and
 * a fresh queue means no stale backoff or delayed key survives a lost term.
 */
import { Controller, type Reconcile, type ReconcileEvent } from "./controller";
import { operatorReadiness, type ReadinessCheck } from "./http-server";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { KeySource, ObjectSource } from "./informer";
import type { ObjectChange, Predicate } from "./predicates";
import { LeaderElector, termLost, type LeaderElectionOptions, type Term } from "./leader-election";
import type { EngineFence, FenceWatchdog } from "./fencing";
import { TermRecovery, type RecoveryFailure, type StackRecovery } from "./recovery";
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
  readonly election?: Omit<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading" | "onRenewed">;
  /** The engines' fence: opened for each term, closed (engines killed) when it ends. */
  readonly fence?: EngineFence;
  /** Re-armed at every renewal (a little before the lease could pass on); told to kill on loss. */
  readonly watchdog?: Pick<FenceWatchdog, "arm" | "kill" | "settled">;
  /**
   * The lease was lost and engines outlived the kill (`pids`), or the kill did not finish
   * before `fenceBy`. Default: exit the process at once (its engines are orphaned to the
   * watchdog, which kills them), since another replica may lead any moment now.
   */
  readonly onFenceFailed?: (reason: string) => void;
  /**
   * The term's per-object recoveries (recovery.ts), asked at each term's start after
   * `beforeReconciling`. An object is not reconciled until its own recovery succeeded.
   */
  readonly recoveries?: (termEnded: AbortSignal, term: Term | undefined) => readonly StackRecovery[] | Promise<readonly StackRecovery[]>;
  /** A recovery failed and is retried in `retryInMs` (report it on the object). */
  readonly onRecoveryFailed?: (failure: RecoveryFailure) => void;
  readonly onRecovered?: (recovery: StackRecovery, attempts: number) => void;
  /** Controllers start after this even if some recoveries' first tries still run; default 60 s. */
  readonly recoveryFirstPassMs?: number;
  /**
   * Runs on becoming leader, before any reconcile (crash-safety cleanup). If it throws it is
   * retried with backoff (1 s doubling to 1 min) while this replica still leads; no controller
   * starts until it succeeds. `termEnded` aborts when leadership is lost meanwhile: stop then.
   */
  readonly beforeReconciling?: (termEnded: AbortSignal) => Promise<void>;
  /** Every reconcile outcome (logs); metrics are recorded already when `metrics` is set. */
  /**
   * Told once per term, when its controllers start handing out keys (after the recoveries' first
   * try), with the term and its end (the operator prunes orphan holder records then).
   */
  readonly onReconciling?: (term: Term | undefined, termEnded: AbortSignal) => void;
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
  /** The current term's recoveries, while leading. */
  private recovery: TermRecovery | undefined;
  /** Controllers of the current term are running (not recovering, not stopped). */
  private reconciling = false;
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
        onStartedLeading: (termEnded, term) => this.lead(termEnded, term),
        onStoppedLeading: () => this.stopLeading(),
        onRenewed: (fenceBy) => this.rearm(fenceBy),
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

  /** For `/readyz`: caches synced, and leading with controllers running, or standing by knowing who leads. */
  readiness(): ReadinessCheck {
    return operatorReadiness({
      cachesSynced: () => [...this.sources].every((informer) => informer.hasSynced()),
      election: this.elector,
      leading: () => this.leading,
      reconciling: () => this.reconciling,
    });
  }

  /** One line for `/readyz`'s body: the role, the controllers, the objects awaiting recovery. */
  describe(): string {
    const waiting = this.recovery?.waiting() ?? [];
    const role = !this.leading
      ? `standby; leader: ${this.elector?.leader() ?? "unknown"}`
      : this.elector
        ? `leading as ${this.elector.currentTerm()?.identity ?? "?"}`
        : "leading (no leader election)";
    const controllers = this.reconciling ? `controllers running: ${[...this.controllers.keys()].join(", ")}` : "controllers not running";
    const held = waiting.length ? `; ${waiting.length} object(s) awaiting stack recovery: ${waiting.slice(0, 5).map((w) => `${w.kind} ${w.key}`).join(", ")}${waiting.length > 5 ? ", …" : ""}` : "";
    return `${role}; ${controllers}${held}`;
  }

  /** The current term's recovery state (tests, logs). */
  recoveryState(): ReturnType<TermRecovery["waiting"]> {
    return this.recovery?.waiting() ?? [];
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
      this.soleTerm = { ended, starting: this.lead(ended.signal, undefined) };
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

  /** A renewal succeeded: engines may run until `fenceBy`; the watchdog kills them a little before. */
  private rearm(fenceBy: number): void {
    const clock = this.options.clock ?? realClock;
    const lease = this.options.election?.leaseDurationMs ?? 15_000;
    const renew = this.options.election?.renewDeadlineMs ?? 10_000;
    // Half the slack between giving up and the lease passing on, at most 1 s, before fenceBy.
    const margin = Math.min(1000, (lease - renew) / 2);
    this.options.fence?.renewed(fenceBy - margin);
    this.options.watchdog?.arm(fenceBy - clock.now() - margin);
  }

  /** A leadership term begins: open the fence, clean up (retrying), recover, start the controllers. */
  private async lead(term: AbortSignal, token: Term | undefined): Promise<void> {
    this.leading = true;
    this.options.metrics?.setLeader(this.name, true);
    // The last term's kills (same marker) must be over before this term's engines start.
    if (this.options.watchdog || this.options.fence) {
      await Promise.all([this.options.watchdog?.settled(), this.options.fence?.settled()]);
      if (term.aborted) return;
    }
    this.options.fence?.open(token);
    // Lost (not given up): fence at once, beside whatever the term is still doing.
    term.addEventListener("abort", () => void this.fenceLostTerm(term), { once: true });
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
    // Which objects need a recovery may take a read (the holder records of a non-file backend).
    let recoveries: readonly StackRecovery[] = [];
    for (let attempt = 0; this.options.recoveries; attempt++) {
      try {
        recoveries = await this.options.recoveries(term, token);
        break;
      } catch (err) {
        this.report(err);
        if (!(await sleep(clock, exponentialDelay(attempt, 1000, 60_000), term))) return;
      }
    }
    if (term.aborted) return;
    const recovery = new TermRecovery({
      recoveries,
      termEnded: term,
      clock: this.options.clock,
      firstPassMs: this.options.recoveryFirstPassMs,
      onFailure: (failure) => this.options.onRecoveryFailed?.(failure),
      onRecovered: (r, attempts) => {
        this.options.onRecovered?.(r, attempts);
        this.enqueue(r.kind, r.key);
      },
    });
    this.recovery = recovery;
    await recovery.firstPass;
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
      const kind = registration.kind;
      const controller = new Controller({
        kind,
        // An object whose stacks are not recovered yet waits: its recovery enqueues it when done.
        reconcile: (key) => (recovery.isHeld(kind, key) ? Promise.resolve() : registration.reconcile(key)),
        concurrency: registration.concurrency,
        queue,
        clock: this.options.clock,
        onReconcile: (event) => {
          recordMetrics?.(event);
          this.options.onReconcile?.(event);
        },
      });
      this.controllers.set(kind, controller);
      controller.start();
      // The previous leader's queue died with it: look at everything once.
      for (const obj of registration.informer.list()) controller.enqueue(objectKey(obj));
    }
    this.reconciling = true;
    this.options.onReconciling?.(token, term);
  }

  /**
   * The lease was lost: no key is handed out any more, every engine is aborted and killed, all
   * before `fenceBy`. A kill that leaves processes behind, or ends too late, calls onFenceFailed.
   */
  private async fenceLostTerm(term: AbortSignal): Promise<void> {
    const lost = termLost(term);
    if (!lost) return;
    this.reconciling = false;
    for (const controller of this.controllers.values()) controller.queue.shutDown();
    this.options.watchdog?.kill();
    const fence = this.options.fence;
    if (!fence) return;
    const clock = this.options.clock ?? realClock;
    const left = await fence.close();
    const late = clock.now() >= lost.fenceBy;
    if (left.length > 0 || late) {
      const reason = left.length > 0 ? `engine processes ${left.join(", ")} survived SIGKILL` : `the engines were stopped ${clock.now() - lost.fenceBy} ms after the lease could pass on`;
      this.report(new Error(`fencing failed after losing the lease: ${reason}`));
      (this.options.onFenceFailed ?? defaultFenceFailed)(reason);
    }
  }

  private async stopLeading(): Promise<void> {
    this.leading = false;
    this.reconciling = false;
    this.recovery = undefined;
    this.options.metrics?.setLeader(this.name, false);
    const running = [...this.controllers.values()];
    this.controllers = new Map();
    await Promise.all(running.map((c) => c.stop()));
    // A clean stop let the reconciles finish; a lost term was fenced already (closing is idempotent).
    await this.options.fence?.close();
  }

  private report(err: unknown): void {
    try {
      this.options.onError?.(err);
    } catch {
      // Logging must not break the manager.
    }
  }
}

/** Exits at once: a replica that cannot prove its engines gone must not live on beside the next leader. */
function defaultFenceFailed(reason: string): never {
  process.stderr.write(`kube-on-kube operator: fencing failed (${reason}); exiting so the next leader is safe\n`);
  process.exit(70);
}
