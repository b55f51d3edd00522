/**
 * The Cluster reconciler and the names two tenants could collide on (issue 13, finding 3): each
 * Cluster gets its own stack and masters' namespace, a namespace the operator did not create for
 * this Cluster is refused before any stack operation, and a stack under the legacy
 * `<namespace>-<name>` is renamed only when its state shows it is this Cluster's. In-memory
 * stand-ins for the API and the engine; the rename itself runs against the real engine in
 * test/integration/stack-runner.test.ts.
 */
import { describe, expect, it } from "vitest";
import { mastersNamespaceLabels, mastersNamespaceOf, RECREATE_MASTERS_ANNOTATION, type ClusterObject, type ClusterStatus } from "../../src/api/v1alpha1";
import { ClusterReconciler, type ClusterStacks } from "../../src/controllers/cluster/reconciler";
import { TerminalError } from "../../src/runtime/controller";
import { decideLegacyStack } from "../../src/controllers/legacy-stacks";
import type { StateResource } from "../../src/runtime/stack-runner";
import { minimalSpec } from "../support/specs";

/** What a stack of Cluster `tenant/name` records once an up created its masters in `namespace`. */
const clusterState = (tenant: string, name: string, namespace: string): StateResource[] => [
  { type: "pulumi:pulumi:Stack", name: "kube-on-kube-clusters-x" },
  { type: "kube-on-kube:index:ControlPlane", name },
  { type: "kubernetes:core/v1:Namespace", name: `${name}-namespace`, id: namespace },
  { type: "kubernetes:core/v1:Secret", name: `${name}-admin-kubeconfig-copy`, id: `${tenant}/${name}-admin-kubeconfig` },
];

function world() {
  let time = Date.parse("2026-11-25T12:00:00Z");
  const objects = new Map<string, ClusterObject>();
  const states = new Map<string, StateResource[]>();
  const namespaces = new Map<string, Record<string, string>>();
  const terminating = new Set<string>();
  /** Every stack operation, as `op stack`; reads of a state are not operations. */
  const ops: string[] = [];
  const events: { reason: string; message: string }[] = [];
  const fingerprintReads: string[] = [];
  const objectOf = (stack: string) => objects.get(stack.replace(".", "/"))!;
  const stacks: ClusterStacks = {
    async up(stack, _program, _progress, opts) {
      ops.push(opts?.refresh ? `up --refresh ${stack}` : `up ${stack}`);
      if (!states.has(stack)) {
        const c = objectOf(stack);
        const ns = mastersNamespaceOf(c);
        states.set(stack, clusterState(c.metadata.namespace, c.metadata.name, ns));
      }
      // What the program does to its namespace: create it or add the ownership labels.
      const c = objectOf(stack);
      const ns = states.get(stack)!.find((r) => r.type === "kubernetes:core/v1:Namespace")!.id!;
      namespaces.set(ns, { ...namespaces.get(ns), ...mastersNamespaceLabels(c) });
      return { changes: { create: 30 }, outputs: { version: { value: "v1.36.3", secret: false }, adminKubeconfigCopy: { value: `${c.metadata.name}-admin-kubeconfig`, secret: false } } };
    },
    async preview(stack) {
      ops.push(`preview ${stack}`);
      return { same: 30 };
    },
    async destroyAndRemove(stack) {
      ops.push(`destroy ${stack}`);
      states.delete(stack);
    },
    resources: async (stack) => structuredClone(states.get(stack)),
    async rename(from, to) {
      ops.push(`rename ${from} ${to}`);
      states.set(to, states.get(from)!);
      states.delete(from);
    },
  };
  const options: ConstructorParameters<typeof ClusterReconciler>[0] = {
    store: {
      getLive: async (ns, name) => structuredClone(objects.get(`${ns}/${name}`)),
      setFinalizers: async (c, finalizers) => {
        const key = `${c.metadata.namespace}/${c.metadata.name}`;
        objects.set(key, { ...objects.get(key)!, metadata: { ...objects.get(key)!.metadata, finalizers } });
        return structuredClone(objects.get(key)!);
      },
      annotate: async (c, annotations) => {
        const key = `${c.metadata.namespace}/${c.metadata.name}`;
        const merged: Record<string, string> = { ...objects.get(key)!.metadata.annotations };
        for (const [k, v] of Object.entries(annotations)) {
          if (v === null) delete merged[k];
          else merged[k] = v;
        }
        objects.set(key, { ...objects.get(key)!, metadata: { ...objects.get(key)!.metadata, annotations: merged } });
        return structuredClone(objects.get(key)!);
      },
      writeStatus: async (c, compute: (fresh: ClusterStatus | undefined) => ClusterStatus) => {
        const key = `${c.metadata.namespace}/${c.metadata.name}`;
        objects.set(key, { ...objects.get(key)!, status: structuredClone(compute(objects.get(key)!.status)) });
      },
    },
    events: { record: async (_c, _type, reason, message) => void events.push({ reason, message }) },
    stacks,
    namespaceLabels: async (name) => structuredClone(namespaces.get(name)),
    namespacePresence: async (name) => (terminating.has(name) ? "terminating" : namespaces.has(name) ? "active" : "absent"),
    liveFingerprint: async (at) => (fingerprintReads.push(at.mastersNamespace), "fp"),
    resyncMs: 300_000,
    now: () => new Date(time),
  };
  const reconciler = new ClusterReconciler(options);
  const put = (namespace: string, name: string) =>
    objects.set(`${namespace}/${name}`, {
      apiVersion: "kubeonkube.io/v1alpha1",
      kind: "Cluster",
      metadata: { namespace, name, uid: `uid-of-${namespace}-${name}`, generation: 1 },
      spec: minimalSpec(),
    });
  const condition = (key: string, type: string) => objects.get(key)!.status?.conditions?.find((c) => c.type === type);
  return { objects, states, namespaces, terminating, ops, events, fingerprintReads, reconciler, fresh: () => new ClusterReconciler(options), put, condition, advance: (ms: number) => (time += ms) };
}

describe("Cluster names that cannot collide", () => {
  it("gives team/prod-a and team-prod/a their own stacks and masters' namespaces (they shared team-prod-a)", async () => {
    const w = world();
    w.put("team", "prod-a");
    w.put("team-prod", "a");
    await w.reconciler.reconcile("team/prod-a");
    await w.reconciler.reconcile("team-prod/a");
    expect(w.ops).toEqual(["up team.prod-a", "up team-prod.a"]);
    const a = mastersNamespaceOf({ metadata: { namespace: "team", name: "prod-a" } });
    const b = mastersNamespaceOf({ metadata: { namespace: "team-prod", name: "a" } });
    expect(a).not.toBe(b);
    expect(w.namespaces.get(a)?.["kubeonkube.io/cluster-uid"]).toBe("uid-of-team-prod-a");
    expect(w.namespaces.get(b)?.["kubeonkube.io/cluster-uid"]).toBe("uid-of-team-prod-a");
    expect(w.objects.get("team-prod/a")!.status?.phase).toBe("Ready");
  });

  it("never puts Cluster kube/system into kube-system", async () => {
    const w = world();
    w.namespaces.set("kube-system", {});
    w.put("kube", "system");
    await w.reconciler.reconcile("kube/system");
    expect(w.ops).toEqual(["up kube.system"]);
    expect(w.namespaces.get("kube-system")).toEqual({});
    expect(w.states.get("kube.system")!.find((r) => r.type === "kubernetes:core/v1:Namespace")!.id).toMatch(/^kok-kube-system-[0-9a-f]{10}$/);
  });

  for (const [what, labels] of [
    ["without the ownership label", { "kubernetes.io/metadata.name": "x" }],
    ["labelled for another Cluster", { "kubeonkube.io/cluster-uid": "uid-of-someone-else" }],
  ] as const) {
    it(`refuses a masters' namespace that exists ${what}: NamespaceConflict, no stack operation`, async () => {
      const w = world();
      w.put("fleet", "dev");
      const ns = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "dev" } });
      w.namespaces.set(ns, { ...labels });
      await expect(w.reconciler.reconcile("fleet/dev")).rejects.toBeInstanceOf(TerminalError);
      expect(w.ops).toEqual([]);
      expect(w.condition("fleet/dev", "Ready")).toMatchObject({ status: "False", reason: "NamespaceConflict" });
      expect(w.objects.get("fleet/dev")!.status?.phase).toBe("Failed");
      const event = w.events.find((e) => e.reason === "NamespaceConflict");
      expect(event?.message).toContain(`"${ns}"`);
      expect(event?.message).toMatch(/without the label kubeonkube\.io\/cluster-uid|names another Cluster/);
      expect(w.namespaces.get(ns)).toEqual(labels);
    });
  }

  it("refuses a pair whose stack name would pass Pulumi's 100 characters, with no stack operation", async () => {
    const w = world();
    const ns = `t${"n".repeat(62)}`;
    const name = `c${"x".repeat(39)}`;
    w.put(ns, name);
    await expect(w.reconciler.reconcile(`${ns}/${name}`)).rejects.toBeInstanceOf(TerminalError);
    expect(w.ops).toEqual([]);
    expect(w.condition(`${ns}/${name}`, "Ready")?.message).toContain(`metadata.name: the Cluster's stack name "<namespace>.<name>" would be 104 characters; Pulumi allows 100`);
  });

  it("applies again to the namespace it labelled, in a new process too", async () => {
    const w = world();
    w.put("fleet", "dev");
    await w.reconciler.reconcile("fleet/dev");
    w.objects.set("fleet/dev", { ...w.objects.get("fleet/dev")!, metadata: { ...w.objects.get("fleet/dev")!.metadata, generation: 2 } });
    await w.reconciler.reconcile("fleet/dev");
    w.objects.set("fleet/dev", { ...w.objects.get("fleet/dev")!, metadata: { ...w.objects.get("fleet/dev")!.metadata, generation: 3 } });
    await w.fresh().reconcile("fleet/dev");
    expect(w.ops).toEqual(["up fleet.dev", "up fleet.dev", "up fleet.dev"]);
  });
});

describe("A namespace the Cluster's own stack created", () => {
  it("stays usable after its labels were stripped: the stack's state says it is this Cluster's", async () => {
    const w = world();
    w.put("fleet", "dev");
    await w.reconciler.reconcile("fleet/dev");
    w.namespaces.set(mastersNamespaceOf({ metadata: { namespace: "fleet", name: "dev" } }), {});
    w.objects.set("fleet/dev", { ...w.objects.get("fleet/dev")!, metadata: { ...w.objects.get("fleet/dev")!.metadata, generation: 2 } });
    await w.reconciler.reconcile("fleet/dev");
    expect(w.ops).toEqual(["up fleet.dev", "up fleet.dev"]);
  });
});

describe("Masters lost with their namespace", () => {
  const ns = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "dev" } });
  const edit = (w: ReturnType<typeof world>, change: (c: ClusterObject) => ClusterObject) => w.objects.set("fleet/dev", change(w.objects.get("fleet/dev")!));
  const bumpGeneration = (c: ClusterObject) => ({ ...c, metadata: { ...c.metadata, generation: (c.metadata.generation ?? 1) + 1 } });
  const annotated = (value: string) => (c: ClusterObject) => ({ ...c, metadata: { ...c.metadata, annotations: { ...c.metadata.annotations, [RECREATE_MASTERS_ANNOTATION]: value } } });

  async function readyThenLost(how: "deleted" | "terminating") {
    const w = world();
    w.put("fleet", "dev");
    await w.reconciler.reconcile("fleet/dev");
    if (how === "deleted") w.namespaces.delete(ns);
    else w.terminating.add(ns);
    return w;
  }

  for (const how of ["deleted", "terminating"] as const) {
    it(`applies nothing when the namespace its stack created is ${how}, neither on resync nor on an edit, and says what to do (once)`, async () => {
      const w = await readyThenLost(how);
      w.advance(300_000);
      await w.reconciler.reconcile("fleet/dev");
      edit(w, bumpGeneration);
      await w.reconciler.reconcile("fleet/dev");
      await w.fresh().reconcile("fleet/dev");
      expect(w.ops).toEqual(["up fleet.dev"]);
      const ready = w.condition("fleet/dev", "Ready");
      expect(ready).toMatchObject({ status: "False", reason: "MastersLost" });
      expect(ready?.message).toContain(`the masters' namespace "${ns}" is ${how === "deleted" ? "gone" : "being deleted"}, and etcd's data with it`);
      expect(ready?.message).toContain(`kubectl annotate cluster dev ${RECREATE_MASTERS_ANNOTATION}=${ns}`);
      expect(w.objects.get("fleet/dev")!.status?.phase).toBe("Failed");
      expect(w.events.filter((e) => e.reason === "MastersLost")).toHaveLength(1);
      expect(w.namespaces.has(ns)).toBe(how === "terminating");
    });
  }

  it("re-creates the masters, with a refresh, only when the annotation names the lost namespace, then removes the annotation", async () => {
    const w = await readyThenLost("deleted");
    edit(w, annotated("true"));
    await w.reconciler.reconcile("fleet/dev");
    edit(w, annotated("kok-fleet-other-0123456789"));
    await w.reconciler.reconcile("fleet/dev");
    expect(w.ops).toEqual(["up fleet.dev"]);
    edit(w, annotated(ns));
    await w.reconciler.reconcile("fleet/dev");
    expect(w.ops).toEqual(["up fleet.dev", `up --refresh fleet.dev`]);
    expect(w.namespaces.has(ns)).toBe(true);
    expect(w.objects.get("fleet/dev")!.metadata.annotations?.[RECREATE_MASTERS_ANNOTATION]).toBeUndefined();
    expect(w.condition("fleet/dev", "Ready")).toMatchObject({ status: "True", reason: "Applied" });
    expect(w.events.find((e) => e.reason === "RecreatingMasters")?.message).toContain("EMPTY etcd volumes");
  });

  it("removes an annotation left while the masters are there, so it cannot carry over to a later loss", async () => {
    const w = world();
    w.put("fleet", "dev");
    await w.reconciler.reconcile("fleet/dev");
    // A re-creation cut off between its up and the annotation's removal leaves this behind.
    edit(w, annotated(ns));
    w.advance(300_000);
    await w.reconciler.reconcile("fleet/dev");
    expect(w.objects.get("fleet/dev")!.metadata.annotations?.[RECREATE_MASTERS_ANNOTATION]).toBeUndefined();
    expect(w.ops.some((op) => op.startsWith("up --refresh"))).toBe(false);
    w.namespaces.delete(ns);
    await w.reconciler.reconcile("fleet/dev");
    expect(w.condition("fleet/dev", "Ready")).toMatchObject({ status: "False", reason: "MastersLost" });
  });

  it("is no loss before the stack created the namespace: a first up creates it", async () => {
    const w = world();
    w.put("fleet", "dev");
    await w.reconciler.reconcile("fleet/dev");
    expect(w.ops).toEqual(["up fleet.dev"]);
    expect(w.events.some((e) => e.reason === "MastersLost")).toBe(false);
  });
});

describe("Migration of legacy stacks", () => {
  it("renames this Cluster's legacy stack and keeps its masters in the legacy namespace, read from the stack, then labels it", async () => {
    const w = world();
    w.put("fleet", "dev");
    w.states.set("fleet-dev", clusterState("fleet", "dev", "fleet-dev"));
    // What the old operator left: its labels, no UID.
    w.namespaces.set("fleet-dev", { "kubeonkube.io/cluster": "dev", "app.kubernetes.io/part-of": "kube-on-kube" });
    await w.reconciler.reconcile("fleet/dev");
    expect(w.ops).toEqual(["rename fleet-dev fleet.dev", "up fleet.dev"]);
    expect(w.states.has("fleet-dev")).toBe(false);
    expect(w.namespaces.get("fleet-dev")?.["kubeonkube.io/cluster-uid"]).toBe("uid-of-fleet-dev");
    expect(w.events.find((e) => e.reason === "StackMigrated")?.message).toBe("stack fleet-dev renamed to fleet.dev; the masters stay in namespace fleet-dev");
    expect(w.namespaces.has(mastersNamespaceOf({ metadata: { namespace: "fleet", name: "dev" } }))).toBe(false);
    // The drift check reads the masters where they are.
    w.advance(300_000);
    await w.reconciler.reconcile("fleet/dev");
    expect(w.fingerprintReads).toEqual(["fleet-dev"]);
  });

  it("leaves a colliding legacy stack to its owner: team/prod-a never takes team-prod/a's", async () => {
    const w = world();
    w.put("team", "prod-a");
    w.states.set("team-prod-a", clusterState("team-prod", "a", "team-prod-a"));
    w.namespaces.set("team-prod-a", { "kubeonkube.io/cluster": "a" });
    await w.reconciler.reconcile("team/prod-a");
    expect(w.ops).toEqual(["up team.prod-a"]);
    expect(w.states.get("team-prod-a")).toEqual(clusterState("team-prod", "a", "team-prod-a"));
    expect(w.namespaces.get("team-prod-a")).toEqual({ "kubeonkube.io/cluster": "a" });
  });

  it("renames a legacy stack before deleting, so the destroy removes what the Cluster created", async () => {
    const w = world();
    w.put("fleet", "dev");
    const c = w.objects.get("fleet/dev")!;
    w.objects.set("fleet/dev", { ...c, metadata: { ...c.metadata, finalizers: ["kubeonkube.io/cluster-stack"], deletionTimestamp: new Date() } });
    w.states.set("fleet-dev", clusterState("fleet", "dev", "fleet-dev"));
    await w.reconciler.reconcile("fleet/dev");
    expect(w.ops).toEqual(["rename fleet-dev fleet.dev", "destroy fleet.dev"]);
  });
});

describe("decideLegacyStack", () => {
  const dev = { metadata: { namespace: "fleet", name: "dev" } };
  it("does nothing when the new stack exists or there is no legacy one", () => {
    expect(decideLegacyStack(dev, "ControlPlane", [], clusterState("fleet", "dev", "fleet-dev"))).toEqual({ action: "none" });
    expect(decideLegacyStack(dev, "ControlPlane", undefined, undefined)).toEqual({ action: "none" });
  });
  it("migrates only a stack whose component is named like the object and whose copy is in the object's namespace", () => {
    expect(decideLegacyStack(dev, "ControlPlane", undefined, clusterState("fleet", "dev", "fleet-dev"))).toEqual({ action: "migrate", from: "fleet-dev" });
    const team = { metadata: { namespace: "team", name: "prod-a" } };
    expect(decideLegacyStack(team, "ControlPlane", undefined, clusterState("team-prod", "a", "team-prod-a"))).toMatchObject({ action: "leave", reason: expect.stringContaining('not "prod-a"') });
    expect(decideLegacyStack(dev, "ControlPlane", undefined, clusterState("other", "dev", "fleet-dev"))).toMatchObject({ action: "leave", reason: expect.stringContaining('"other"') });
    expect(decideLegacyStack(dev, "ControlPlane", undefined, [])).toMatchObject({ action: "leave" });
  });
  it("knows a Machine's stack by its WorkerNode", () => {
    const m = { metadata: { namespace: "fleet", name: "worker-1" } };
    expect(decideLegacyStack(m, "WorkerNode", undefined, [{ type: "kube-on-kube:workers:WorkerNode", name: "worker-1" }])).toEqual({ action: "migrate", from: "fleet-worker-1" });
    // A stack written after the type tokens moved to the module index (src/components/type-tokens.ts).
    expect(decideLegacyStack(m, "WorkerNode", undefined, [{ type: "kube-on-kube:index:WorkerNode", name: "worker-1" }])).toEqual({ action: "migrate", from: "fleet-worker-1" });
    expect(decideLegacyStack(m, "WorkerNode", undefined, [{ type: "kube-on-kube:index:ControlPlane", name: "worker-1" }])).toMatchObject({ action: "leave" });
  });
});
