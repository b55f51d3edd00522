import { describe, expect, it } from "vitest";
import { LeaderElector, termLost, type Term } from "../../src/runtime/leader-election";
import { MemoryLeases } from "../support/memory-leases";
import { FakeClock } from "../support/fake-clock";

/** A replica with the operator's timings; `overrides` replace its API or its callbacks. */
function elector(store: MemoryLeases, clock: FakeClock, identity: string, log: string[], overrides: Partial<ConstructorParameters<typeof LeaderElector>[0]> = {}) {
  return new LeaderElector({
    api: store.api(),
    namespace: "kok-system",
    name: "kube-on-kube-operator",
    identity,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    clock,
    onStartedLeading: () => void log.push(`${identity} started`),
    onStoppedLeading: () => void log.push(`${identity} stopped`),
    ...overrides,
  });
}

/** Advances in small steps, checking after each that at most one replica leads. */
async function run(clock: FakeClock, ms: number, electors: LeaderElector[]): Promise<void> {
  for (let t = 0; t < ms; t += 250) {
    await clock.advance(250);
    expect(electors.filter((e) => e.isLeader()).length).toBeLessThanOrEqual(1);
  }
}

describe("LeaderElector", () => {
  it("creates the lease and leads; a second replica stands by and knows the leader", async () => {
    const store = new MemoryLeases();
    const clock = new FakeClock();
    const log: string[] = [];
    const a = elector(store, clock, "a", log);
    a.start();
    await run(clock, 500, [a]);
    const b = elector(store, clock, "b", log);
    b.start();
    await run(clock, 30_000, [a, b]);
    expect(log).toEqual(["a started"]);
    expect(b.isLeader()).toBe(false);
    expect(b.leader()).toBe("a");
    expect(store.lease?.spec).toMatchObject({ holderIdentity: "a", leaseDurationSeconds: 15, leaseTransitions: 0 });
    await a.stop();
    await b.stop();
  });

  it("hands over within one retry period when the leader releases", async () => {
    const store = new MemoryLeases();
    const clock = new FakeClock();
    const log: string[] = [];
    const a = elector(store, clock, "a", log);
    const b = elector(store, clock, "b", log);
    a.start();
    await run(clock, 500, [a]);
    b.start();
    await run(clock, 5000, [a, b]);
    await a.stop();
    expect(store.lease?.spec?.holderIdentity).toBe("");
    const released = clock.now();
    while (!b.isLeader()) await run(clock, 250, [a, b]);
    expect(clock.now() - released).toBeLessThanOrEqual(2_000);
    expect(log).toEqual(["a started", "a stopped", "b started"]);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
    await b.stop();
  });

  it("takes over a crashed leader's lease only after it expires", async () => {
    const store = new MemoryLeases();
    const clock = new FakeClock();
    const log: string[] = [];
    const a = elector(store, clock, "a", log);
    const b = elector(store, clock, "b", log);
    a.start();
    await run(clock, 500, [a]);
    b.start();
    await run(clock, 5000, [a, b]);
    await a.stop({ release: false });
    const crashed = clock.now();
    while (!b.isLeader()) await run(clock, 250, [a, b]);
    const waited = clock.now() - crashed;
    expect(waited).toBeGreaterThanOrEqual(15_000 - 2_000);
    expect(waited).toBeLessThanOrEqual(15_000 + 2_000);
    await b.stop();
  });

  it("stops leading when renewals fail past the deadline, before anyone else can lead", async () => {
    const store = new MemoryLeases();
    const clock = new FakeClock();
    const log: string[] = [];
    const a = elector(store, clock, "a", log);
    a.start();
    await run(clock, 500, [a]);
    expect(a.isLeader()).toBe(true);
    store.down = true;
    const outage = clock.now();
    while (a.isLeader()) await run(clock, 250, [a]);
    expect(clock.now() - outage).toBeLessThanOrEqual(10_000 + 2_000);
    expect(log).toEqual(["a started", "a stopped"]);
    // Back up: it campaigns again and, nobody else being there, leads again.
    store.down = false;
    while (!a.isLeader()) await run(clock, 250, [a]);
    expect(log).toEqual(["a started", "a stopped", "a started"]);
    await a.stop();
  });

  it("keeps renewing while a slow onStartedLeading runs, and ends it through its signal", async () => {
    const store = new MemoryLeases();
    const clock = new FakeClock();
    const log: string[] = [];
    const a = new LeaderElector({
      api: store.api(),
      namespace: "kok-system",
      name: "kube-on-kube-operator",
      identity: "a",
      clock,
      // A start-up step (stack recovery) that only ends when the term does.
      onStartedLeading: (termEnded) =>
        new Promise<void>((resolve) =>
          termEnded.addEventListener("abort", () => {
            log.push("start-up saw the term end");
            resolve();
          }),
        ),
      onStoppedLeading: () => void log.push("stopped"),
    });
    a.start();
    await run(clock, 500, [a]);
    const firstRenewal = store.lease?.spec?.renewTime;
    await run(clock, 60_000, [a]);
    expect(a.isLeader()).toBe(true);
    expect(store.lease?.spec?.renewTime).not.toEqual(firstRenewal);
    store.down = true;
    while (a.isLeader()) await run(clock, 250, [a]);
    await run(clock, 250, [a]);
    expect(log).toEqual(["start-up saw the term end", "stopped"]);
    await a.stop();
  });

  it("ends a lost term with a TermLost whose fenceBy no other replica can lead before; a regained lease is a new term", async () => {
    const store = new MemoryLeases();
    const clock = new FakeClock();
    const terms: { term: Term; signal: AbortSignal }[] = [];
    const renewals: number[] = [];
    const options = {
      api: store.api(),
      namespace: "kok-system",
      name: "kube-on-kube-operator",
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      clock,
      onStoppedLeading: () => undefined,
    };
    const a = new LeaderElector({ ...options, identity: "a", onStartedLeading: (signal, term) => void terms.push({ term, signal }), onRenewed: (fenceBy) => void renewals.push(fenceBy) });
    const b = new LeaderElector({ ...options, identity: "b", onStartedLeading: () => undefined });
    a.start();
    await run(clock, 500, [a]);
    b.start();
    await run(clock, 4_000, [a, b]);
    expect(a.currentTerm()).toEqual(terms[0].term);
    // Only a's link to the apiserver fails: b keeps reading the lease a can no longer renew.
    const aApi = store.api();
    let aDown = false;
    const flaky = Object.fromEntries(
      Object.entries(aApi).map(([k, fn]) => [k, async (...args: unknown[]) => {
        if (aDown) throw Object.assign(new Error("HTTP 503"), { code: 503 });
        return (fn as (...a: unknown[]) => unknown)(...args);
      }]),
    );
    Object.assign(aApi, flaky);
    // Rebuild a with the flaky api sharing the store: the same identity takes its lease back.
    await a.stop({ release: false });
    const a2 = new LeaderElector({ ...options, api: aApi, identity: "a", onStartedLeading: (signal, term) => void terms.push({ term, signal }), onRenewed: (fenceBy) => void renewals.push(fenceBy) });
    a2.start();
    while (!a2.isLeader()) await run(clock, 250, [a2, b]);
    const second = terms[1];
    expect(second.term.identity).toBe("a");
    expect(second.term.acquiredAt).not.toBe(terms[0].term.acquiredAt);
    aDown = true;
    const lastFenceBy = () => renewals[renewals.length - 1];
    while (a2.isLeader()) await run(clock, 250, [a2, b]);
    const lost = termLost(second.signal);
    expect(lost?.fenceBy).toBe(lastFenceBy());
    // b leads only at or after fenceBy: a's engines had until then to be gone.
    while (!b.isLeader()) await run(clock, 250, [a2, b]);
    expect(clock.now()).toBeGreaterThanOrEqual(lost!.fenceBy);
    await a2.stop({ release: false });
    await b.stop();
  });

  it("keeps renewing while a clean stop drains for longer than the lease, then releases it", async () => {
    const store = new MemoryLeases();
    const clock = new FakeClock();
    const log: string[] = [];
    let drained!: () => void;
    const drain = new Promise<void>((resolve) => (drained = resolve));
    const renewals: number[] = [];
    const a = elector(store, clock, "a", log, {
      // The updates in flight: they end when the test says so, long after the lease duration.
      onStoppedLeading: () => (log.push("a draining"), drain),
      onRenewed: (fenceBy) => void renewals.push(fenceBy),
    });
    const b = elector(store, clock, "b", log);
    a.start();
    await run(clock, 500, [a]);
    b.start();
    await run(clock, 5000, [a, b]);
    const acquired = store.lease?.spec?.acquireTime;
    const stopped = a.stop();
    const since = clock.now();
    await run(clock, 60_000, [a, b]);
    // Four lease durations later: still a's lease and a's term, renewed all along; b never led.
    expect(store.lease?.spec?.holderIdentity).toBe("a");
    expect(store.lease?.spec?.acquireTime).toEqual(acquired);
    expect(renewals.filter((fenceBy) => fenceBy > since + 15_000).length).toBeGreaterThanOrEqual(20);
    expect(b.isLeader()).toBe(false);
    drained();
    await stopped;
    expect(store.lease?.spec?.holderIdentity).toBe("");
    while (!b.isLeader()) await run(clock, 250, [a, b]);
    expect(log).toEqual(["a started", "a draining", "b started"]);
    await b.stop();
  });

  it("a lease lost during a clean stop's drain: no renewal after it, no second drain, and the next leader keeps its lease", async () => {
    const store = new MemoryLeases();
    const clock = new FakeClock();
    const log: string[] = [];
    let drained!: () => void;
    const drain = new Promise<void>((resolve) => (drained = resolve));
    const renewals: number[] = [];
    // a's own way to the apiserver, cut during its drain; b's stays up.
    let cut = false;
    const inner = store.api();
    const guarded = <A extends unknown[], R>(call: (...args: A) => Promise<R>) => (...args: A) => (cut ? Promise.reject(Object.assign(new Error("HTTP 503"), { code: 503 })) : call(...args));
    const api = {
      readNamespacedLease: guarded(inner.readNamespacedLease.bind(inner)),
      createNamespacedLease: guarded(inner.createNamespacedLease.bind(inner)),
      replaceNamespacedLease: guarded(inner.replaceNamespacedLease.bind(inner)),
    } as unknown as typeof inner;
    const a = elector(store, clock, "a", log, {
      api,
      onStoppedLeading: () => (log.push("a draining"), drain),
      onRenewed: (fenceBy) => void renewals.push(fenceBy),
    });
    const b = elector(store, clock, "b", log);
    a.start();
    await run(clock, 500, [a]);
    b.start();
    await run(clock, 5000, [a, b]);
    const stopped = a.stop();
    await run(clock, 4000, [a, b]);
    cut = true;
    while (!b.isLeader()) await run(clock, 250, [a, b]);
    // b led only after a's last renewal's fenceBy: a's engines were to be gone by then (watchdog).
    expect(clock.now()).toBeGreaterThanOrEqual(renewals.at(-1)!);
    const renewed = renewals.length;
    await run(clock, 20_000, [a, b]);
    expect(renewals).toHaveLength(renewed);
    drained();
    await stopped;
    expect(log).toEqual(["a started", "a draining", "b started"]);
    expect(store.lease?.spec?.holderIdentity).toBe("b");
    await b.stop();
  });

  it("refuses timings that could let two replicas lead", () => {
    const store = new MemoryLeases();
    expect(
      () =>
        new LeaderElector({
          api: store.api(),
          namespace: "n",
          name: "l",
          identity: "a",
          leaseDurationMs: 5000,
          renewDeadlineMs: 5000,
          onStartedLeading: () => undefined,
          onStoppedLeading: () => undefined,
        }),
    ).toThrow(/leaseDuration > renewDeadline > retryPeriod/);
  });
});
