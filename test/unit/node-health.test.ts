import type { V1Node, V1NodeSystemInfo } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { ListWatchLike } from "../../src/runtime/informer";
import { BusinessNodeWatches, loadKubeconfig, nodeInformer, nodeView, type MakeNodeInformer } from "../../src/controllers/machine/node-health";
import { FakeClock, flush } from "../support/fake-clock";
import { FakeListWatch } from "../support/fake-list-watch";
import { cleanKubeconfig, execEntry, TEST_CA, tokenKubeconfig, withFields } from "../support/kubeconfigs";

const kubeconfig = (token: string) => tokenKubeconfig("https://127.0.0.1:6443", TEST_CA, token);

const node = (name: string, ready: "True" | "False" | "Unknown", at: string, extra: { version?: string; reason?: string; heartbeat?: string } = {}): V1Node => ({
  metadata: { name, resourceVersion: "1" },
  status: {
    nodeInfo: { kubeletVersion: extra.version ?? "v1.36.3" } as V1NodeSystemInfo,
    conditions: [
      { type: "MemoryPressure", status: "False" },
      // Watch events carry dates as strings, as here; lists carry Date objects.
      { type: "Ready", status: ready, lastTransitionTime: at as unknown as Date, lastHeartbeatTime: (extra.heartbeat ?? at) as unknown as Date, reason: extra.reason },
    ],
  },
});

/** Watches over fake ListWatches (one per informer built), on a fake clock. */
function setup(initial: Record<string, V1Node[]> = {}) {
  const clock = new FakeClock();
  const fakes: Array<{ cluster: string; fake: FakeListWatch<V1Node> }> = [];
  const lists = new Map(Object.entries(initial));
  const failing = new Set<string>();
  const changes: Array<[string, string]> = [];
  const errors: Array<[string, number]> = [];
  const makeInformer: MakeNodeInformer = ({ clusterKey, kubeConfig, onError }) =>
    nodeInformer(kubeConfig, onError, {
      clock,
      restartBackoff: { baseMs: 500, capMs: 4000 },
      list: async () => {
        if (failing.has(clusterKey)) throw new Error("connect ECONNREFUSED 127.0.0.1:6443");
        return { apiVersion: "v1", kind: "NodeList", metadata: { resourceVersion: "1" }, items: lists.get(clusterKey) ?? [] };
      },
      makeListWatch: (_kc, _path, list) => {
        const fake = new FakeListWatch<V1Node>(list);
        fakes.push({ cluster: clusterKey, fake });
        return fake as unknown as ListWatchLike<V1Node>;
      },
    });
  const watches = new BusinessNodeWatches({
    onChange: (cluster, name) => changes.push([cluster, name]),
    onError: (cluster, _err, delay) => errors.push([cluster, delay]),
    makeInformer,
  });
  const fakeOf = (cluster: string) => fakes.filter((f) => f.cluster === cluster).at(-1)!.fake;
  return { clock, watches, changes, errors, fakes, lists, failing, fakeOf };
}

describe("nodeView", () => {
  it("reads Ready, its transition time, the kubelet version and reason, from lists and from watch events", () => {
    const fromWatch = nodeView(node("w1", "False", "2026-01-02T03:04:05Z", { reason: "KubeletNotReady" }));
    expect(fromWatch).toEqual({ name: "w1", ready: false, readySince: new Date("2026-01-02T03:04:05Z"), kubeletVersion: "v1.36.3", reason: "KubeletNotReady" });
    const listed = node("w2", "True", "x");
    listed.status!.conditions![1]!.lastTransitionTime = new Date("2026-01-02T00:00:00Z");
    expect(nodeView(listed)).toMatchObject({ name: "w2", ready: true, readySince: new Date("2026-01-02T00:00:00Z") });
    expect(nodeView({ metadata: { name: "fresh" } })).toEqual({ name: "fresh", ready: false });
  });
});

describe("BusinessNodeWatches", () => {
  it("lists a cluster's nodes, reports each once, and answers from the cache", async () => {
    const { watches, changes } = setup({ "fleet/prod-a": [node("w1", "True", "2026-01-01T00:00:00Z"), node("w2", "False", "2026-01-01T00:10:00Z")] });
    expect(watches.synced("fleet/prod-a")).toBe(false);
    watches.ensure("fleet/prod-a", kubeconfig("t1"));
    await flush();
    expect(watches.synced("fleet/prod-a")).toBe(true);
    expect(changes).toEqual([
      ["fleet/prod-a", "w1"],
      ["fleet/prod-a", "w2"],
    ]);
    expect(watches.node("fleet/prod-a", "w1")).toMatchObject({ ready: true, kubeletVersion: "v1.36.3" });
    expect(watches.nodes("fleet/prod-a").map((n) => [n.name, n.ready])).toEqual([
      ["w1", true],
      ["w2", false],
    ]);
    expect(watches.node("fleet/prod-a", "nope")).toBeUndefined();
    expect(watches.node("fleet/other", "w1")).toBeUndefined();
    await watches.stopAll();
  });

  it("reports a change of what matters, not a heartbeat", async () => {
    const { watches, changes, fakeOf } = setup({ c: [node("w1", "True", "2026-01-01T00:00:00Z")] });
    watches.ensure("c", kubeconfig("t"));
    await flush();
    changes.length = 0;
    fakeOf("c").put(node("w1", "True", "2026-01-01T00:00:00Z", { heartbeat: "2026-01-01T00:05:00Z" }));
    expect(changes).toEqual([]);
    fakeOf("c").put(node("w1", "False", "2026-01-01T00:06:00Z", { reason: "KubeletNotReady" }));
    expect(changes).toEqual([["c", "w1"]]);
    expect(watches.node("c", "w1")).toMatchObject({ ready: false, reason: "KubeletNotReady", readySince: new Date("2026-01-01T00:06:00Z") });
    fakeOf("c").put(node("w1", "False", "2026-01-01T00:06:00Z", { reason: "KubeletNotReady", version: "v1.36.4" }));
    expect(changes).toHaveLength(2);
    fakeOf("c").remove(node("w1", "False", "x"));
    expect(changes).toEqual([
      ["c", "w1"],
      ["c", "w1"],
      ["c", "w1"],
    ]);
    expect(watches.node("c", "w1")).toBeUndefined();
    await watches.stopAll();
  });

  it("is idempotent for the same kubeconfig and restarts on a new one, reporting only real differences", async () => {
    const { watches, changes, fakes, lists, fakeOf } = setup({ c: [node("w1", "True", "2026-01-01T00:00:00Z"), node("w2", "True", "2026-01-01T00:00:00Z")] });
    watches.ensure("c", kubeconfig("t1"));
    watches.ensure("c", kubeconfig("t1"));
    await flush();
    expect(fakes).toHaveLength(1);
    changes.length = 0;
    const first = fakeOf("c");
    // While switching, w2 is deleted and w1 goes NotReady.
    lists.set("c", [node("w1", "False", "2026-01-01T01:00:00Z")]);
    watches.ensure("c", kubeconfig("t2"));
    await flush();
    expect(fakes).toHaveLength(2);
    expect(first.stopped).toBe(true);
    expect(changes.sort()).toEqual([
      ["c", "w1"],
      ["c", "w2"],
    ]);
    // The retired informer's late events are ignored.
    changes.length = 0;
    first.put(node("w9", "True", "2026-01-01T00:00:00Z"));
    expect(changes).toEqual([]);
    expect(watches.node("c", "w9")).toBeUndefined();
    await watches.stopAll();
  });

  it("restarts a failed watch with backoff and tells who failed", async () => {
    const { watches, errors, failing, fakeOf, clock, changes } = setup({ a: [node("w1", "True", "2026-01-01T00:00:00Z")], b: [] });
    failing.add("a");
    watches.ensure("a", kubeconfig("ta"));
    watches.ensure("b", kubeconfig("tb"));
    await flush();
    expect(errors).toEqual([["a", 500]]);
    expect(watches.synced("a")).toBe(false);
    expect(watches.synced("b")).toBe(true);
    await clock.advance(500);
    expect(errors).toEqual([
      ["a", 500],
      ["a", 1000],
    ]);
    failing.delete("a");
    await clock.advance(1000);
    expect(fakeOf("a").starts).toBe(3);
    expect(watches.synced("a")).toBe(true);
    expect(changes).toEqual([["a", "w1"]]);
    await watches.stopAll();
  });

  it("stops one cluster or all, forgetting their nodes", async () => {
    const { watches, fakeOf } = setup({ a: [node("w1", "True", "2026-01-01T00:00:00Z")], b: [node("w2", "True", "2026-01-01T00:00:00Z")] });
    watches.ensure("a", kubeconfig("ta"));
    watches.ensure("b", kubeconfig("tb"));
    await flush();
    watches.stop("a");
    expect(fakeOf("a").stopped).toBe(true);
    expect(watches.synced("a")).toBe(false);
    expect(watches.nodes("a")).toEqual([]);
    expect(watches.node("b", "w2")?.ready).toBe(true);
    watches.stop("never-started");
    await watches.stopAll();
    expect(fakeOf("b").stopped).toBe(true);
    expect(watches.node("b", "w2")).toBeUndefined();
  });

  it("refuses a kubeconfig it cannot load, naming the cluster and keeping the running watch, without quoting the text", async () => {
    const { watches, fakes } = setup({ c: [node("w1", "True", "2026-01-01T00:00:00Z")] });
    watches.ensure("c", kubeconfig("t1"));
    await flush();
    const secret = "token-Zq81-not-for-errors";
    const broken = `apiVersion: v1\nusers:\n  - name: admin\n    user: { token: ${secret} }\n   bad: [\n`;
    let message = "";
    try {
      watches.ensure("c", broken);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^business cluster c: its admin kubeconfig is refused: it is not valid YAML /);
    expect(message).not.toContain(secret);
    expect(message).not.toContain("\n");
    expect(() => loadKubeconfig("c", "apiVersion: v1\nkind: Config\n")).toThrow("business cluster c: its admin kubeconfig is refused: current-context is not set");
    expect(fakes).toHaveLength(1);
    expect(watches.node("c", "w1")?.ready).toBe(true);
    await watches.stopAll();
  });

  it("builds the client from server, CA and credentials only: an exec kubeconfig starts no watch and names the field", async () => {
    const { watches, fakes } = setup();
    const hostile = withFields(cleanKubeconfig(), "user", { exec: execEntry("/nonexistent/never-created") });
    expect(() => watches.ensure("c", hostile)).toThrow("business cluster c: its admin kubeconfig is refused: users[0].user.exec is not allowed");
    expect(fakes).toHaveLength(0);
    const kc = loadKubeconfig("c", withFields(cleanKubeconfig(), "cluster", { "insecure-skip-tls-verify": false }));
    expect(kc.getCurrentUser()).toMatchObject({ name: "kubernetes-admin" });
    expect(kc.getCurrentUser()?.exec).toBeUndefined();
    expect(kc.getCurrentCluster()).toMatchObject({ server: "https://127.0.0.1:30443", skipTLSVerify: false });
    expect(kc.getCurrentCluster()?.proxyUrl).toBeUndefined();
    await watches.stopAll();
  });
});
