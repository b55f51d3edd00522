/**
 * One active operator replica, elected through a `coordination.k8s.io/v1` Lease, as client-go's
 * `tools/leaderelection` does it. Two replicas running `pulumi up` on one stack would corrupt it,
 * so the rules favour "nobody leads for a moment" over "two lead at once":
 *
 * - Candidates try every `retryPeriod`. A lease held by someone else counts as valid until
 *   `leaseDuration` after *we last saw it change*, measured on our own clock, so clock skew
 *   between replicas does not matter (client-go's `observedTime`).
 * - The leader renews every `retryPeriod`. If no renewal succeeds for `renewDeadline` (shorter
 *   than `leaseDuration`), it stops leading — before any other replica can take the lease.
 * - Every write carries the resourceVersion it read (optimistic concurrency); a 409 means
 *   someone else wrote first, so we re-read and decide again.
 * - `onStartedLeading` runs beside the renew loop, not before it (client-go runs it in a
 *   goroutine): a slow start-up step, such as recovering stacks, must not stop the renewals.
 *   Its signal aborts when the term ends; start-up work must check it before acting.
 * - When a term ends, the signal aborts, the elector waits for `onStartedLeading` to return, and
 *   then runs `onStoppedLeading` (which drains the controllers). On `stop()` the lease is released
 *   only after that, so the next leader never overlaps with our last reconcile.
 * - A term *lost* (renewals failed past the deadline) aborts the signal with a `TermLost` reason
 *   carrying `fenceBy`: the time, on our clock, before which we must have stopped every engine.
 *   It is `leaseDuration` after the start of the last renewal that succeeded: the write landed
 *   after that start, and a candidate waits `leaseDuration` from when it *saw* the write, so no
 *   one can take the lease earlier (clock rates equal, as client-go also assumes). With the
 *   defaults that leaves 5 s between giving up (renew deadline) and the lease being takeable.
 */
import type { CoordinationV1Api, V1Lease } from "@kubernetes/client-node";
import { V1MicroTime } from "@kubernetes/client-node";
import { isConflict, isNotFound } from "./api-errors";
import { realClock, sleep, type Clock } from "./clock";

/** Why a term's signal aborted when the lease was lost (not on a clean `stop()`). */
export class TermLost extends Error {
  constructor(
    /** On the elector's clock: every engine must be gone before this (the lease may be taken then). */
    readonly fenceBy: number,
  ) {
    super("leader election: lost the lease");
    this.name = "TermLost";
  }
}

/** The `TermLost` reason of an aborted term signal, or undefined (still leading, or a clean stop). */
export function termLost(signal: AbortSignal): TermLost | undefined {
  return signal.aborted && signal.reason instanceof TermLost ? signal.reason : undefined;
}

/** A leadership term: who holds the lease and which transition of it this is (a fencing token). */
export interface Term {
  readonly identity: string;
  /** The Lease's `leaseTransitions` when we took it, and its `acquireTime` (ms): unique per term. */
  readonly transitions: number;
  readonly acquiredAt: number;
}

export type LeaseApi = Pick<CoordinationV1Api, "readNamespacedLease" | "createNamespacedLease" | "replaceNamespacedLease">;

export interface LeaderElectionOptions {
  readonly api: LeaseApi;
  readonly namespace: string;
  /** Lease name, e.g. "kube-on-kube-operator". */
  readonly name: string;
  /** This replica's identity (pod name); must be unique among replicas. */
  readonly identity: string;
  /** How long a lease stays valid without renewal. Default 15 s. */
  readonly leaseDurationMs?: number;
  /** How long the leader keeps trying to renew before giving up. Default 10 s. */
  readonly renewDeadlineMs?: number;
  /** Pause between attempts. Default 2 s. */
  readonly retryPeriodMs?: number;
  readonly clock?: Clock;
  /**
   * Became leader: start controllers. `termEnded` aborts when leadership ends (reason `TermLost`
   * when the lease was lost rather than given up); check it before acting.
   */
  readonly onStartedLeading: (termEnded: AbortSignal, term: Term) => void | Promise<void>;
  /** No longer leader (lost or stopping): stop controllers and wait for them to drain. */
  readonly onStoppedLeading: () => void | Promise<void>;
  /**
   * The lease was acquired or renewed: every engine of ours must be gone before `fenceBy` (our
   * clock) unless another renewal comes first. The fence's watchdog is re-armed with it.
   */
  readonly onRenewed?: (fenceBy: number) => void;
  /** Someone (maybe us) holds the lease now; for logs. */
  readonly onNewLeader?: (identity: string) => void;
  /** A lease read or write failed; for logs. */
  readonly onError?: (err: unknown) => void;
}

export class LeaderElector {
  private readonly options: LeaderElectionOptions;
  private readonly clock: Clock;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private leading = false;
  /** Our identity is in the lease (we wrote it last); may be true briefly without leading. */
  private held = false;
  private observedRecord = "";
  private observedTime = 0;
  /** The lease as we last wrote it (our term's token). */
  private written: Term | undefined;
  private lastLeader: string | undefined;
  /** The current term: its end signal and its onStartedLeading still running. */
  private term: { readonly ended: AbortController; readonly starting: Promise<void> } | undefined;

  constructor(options: LeaderElectionOptions) {
    this.options = options;
    this.clock = options.clock ?? realClock;
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (!(this.leaseDurationMs > this.renewDeadlineMs && this.renewDeadlineMs > this.retryPeriodMs && this.retryPeriodMs > 0)) {
      throw new Error(
        `leader election: need leaseDuration > renewDeadline > retryPeriod > 0, got ${this.leaseDurationMs} / ${this.renewDeadlineMs} / ${this.retryPeriodMs} ms`,
      );
    }
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** The current term while leading, else undefined. */
  currentTerm(): Term | undefined {
    return this.leading ? this.written : undefined;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder we last saw in the lease (maybe us), or undefined before the first read. */
  leader(): string | undefined {
    return this.lastLeader;
  }

  /**
   * Stops campaigning. A leader runs `onStoppedLeading` and then, unless `release` is false,
   * empties the lease so a standby takes over at once instead of after `leaseDuration`.
   * (`release: false` is what a crash looks like; tests use it.)
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.stopping = true;
    // A leader drains (onStoppedLeading waits for the updates in flight, maybe for minutes) while
    // its loop still renews: a lease left to run out under the drain would let the next leader
    // take the stacks, and the fence's watchdog would kill the engines the drain waits for (found
    // with `helm upgrade` of the operator's Pod: the `pulumi up` in flight was killed 15 s after SIGTERM).
    if (this.leading) await this.endTerm();
    this.abort.abort();
    await this.loop;
    if (this.leading) await this.endTerm();
    if (this.held && options.release !== false) await this.release();
    this.held = false;
  }

  /** stop() was called: campaign no more (a leader's loop renews until its drain is over). */
  private stopping = false;
  /** The renew loop of a term runs (also while stop() drains it): writes keep the term's acquireTime. */
  private renewing = false;

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      // Times are taken *before* each write: it landed after that, so the lease is ours until
      // at least then + leaseDuration in any candidate's eyes.
      let lastRenewal = this.clock.now();
      while (!this.stopped && !this.stopping && !(await this.attempt())) {
        await sleep(this.clock, this.retryPeriodMs, this.abort.signal);
        lastRenewal = this.clock.now();
      }
      if (this.stopped || this.stopping) return;
      this.leading = true;
      this.renewing = true;
      this.renewed(lastRenewal);
      const ended = new AbortController();
      const term = this.written!;
      this.term = { ended, starting: this.callback(() => this.options.onStartedLeading(ended.signal, term)) };
      try {
        while (!this.stopped) {
          await sleep(this.clock, this.retryPeriodMs, this.abort.signal);
          if (this.stopped) return;
          const tried = this.clock.now();
          if (await this.attempt(lastRenewal + this.renewDeadlineMs - tried)) {
            lastRenewal = tried;
            this.renewed(lastRenewal);
          } else if (this.clock.now() - lastRenewal >= this.renewDeadlineMs) break;
        }
      } finally {
        this.renewing = false;
      }
      // Renewal failed past the deadline: another replica may take the lease once it expires,
      // and we must have stopped acting by then (fenceBy).
      this.held = false;
      // Lost while stop() drains the term: no renewal re-arms the fence's watchdog any more, which
      // kills the engines before fenceBy as for a frozen operator; the drain then ends.
      if (this.stopping) return;
      await this.endTerm(new TermLost(lastRenewal + this.leaseDurationMs));
    }
  }

  private renewed(lastRenewal: number): void {
    try {
      this.options.onRenewed?.(lastRenewal + this.leaseDurationMs);
    } catch (err) {
      this.report(err);
    }
  }

  private async endTerm(reason?: TermLost): Promise<void> {
    this.leading = false;
    const term = this.term;
    this.term = undefined;
    term?.ended.abort(reason);
    await term?.starting;
    await this.callback(this.options.onStoppedLeading);
  }

  /**
   * One try to acquire or renew. A try that outlives `budgetMs` counts as failed: a hung request
   * must not keep us believing we lead past the renew deadline.
   */
  private async attempt(budgetMs = this.renewDeadlineMs): Promise<boolean> {
    if (budgetMs <= 0) return false;
    // Ends the timeout timer as soon as the race is decided, so attempts do not pile up timers.
    const settled = new AbortController();
    const timedOut = sleep(this.clock, budgetMs, AbortSignal.any([this.abort.signal, settled.signal])).then(() => false);
    try {
      return await Promise.race([this.tryAcquireOrRenew(), timedOut]);
    } catch (err) {
      this.report(err);
      return false;
    } finally {
      settled.abort();
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.options;
    for (let conflicts = 0; conflicts < 3; conflicts++) {
      let lease: V1Lease;
      try {
        lease = await api.readNamespacedLease({ name, namespace });
      } catch (err) {
        if (!isNotFound(err)) throw err;
        try {
          const created = await api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: this.spec(undefined) } });
          this.observe(created);
          this.held = true;
          return true;
        } catch (createErr) {
          if (isConflict(createErr)) continue;
          throw createErr;
        }
      }
      this.observe(lease);
      const holder = lease.spec?.holderIdentity ?? "";
      const durationMs = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
      if (holder !== "" && holder !== identity && this.observedTime + durationMs > this.clock.now()) return false;
      if (this.stopped) return false;
      try {
        const updated = await api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: this.spec(lease) } });
        this.observe(updated);
        this.held = true;
        return true;
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
    return false;
  }

  /** The spec we write: renew keeps acquireTime and transitions; a takeover bumps them. */
  private spec(current: V1Lease | undefined): V1Lease["spec"] {
    const now = new V1MicroTime(this.clock.now());
    const wasOurs = current?.spec?.holderIdentity === this.options.identity;
    // A new term even when we take back our own lease after losing it: acquireTime is the term's
    // fencing token, and records of the lost term must not look like the new term's.
    const renewing = wasOurs && this.renewing;
    return {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      acquireTime: renewing && current?.spec?.acquireTime ? current.spec.acquireTime : now,
      renewTime: now,
      leaseTransitions: (current?.spec?.leaseTransitions ?? 0) + (current && !wasOurs ? 1 : 0),
    };
  }

  private observe(lease: V1Lease): void {
    const spec = lease.spec ?? {};
    if (spec.holderIdentity === this.options.identity) {
      this.written = { identity: this.options.identity, transitions: spec.leaseTransitions ?? 0, acquiredAt: spec.acquireTime ? new Date(spec.acquireTime as unknown as string | Date).getTime() : 0 };
    }
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.acquireTime, spec.leaseTransitions, spec.leaseDurationSeconds]);
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedTime = this.clock.now();
    }
    const holder = spec.holderIdentity ?? "";
    if (holder !== "" && holder !== this.lastLeader) {
      this.lastLeader = holder;
      try {
        this.options.onNewLeader?.(holder);
      } catch {
        // Logging must not break the election.
      }
    }
  }

  /** Empties the lease if it is still ours (a 409 means someone took it: nothing to release). */
  private async release(): Promise<void> {
    const { api, namespace, name, identity } = this.options;
    try {
      const lease = await api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      const now = new V1MicroTime(this.clock.now());
      await api.replaceNamespacedLease({
        name,
        namespace,
        body: { ...lease, spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, acquireTime: now, renewTime: now } },
      });
    } catch (err) {
      if (!isConflict(err)) this.report(err);
    }
  }

  private async callback(fn: () => void | Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.report(err);
    }
  }

  private report(err: unknown): void {
    try {
      this.options.onError?.(err);
    } catch {
      // Logging must not break the election.
    }
  }
}
