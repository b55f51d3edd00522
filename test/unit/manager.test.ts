import { KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { ResilientInformer, type ListWatchLike } from "../../src/runtime/informer";
import { Manager, watch } from "../../src/runtime/manager";
import { generationChanged } from "../../src/runtime/predicates";
import { OperatorMetrics } from "../../src/runtime/metrics";
import { FakeClock, flush } from "../support/fake-clock";
import { FakeListWatch } from "../support/fake-list-watch";

const cm = (name: string): V1ConfigMap => ({ metadata: { namespace: "ns", name, resourceVersion: "1" } });

function fakeInformer(clock: FakeClock, items: V1ConfigMap[]) {
  let fake!: FakeListWatch<V1ConfigMap>;
  const informer = new ResilientInformer<V1ConfigMap>({
    kubeConfig: new KubeConfig(),
    path: "/api/v1/configmaps",
    list: async () => ({ apiVersion: "v1", kind: "ConfigMapList", metadata: {}, items }),
    clock,
    makeListWatch: (_kc, _path, list) => {
      fake = new FakeListWatch(list);
      return fake as unknown as ListWatchLike<V1ConfigMap>;
    },
  });
  return { informer, fake: () => fake };
}

describe("Manager (no leader election)", () => {
  it("retries the cleanup step with backoff, then reconciles every cached key and every change", async () => {
    const clock = new FakeClock();
    const { informer, fake } = fakeInformer(clock, [cm("a"), cm("b")]);
    const reconciled: string[] = [];
    let cleanups = 0;
    const errors: unknown[] = [];
    const metrics = new OperatorMetrics({ processMetrics: false });
    let reconcilingTold = 0;
    let toldTerm: { term: unknown; ended: boolean } | undefined;
    const manager = new Manager({
      clock,
      metrics,
      onReconciling: (term, termEnded) => {
        reconcilingTold++;
        toldTerm = { term, ended: termEnded.aborted };
      },
      onError: (e) => errors.push(e),
      beforeReconciling: async () => {
        if (++cleanups < 3) throw new Error("stack lock still held");
      },
    });
    manager.register({ kind: "ConfigMap", informer, reconcile: async (key) => void reconciled.push(key) });
    expect(manager.readiness()()).toMatch(/not synced/);
    await manager.start();
    // Leading, but no controller runs until the cleanup succeeds: not ready.
    expect(manager.readiness()()).toMatch(/controllers are not running/);
    await flush();
    expect(reconciled).toEqual([]);
    expect(reconcilingTold).toBe(0);
    await clock.advance(1000);
    expect(cleanups).toBe(2);
    await clock.advance(2000);
    expect(cleanups).toBe(3);
    expect(errors).toHaveLength(2);
    expect(reconciled.sort()).toEqual(["ns/a", "ns/b"]);
    expect(reconcilingTold).toBe(1);
    // Without leader election there is no term token; its end is still told (holder pruning stops on it).
    expect(toldTerm).toEqual({ term: undefined, ended: false });
    expect(manager.readiness()()).toBeUndefined();
    expect(manager.describe()).toBe("leading (no leader election); controllers running: ConfigMap");

    fake().put(cm("c"));
    await flush();
    expect(reconciled).toContain("ns/c");
    const text = await metrics.text();
    expect(text).toContain('controller_runtime_reconcile_total{controller="ConfigMap",result="success"} 3');
    expect(text).toContain('workqueue_adds_total{name="ConfigMap"} 3');
    expect(text).toContain('workqueue_work_duration_seconds_count{name="ConfigMap"} 3');
    expect(text).toContain('controller_runtime_active_workers{controller="ConfigMap"} 0');
    expect(text).toContain('leader_election_master_status{name="manager"} 1');

    await manager.stop();
    expect(await metrics.text()).toContain('leader_election_master_status{name="manager"} 0');
    fake().put(cm("d"));
    await flush();
    expect(reconciled).not.toContain("ns/d");
  });

  it("refuses a kind registered twice", () => {
    const clock = new FakeClock();
    const manager = new Manager({ clock });
    const reg = { kind: "ConfigMap", informer: fakeInformer(clock, []).informer, reconcile: async () => undefined };
    manager.register(reg);
    expect(() => manager.register(reg)).toThrow(/registered twice/);
  });
});

describe("Manager registrations: predicates and declared watches", () => {
  it("filters the kind's own changes with its predicate and maps other kinds' changes to its keys", async () => {
    const clock = new FakeClock();
    const own = fakeInformer(clock, [{ metadata: { ...cm("a").metadata, generation: 1 } }]);
    const other = fakeInformer(clock, []);
    const reconciled: string[] = [];
    const seen: string[] = [];
    const manager = new Manager({ clock });
    manager.register({
      kind: "ConfigMap",
      informer: own.informer,
      reconcile: async (key) => void reconciled.push(key),
      predicate: generationChanged,
      watches: [
        watch<V1ConfigMap>({
          informer: other.informer,
          predicate: (c) => c.type !== "resync",
          // The watched object names the key it concerns; on delete only the old object is there.
          map: (c) => {
            seen.push(`${c.type} old=${c.old?.data?.target ?? "-"} new=${c.new?.data?.target ?? "-"}`);
            return [c.new?.data?.target, c.old?.data?.target].filter((k): k is string => Boolean(k));
          },
        }),
      ],
    });
    await manager.start();
    await flush();
    expect(reconciled).toEqual(["ns/a"]); // the first look of a new term
    reconciled.length = 0;

    // Own kind: a change without a new generation (a status write) wakes nothing; a spec change does.
    own.fake().put({ ...cm("a"), metadata: { ...cm("a").metadata, generation: 1, resourceVersion: "2" } });
    await flush();
    own.fake().put({ ...cm("a"), metadata: { ...cm("a").metadata, generation: 1, resourceVersion: "3" } });
    await flush();
    expect(reconciled).toEqual([]);
    own.fake().put({ ...cm("a"), metadata: { ...cm("a").metadata, generation: 2, resourceVersion: "4" } });
    await flush();
    expect(reconciled).toEqual(["ns/a"]);
    reconciled.length = 0;

    // Watched kind: its changes wake the keys it maps to, its deletion too (from the old object).
    const pointer = (target: string, rv: string): V1ConfigMap => ({ metadata: { namespace: "ns", name: "p", resourceVersion: rv }, data: { target } });
    other.fake().put(pointer("ns/a", "1"));
    await flush();
    other.fake().put(pointer("ns/b", "2"));
    await flush();
    other.fake().remove(pointer("ns/b", "2"));
    await flush();
    expect(seen).toEqual(["add old=- new=ns/a", "update old=ns/a new=ns/b", "delete old=ns/b new=-"]);
    expect(new Set(reconciled)).toEqual(new Set(["ns/a", "ns/b"]));
    // The watched informer was started and synced by the manager although no kind is its own.
    expect(manager.readiness()()).toBeUndefined();
    await manager.stop();
  });
});
