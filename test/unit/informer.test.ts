import { KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { listInPages, ResilientInformer, withoutBookkeeping, type ChangeType, type ListWatchLike } from "../../src/runtime/informer";
import { FakeClock, flush } from "../support/fake-clock";
import { FakeListWatch } from "../support/fake-list-watch";

const cm = (name: string): V1ConfigMap => ({ metadata: { namespace: "ns", name, resourceVersion: "1" } });

function setup(options: { listFails?: () => boolean; resyncPeriodMs?: number } = {}) {
  const clock = new FakeClock();
  let fake: FakeListWatch<V1ConfigMap> | undefined;
  const changes: Array<[string, ChangeType]> = [];
  const errors: Array<{ delay: number }> = [];
  const items = [cm("a"), cm("b")];
  const informer = new ResilientInformer<V1ConfigMap>({
    kubeConfig: new KubeConfig(),
    path: "/api/v1/namespaces/ns/configmaps",
    list: async () => {
      if (options.listFails?.()) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
      return { apiVersion: "v1", kind: "ConfigMapList", metadata: { resourceVersion: "1" }, items };
    },
    clock,
    restartBackoff: { baseMs: 500, capMs: 4000 },
    resyncPeriodMs: options.resyncPeriodMs,
    onError: (_err, delay) => errors.push({ delay }),
    makeListWatch: (_kc, _path, list) => {
      fake = new FakeListWatch(list);
      return fake as unknown as ListWatchLike<V1ConfigMap>;
    },
  });
  informer.onChange((key, type) => changes.push([key, type]));
  return { clock, informer, changes, errors, fake: () => fake! };
}

describe("ResilientInformer", () => {
  it("reports listed objects as keys and syncs", async () => {
    const { informer, changes } = setup();
    informer.start();
    await informer.waitForSync();
    expect(informer.hasSynced()).toBe(true);
    expect(changes).toEqual([
      ["ns/a", "add"],
      ["ns/b", "add"],
    ]);
    expect(informer.get("ns/a")?.metadata?.name).toBe("a");
    expect(informer.list()).toHaveLength(2);
    await informer.stop();
  });

  it("restarts after errors with growing, capped backoff, and resets it after success", async () => {
    let failing = true;
    const { informer, clock, errors, fake } = setup({ listFails: () => failing });
    informer.start();
    await flush();
    for (let i = 0; i < 5; i++) await clock.advance(errors.at(-1)!.delay);
    expect(errors.map((e) => e.delay)).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
    expect(fake().starts).toBe(6);
    expect(informer.hasSynced()).toBe(false);
    failing = false;
    await clock.advance(4000);
    await informer.waitForSync();
    expect(informer.restarts).toBe(6);
    // A later failure (e.g. the watch broke) starts from the base delay again.
    fake().fail(new Error("watch closed: connection reset"));
    expect(errors.at(-1)!.delay).toBe(500);
    await clock.advance(500);
    expect(fake().starts).toBe(8);
    await informer.stop();
  });

  it("schedules one restart however many errors arrive at once", async () => {
    const { informer, clock, fake } = setup();
    informer.start();
    await informer.waitForSync();
    fake().fail(new Error("one"));
    fake().fail(new Error("two"));
    await clock.advance(500);
    expect(fake().starts).toBe(2);
    await informer.stop();
  });

  it("does not restart after stop, even though ListWatch reports its own abort", async () => {
    const { informer, clock, errors, fake } = setup();
    informer.start();
    await informer.waitForSync();
    await informer.stop();
    await clock.advance(60_000);
    expect(errors).toEqual([]);
    expect(fake().starts).toBe(1);
  });

  it("re-reports every cached key each resync period", async () => {
    const { informer, clock, changes, fake } = setup({ resyncPeriodMs: 60_000 });
    informer.start();
    await informer.waitForSync();
    fake().remove(cm("b"));
    changes.length = 0;
    await clock.advance(60_000);
    expect(changes).toEqual([["ns/a", "resync"]]);
    await clock.advance(60_000);
    expect(changes).toHaveLength(2);
    await informer.stop();
    await clock.advance(600_000);
    expect(changes).toHaveLength(2);
  });

  it("keeps other listeners going when one throws", async () => {
    const { informer, changes, fake } = setup();
    informer.onChange(() => {
      throw new Error("bad listener");
    });
    informer.start();
    await informer.waitForSync();
    fake().put(cm("c"));
    expect(changes.at(-1)).toEqual(["ns/c", "add"]);
    await informer.stop();
  });
});

describe("withoutBookkeeping", () => {
  const LAST = "kubectl.kubernetes.io/last-applied-configuration";
  it("drops managedFields and the last-applied copy, keeps every other field, and leaves its input alone", () => {
    const cm: V1ConfigMap = {
      metadata: { name: "a", namespace: "n", resourceVersion: "7", managedFields: [{ manager: "kubectl", operation: "Apply" }], annotations: { [LAST]: "{...}", keep: "me" } },
      data: { k: "v" },
    };
    const before = structuredClone(cm);
    expect(withoutBookkeeping(cm)).toEqual({ metadata: { name: "a", namespace: "n", resourceVersion: "7", annotations: { keep: "me" } }, data: { k: "v" } });
    expect(cm).toEqual(before);
  });

  it("returns an object with nothing to drop as it is", () => {
    const cm: V1ConfigMap = { metadata: { name: "a", annotations: { keep: "me" } } };
    expect(withoutBookkeeping(cm)).toBe(cm);
  });
});

describe("listInPages", () => {
  it("follows continue tokens to the end and resumes from the first page's resourceVersion", async () => {
    const all = Array.from({ length: 5 }, (_, i): V1ConfigMap => ({ metadata: { name: `cm${i}`, namespace: "n" } }));
    const asked: Array<string | undefined> = [];
    const list = await listInPages<V1ConfigMap>(async ({ limit, _continue }) => {
      asked.push(_continue);
      const from = Number(_continue ?? 0);
      const next = from + limit < all.length ? String(from + limit) : undefined;
      return { metadata: { resourceVersion: "42", _continue: next }, items: all.slice(from, from + limit) };
    }, 2);
    expect(asked).toEqual([undefined, "2", "4"]);
    expect(list.items.map((c) => c.metadata?.name)).toEqual(["cm0", "cm1", "cm2", "cm3", "cm4"]);
    expect(list.metadata).toEqual({ resourceVersion: "42", _continue: undefined });
  });

  it("also follows the plain-JSON `continue` field of custom-object lists", async () => {
    const pages: Record<string, { items: V1ConfigMap[]; next?: string }> = { "": { items: [{ metadata: { name: "a" } }], next: "t1" }, t1: { items: [{ metadata: { name: "b" } }] } };
    const list = await listInPages<V1ConfigMap>(async ({ _continue }) => {
      const p = pages[_continue ?? ""];
      return { metadata: { resourceVersion: "7", ...(p.next ? { continue: p.next } : {}) } as never, items: p.items };
    }, 1);
    expect(list.items.map((c) => c.metadata?.name)).toEqual(["a", "b"]);
    expect(list.metadata).toEqual({ resourceVersion: "7", _continue: undefined });
  });
});
