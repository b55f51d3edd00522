/**
 * The Cluster reconciler's decisions, with in-memory stand-ins for the API and the engine
 * (the real ones are exercised by the e2e suite): finalizer, pause, invalid spec, first apply,
 * no-op resync, drift, upgrade preview, failure, deletion, and what the metrics hooks are told.
 */
import { KUBELET_SKEW_RECHECK_MS, upgradeHeldByKubelets } from "../../src/controllers/cluster/kubelet-skew";
import { beforeEach, describe, expect, it } from "vitest";
import { mastersNamespaceLabels, mastersNamespaceOf, type ClusterObject, type ClusterStatus } from "../../src/api/v1alpha1";
import { CLUSTER_FINALIZER, ClusterReconciler, describeChanges, type ClusterReconcilerOptions, type ClusterStacks } from "../../src/controllers/cluster/reconciler";
import { TerminalError } from "../../src/runtime/controller";
import { StackOperationError, type OperationProgress, type ResourceDiagnostic, type StateResource } from "../../src/runtime/stack-runner";
import type { ClusterObjectsLocation } from "../../src/controllers/cluster/live-fingerprint";
import type { AddonWorkloads } from "../../src/controllers/cluster/addons-readiness";
import type * as k8s from "@kubernetes/client-node";
import { minimalSpec } from "../support/specs";

/** The derived masters' namespace of Cluster fleet/dev. */
const MASTERS = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "dev" } });
const UID = "6f1c0b5e-0000-4000-8000-00000000d3v0";

/** What a stack of Cluster `name` records once an up created its masters in `namespace`. */
const clusterState = (name: string, namespace: string, tenant = "fleet"): StateResource[] => [
  { type: "pulumi:pulumi:Stack", name: "kube-on-kube-clusters-x" },
  { type: "kube-on-kube:index:ControlPlane", name },
  { type: "kubernetes:core/v1:Namespace", name: `${name}-namespace`, id: namespace },
  { type: "kubernetes:core/v1:Secret", name: `${name}-admin-kubeconfig-copy`, id: `${tenant}/${name}-admin-kubeconfig` },
];

interface Call {
  op: string;
  stack: string;
  refresh?: boolean;
}

function harness(extra: Partial<ClusterReconcilerOptions> = {}) {
  let time = Date.parse("2026-11-25T12:00:00Z");
  const objects = new Map<string, ClusterObject>();
  const events: { type: string; reason: string; message: string }[] = [];
  const calls: Call[] = [];
  /** The stacks' states, and the meta-cluster's namespaces with their labels. */
  const states = new Map<string, StateResource[]>();
  const namespaces = new Map<string, Record<string, string>>();
  const engine = { renamed: [] as string[], progress: [] as (OperationProgress | number)[], whileRunning: undefined as (() => Promise<void>) | undefined, drift: {} as Record<string, number>, failWith: undefined as Error | undefined, resourcesFailWith: undefined as Error | undefined, previewFailWith: undefined as Error | undefined, destroyed: [] as string[], destroyEnv: [] as (Readonly<Record<string, string>> | undefined)[], destroyDiagnostics: [] as ResourceDiagnostic[] };
  /** What the hooks were told, in order, as the metrics would see it. */
  const observed: string[] = [];
  const stacks: ClusterStacks = {
    async up(stack, _program, progress, opts) {
      calls.push({ op: "up", stack, ...(opts?.refresh ? { refresh: true } : {}) });
      // A number is time passing between two reports.
      for (const p of engine.progress) {
        if (typeof p === "number") time += p;
        else progress?.(p);
      }
      await new Promise((resolve) => setImmediate(resolve));
      await engine.whileRunning?.();
      if (engine.failWith) throw engine.failWith;
      if (!states.has(stack)) {
        states.set(stack, clusterState("dev", MASTERS));
        namespaces.set(MASTERS, mastersNamespaceLabels(objects.get("fleet/dev")!));
      }
      return {
        changes: { create: 30 },
        outputs: {
          endpoint: { value: "https://dev-apiserver.fleet-dev.svc:6443", secret: false },
          version: { value: "v1.36.3", secret: false },
          etcdVersion: { value: "3.6.16", secret: false },
          certificatesExpireAt: { value: "2027-11-25T12:00:00Z", secret: false },
          adminKubeconfigCopy: { value: "dev-admin-kubeconfig", secret: false },
          adminKubeconfig: { value: "apiVersion: v1", secret: true },
          caSecret: { value: { namespace: MASTERS, name: "dev-controller-manager-certs", certificateKey: "ca.crt", privateKeyKey: "ca.key" }, secret: false },
        },
      };
    },
    async preview(stack, _program, opts) {
      calls.push({ op: "preview", stack, refresh: opts?.refresh });
      if (engine.previewFailWith) throw engine.previewFailWith;
      for (const [op, n] of Object.entries(engine.drift)) {
        for (let i = 0; i < n; i++) opts?.onChange?.({ op, type: "kubernetes:apps/v1:Deployment", name: `dev-${op}-${i}`, properties: op === "update" ? ["spec"] : [] });
      }
      return { same: 30, ...engine.drift };
    },
    async destroyAndRemove(stack, _program, _progress, opts) {
      calls.push({ op: "destroy", stack });
      engine.destroyEnv.push(opts?.env);
      for (const d of engine.destroyDiagnostics) opts?.onDiagnostic?.(d);
      engine.destroyed.push(stack);
      states.delete(stack);
    },
    resources: async (stack) => {
      if (engine.resourcesFailWith) throw engine.resourcesFailWith;
      return structuredClone(states.get(stack));
    },
    async rename(from, to) {
      engine.renamed.push(`${from} → ${to}`);
      states.set(to, states.get(from)!);
      states.delete(from);
    },
  };
  const machines: string[] = [];
  /** The Progressing message of every status write, in order. */
  const progressing: string[] = [];
  const options: ClusterReconcilerOptions = {
    machinesOf: () => machines,
    namespaceLabels: async (name) => structuredClone(namespaces.get(name)),
    resyncMs: 300_000,
    now: () => new Date(time),
    stacks,
    events: { record: async (_c, type, reason, message) => void events.push({ type, reason, message }) },
    hooks: {
      driftChecked: (result, method) => observed.push(method === "preview" ? `drift ${result}` : `drift ${result} by ${method}`),
      driftCorrected: () => observed.push("corrected"),
      certificatesExpireAt: (ns, name, at) => observed.push(`certs ${ns}/${name} ${at?.toISOString() ?? "gone"}`),
    },
    store: {
      getLive: async (ns, name) => structuredClone(objects.get(`${ns}/${name}`)),
      setFinalizers: async (c, finalizers) => {
        const stored = { ...objects.get(`${c.metadata.namespace}/${c.metadata.name}`)!, metadata: { ...c.metadata, finalizers } };
        objects.set(`${c.metadata.namespace}/${c.metadata.name}`, stored);
        return structuredClone(stored);
      },
      writeStatus: async (c, compute: (fresh: ClusterStatus | undefined) => ClusterStatus) => {
        const key = `${c.metadata.namespace}/${c.metadata.name}`;
        const status = compute(objects.get(key)?.status);
        progressing.push(status.conditions?.find((x) => x.type === "Progressing")?.message ?? "");
        objects.set(key, { ...objects.get(key)!, status: structuredClone(status) });
      },
    },
    ...extra,
  };
  const reconciler = new ClusterReconciler(options);
  const put = (spec = minimalSpec(), generation = 1) => {
    const prev = objects.get("fleet/dev");
    objects.set("fleet/dev", { apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { ...(prev?.metadata ?? { name: "dev", namespace: "fleet", uid: UID }), generation }, spec, status: prev?.status });
  };
  return {
    reconciler,
    machines,
    states,
    namespaces,
    /** Another replica's reconciler on the same objects and engine (a new leader). */
    newReconciler: () => new ClusterReconciler(options),
    observed,
    progressing,
    objects,
    events,
    calls,
    engine,
    put,
    advance: (ms: number) => (time += ms),
    get: () => objects.get("fleet/dev")!,
    condition: (type: string) => objects.get("fleet/dev")!.status?.conditions?.find((c) => c.type === type),
  };
}

let h: ReturnType<typeof harness>;
beforeEach(() => (h = harness()));

describe("ClusterReconciler", () => {
  it("tells in Progressing what the running up does (queued for a slot, a provider's message), then the outcome", async () => {
    const op = { stack: "fleet.dev", operation: "up" } as const;
    h.engine.progress = [
      { ...op, phase: "queued", slots: { active: 4, limit: 4 }, counts: {} },
      { ...op, phase: "running", counts: {} },
      { ...op, phase: "running", counts: { create: 1 } },
      10_000,
      { ...op, phase: "running", counts: { create: 3 }, message: "dev-etcd: Pod dev-etcd-0 Unschedulable: 0/1 nodes are available: 1 Insufficient cpu." },
    ];
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    expect(h.progressing).toEqual([
      "pulumi up of stack fleet.dev",
      "waiting for an engine slot (4 of 4 in use, --concurrency 4), then pulumi up of stack fleet.dev",
      "pulumi up of stack fleet.dev: started",
      // "1 resource done" came within the throttle's interval of "started": held back, then
      // superseded by the next report.
      "pulumi up of stack fleet.dev: 3 resources done (create 3); latest: dev-etcd: Pod dev-etcd-0 Unschedulable: 0/1 nodes are available: 1 Insufficient cpu.",
      "30 create",
    ]);
    expect(h.get().status?.phase).toBe("Ready");
    expect(h.condition("Progressing")?.status).toBe("False");
  });

  it("names what is stuck on the masters' Pods while the up waits, read from the masters' namespace", async () => {
    let polled!: () => void;
    const wasPolled = new Promise<void>((resolve) => (polled = resolve));
    const namespaces: string[] = [];
    h = harness({
      troublesCheckMs: 1,
      masterPodTroubles: async (namespace) => {
        namespaces.push(namespace);
        polled();
        return ["dev-etcd-0 unschedulable: 0/1 nodes are available: 1 Insufficient cpu."];
      },
    });
    h.engine.progress = [{ stack: "fleet.dev", operation: "up", phase: "running", counts: {} }];
    // The up ends only after a poll has answered, as a real one stays waiting for the Pod.
    h.engine.whileRunning = async () => {
      await wasPolled;
      await new Promise((resolve) => setImmediate(resolve));
    };
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    expect(namespaces[0]).toBe(MASTERS);
    expect(h.progressing).toContain("pulumi up of stack fleet.dev: started; stuck: dev-etcd-0 unschedulable: 0/1 nodes are available: 1 Insufficient cpu.");
    expect(h.get().status?.phase).toBe("Ready");
    expect(h.condition("Progressing")?.message).toBe("30 create");
  });

  it("adds its finalizer, applies the stack and reports Ready with the outputs", async () => {
    h.put();
    expect(await h.reconciler.reconcile("fleet/dev")).toEqual({ requeueAfter: 300_000 });
    const c = h.get();
    expect(c.metadata.finalizers).toEqual([CLUSTER_FINALIZER]);
    expect(h.calls).toEqual([{ op: "up", stack: "fleet.dev" }]);
    expect(c.status).toMatchObject({
      phase: "Ready",
      observedGeneration: 1,
      endpoint: "https://dev-apiserver.fleet-dev.svc:6443",
      version: "v1.36.3",
      adminKubeconfigSecret: "dev-admin-kubeconfig",
      // Where Machines find the cluster CA: the stack's output, recorded as it came.
      caSecretRef: { namespace: MASTERS, name: "dev-controller-manager-certs", certificateKey: "ca.crt", privateKeyKey: "ca.key" },
      lastOperation: { kind: "up", result: "succeeded", changes: { create: 30 } },
      // What etcd runs now: a later version change is checked against it.
      etcd: { version: "3.6.16" },
    });
    expect(h.condition("Ready")).toMatchObject({ status: "True", observedGeneration: 1 });
    expect(h.condition("CertificatesExpiring")?.status).toBe("False");
    expect(JSON.stringify(c.status)).not.toContain("apiVersion: v1");
  });

  it("does nothing but wait until the resync period has passed, then checks drift", async () => {
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    h.advance(60_000);
    expect(await h.reconciler.reconcile("fleet/dev")).toEqual({ requeueAfter: 240_000 });
    expect(h.calls).toHaveLength(1);
    h.advance(240_000);
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls.at(-1)).toEqual({ op: "preview", stack: "fleet.dev", refresh: true });
    expect(h.condition("Drifted")?.status).toBe("False");
  });

  it("corrects drift with an up, after an Event that says what drifted", async () => {
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    h.advance(300_000);
    h.engine.drift = { create: 1, update: 1 };
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls).toEqual([
      { op: "up", stack: "fleet.dev" },
      { op: "preview", stack: "fleet.dev", refresh: true },
      // Refresh first: the state still lists what was deleted behind the engine's back.
      { op: "up", stack: "fleet.dev", refresh: true },
    ]);
    expect(h.events.find((e) => e.reason === "Drifted")?.message).toBe(
      "live objects differ from the stack (1 to create, 1 to update: create Deployment dev-create-0; update Deployment dev-update-0 (spec)); correcting",
    );
    expect(h.get().status?.phase).toBe("Ready");
  });

  it("previews an upgrade as an Event before applying it", async () => {
    h.put(minimalSpec({ kubernetesVersion: "v1.35.4" }));
    await h.reconciler.reconcile("fleet/dev");
    h.objects.set("fleet/dev", { ...h.get(), status: { ...h.get().status, version: "v1.35.4" } });
    h.put(minimalSpec({ kubernetesVersion: "v1.36.3" }), 2);
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls.map((c) => c.op)).toEqual(["up", "preview", "up"]);
    expect(h.events.find((e) => e.reason === "UpgradePreview")?.message).toMatch(/^v1\.35\.4 → v1\.36\.3: /);
    expect(h.get().status?.observedGeneration).toBe(2);
  });

  it("holds a masters upgrade that would leave a Machine's kubelet outside the skew policy, until that Machine is upgraded", async () => {
    const kubelets = [
      { name: "worker-0", kubelet: "v1.33.2" },
      { name: "worker-1", kubelet: "v1.36.3" },
      { name: "worker-2" },
    ];
    h = harness({ machineKubelets: (ns, cluster) => (ns === "fleet" && cluster === "dev" ? kubelets : []) });
    h.put(minimalSpec({ kubernetesVersion: "v1.36.3" }));
    await h.reconciler.reconcile("fleet/dev");
    h.objects.set("fleet/dev", { ...h.get(), status: { ...h.get().status, version: "v1.36.3" } });
    h.put(minimalSpec({ kubernetesVersion: "v1.37.0" }), 2);
    expect(await h.reconciler.reconcile("fleet/dev")).toEqual({ requeueAfter: KUBELET_SKEW_RECHECK_MS });
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls.map((c) => c.op)).toEqual(["up"]);
    const message =
      "the masters stay at v1.36.3: v1.37.0 would leave 1 Machine kubelet(s) outside the version-skew policy: Machine worker-0 (kubelet v1.33.2 is 4 minors older than the masters' v1.37.0: kubelet may be at most 3 older (version skew policy)); upgrade those Machines' packages first";
    expect(h.condition("Progressing")).toMatchObject({ status: "False", reason: "VersionSkew", message });
    expect(h.get().status?.version).toBe("v1.36.3");
    // One Event for the hold, not one per look.
    expect(h.events.filter((e) => e.reason === "VersionSkew")).toEqual([{ type: "Warning", reason: "VersionSkew", message }]);
    // The Machine's catalog moved it on: the upgrade goes ahead without a change of the Cluster.
    kubelets[0] = { name: "worker-0", kubelet: "v1.34.1" };
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls.map((c) => c.op)).toEqual(["up", "preview", "up"]);
    expect(h.get().status?.observedGeneration).toBe(2);
  });

  it("never holds a Cluster at its version because of the hosts it already serves", () => {
    const cluster = { spec: minimalSpec({ kubernetesVersion: "v1.36.3" }), status: { version: "v1.36.3" } };
    expect(upgradeHeldByKubelets(cluster, [{ name: "old", kubelet: "v1.30.0" }])).toBeUndefined();
    const upgrading = { ...cluster, spec: minimalSpec({ kubernetesVersion: "v1.37.0" }) };
    const many = Array.from({ length: 7 }, (_, i) => ({ name: `w-${i}`, kubelet: "v1.33.0" }));
    expect(upgradeHeldByKubelets(upgrading, many)).toContain("7 Machine kubelet(s)");
    expect(upgradeHeldByKubelets(upgrading, many)).toContain("Machine w-4 (");
    expect(upgradeHeldByKubelets(upgrading, many)).not.toContain("Machine w-5 (");
    expect(upgradeHeldByKubelets(upgrading, many)).toContain(" and 2 more; upgrade those Machines' packages first");
  });

  it("refuses a minor skip as a terminal error, touching nothing", async () => {
    h.put(minimalSpec({ kubernetesVersion: "v1.34.4" }));
    await h.reconciler.reconcile("fleet/dev");
    h.objects.set("fleet/dev", { ...h.get(), status: { ...h.get().status, version: "v1.34.4" } });
    h.put(minimalSpec({ kubernetesVersion: "v1.36.3" }), 2);
    await expect(h.reconciler.reconcile("fleet/dev")).rejects.toBeInstanceOf(TerminalError);
    expect(h.calls).toHaveLength(1);
    expect(h.condition("Ready")).toMatchObject({ status: "False", reason: "InvalidSpec" });
    expect(h.get().status?.observedGeneration).toBe(1);
  });

  it("refuses an etcd downgrade, and a version change that would empty the only emptyDir member, touching nothing; keeps the etcd status others wrote", async () => {
    h.put(minimalSpec());
    // The membership check wrote its fields before: the update's etcd version joins them.
    h.objects.set("fleet/dev", { ...h.get(), status: { etcd: { members: 1 } } });
    await h.reconciler.reconcile("fleet/dev");
    expect(h.get().status?.etcd).toEqual({ members: 1, version: "3.6.16" });
    h.put(minimalSpec({ etcd: { version: "3.5.21", storage: { volumeSource: { emptyDir: {} } } } }), 2);
    await expect(h.reconciler.reconcile("fleet/dev")).rejects.toBeInstanceOf(TerminalError);
    expect(h.condition("Ready")?.message).toMatch(/spec\.etcd\.version: etcd 3\.6\.16 → 3\.5\.21 is a downgrade/);
    expect(h.condition("Ready")?.message).toMatch(/restarts the only etcd member, whose data is in an emptyDir/);
    h.put(minimalSpec({ etcd: { version: "3.6.17", storage: { volumeSource: { emptyDir: {} } } } }), 3);
    await expect(h.reconciler.reconcile("fleet/dev")).rejects.toBeInstanceOf(TerminalError);
    expect(h.condition("Ready")).toMatchObject({ status: "False", reason: "InvalidSpec" });
    expect(h.calls).toHaveLength(1);
    expect(h.get().status?.etcd).toEqual({ version: "3.6.16", members: 1 });
  });

  it("reports every problem of an invalid spec in the status and an Event, and does not retry", async () => {
    h.put({ ...minimalSpec(), mode: "huge" as never, etcd: { version: "3.6.16", replicas: 2, storage: {} } });
    await expect(h.reconciler.reconcile("fleet/dev")).rejects.toBeInstanceOf(TerminalError);
    expect(h.get().status?.phase).toBe("Failed");
    const message = h.events.find((e) => e.reason === "InvalidSpec")?.message ?? "";
    for (const path of ["spec.mode", "spec.etcd.replicas", "spec.etcd.storage"]) expect(message).toContain(path);
    expect(h.calls).toEqual([]);
  });

  it("makes no change while paused", async () => {
    h.put(minimalSpec({ paused: true }));
    await h.reconciler.reconcile("fleet/dev");
    expect(h.calls).toEqual([]);
    expect(h.condition("Progressing")).toMatchObject({ status: "False", reason: "Paused" });
  });

  it("records a failed update and lets the controller back off; a busy stack is looked at later", async () => {
    h.put();
    h.engine.failWith = new StackOperationError("fleet.dev", "up", "engine", "Deployment prod-a-apiserver: timed out");
    await expect(h.reconciler.reconcile("fleet/dev")).rejects.toThrow(/timed out/);
    expect(h.get().status).toMatchObject({ phase: "Failed", lastOperation: { result: "failed" } });
    expect(h.condition("Degraded")?.status).toBe("True");
    h.engine.failWith = new StackOperationError("fleet.dev", "up", "concurrent-update", "locked");
    expect(await h.reconciler.reconcile("fleet/dev")).toEqual({ requeueAfter: 30_000 });
  });

  it("fails only with a condition that names the stack when its state cannot be read, applying nothing, and retries", async () => {
    h.put();
    const unreadable = new StackOperationError("fleet.dev", "export", "state-unreadable", "failed to load checkpoint: place 1: invalid character");
    h.engine.resourcesFailWith = unreadable;
    await expect(h.reconciler.reconcile("fleet/dev")).rejects.toBe(unreadable);
    expect(h.calls).toEqual([]);
    expect(h.get().status?.phase).toBe("Failed");
    expect(h.condition("Ready")).toMatchObject({ status: "False", reason: "StackStateUnreadable", message: expect.stringContaining("the state of stack fleet.dev in the state backend cannot be read") });
    expect(h.condition("Ready")?.message).toContain("failed to load checkpoint");
    expect(h.events).toEqual([expect.objectContaining({ type: "Warning", reason: "StackStateUnreadable" })]);

    // Restored by a person: the next try applies it. Broken again later, mid-update: said the same way.
    h.engine.resourcesFailWith = undefined;
    await h.reconciler.reconcile("fleet/dev");
    expect(h.get().status?.phase).toBe("Ready");
    h.put(minimalSpec(), 2);
    h.engine.failWith = new StackOperationError("fleet.dev", "up", "state-unreadable", "failed to load checkpoint: unexpected end of JSON input");
    await expect(h.reconciler.reconcile("fleet/dev")).rejects.toBe(h.engine.failWith);
    expect(h.get().status).toMatchObject({ phase: "Degraded", lastOperation: { result: "failed" } });
    expect(h.condition("Ready")).toMatchObject({ status: "False", reason: "StackStateUnreadable" });
    expect(h.condition("Degraded")).toMatchObject({ status: "True", reason: "StackStateUnreadable" });
  });

  it("says a stack's state is unreadable when a drift check finds it so, on a Cluster that was Ready", async () => {
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    expect(h.get().status?.phase).toBe("Ready");
    h.advance(300_000);
    h.engine.previewFailWith = new StackOperationError("fleet.dev", "preview", "state-unreadable", "failed to load checkpoint: unexpected end of JSON input");
    await expect(h.reconciler.reconcile("fleet/dev")).rejects.toBe(h.engine.previewFailWith);
    expect(h.get().status?.phase).toBe("Degraded");
    expect(h.condition("Drifted")).toMatchObject({ status: "Unknown", reason: "DriftCheckFailed" });
    expect(h.condition("Ready")).toMatchObject({ status: "False", reason: "StackStateUnreadable", message: expect.stringContaining("stack fleet.dev") });
  });

  it("destroys and removes the stack before releasing its finalizer", async () => {
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    h.objects.set("fleet/dev", { ...h.get(), metadata: { ...h.get().metadata, deletionTimestamp: new Date("2026-11-25T13:00:00Z") } });
    await h.reconciler.reconcile("fleet/dev");
    expect(h.engine.destroyed).toEqual(["fleet.dev"]);
    expect(h.get().metadata.finalizers).toEqual([]);
  });

  it("lets the destroy abandon add-ons of an unreachable business cluster only when the state allows it, and says so", async () => {
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    const deleting = () => h.objects.set("fleet/dev", { ...h.get(), metadata: { ...h.get().metadata, deletionTimestamp: new Date("2026-11-25T13:00:00Z") } });
    const withAddons: StateResource[] = [
      ...h.states.get("fleet.dev")!,
      { type: "pulumi:providers:kubernetes", name: "meta-cluster", inputs: { deleteUnreachable: "false" } },
      { type: "pulumi:providers:kubernetes", name: "business-cluster" },
      { type: "kubernetes:apps/v1:DaemonSet", name: "dev-addons-flannel" },
    ];
    h.states.set("fleet.dev", withAddons);
    h.engine.destroyDiagnostics = [
      { severity: "warning", type: "kubernetes:apps/v1:DaemonSet", name: "dev-addons-flannel", message: "configured Kubernetes cluster is unreachable: unable to load schema information from the API server: connection refused" },
      {
        severity: "info",
        type: "kubernetes:apps/v1:DaemonSet",
        name: "dev-addons-flannel",
        message: "configured Kubernetes cluster is unreachable and the `deleteUnreachable` option is enabled. Deleting the unreachable resource from Pulumi state",
      },
    ];
    deleting();
    await h.reconciler.reconcile("fleet/dev");
    expect(h.engine.destroyEnv).toEqual([{ PULUMI_K8S_DELETE_UNREACHABLE: "true" }]);
    expect(h.events.find((e) => e.reason === "AddonsAbandoned")).toMatchObject({ type: "Warning", message: expect.stringMatching(/^1 add-on object\(s\) abandoned.*unreachable \(DaemonSet dev-addons-flannel\)/) });
    expect(h.progressing.at(-1)).toMatch(/stack fleet\.dev destroyed: 1 add-on object/);
    expect(h.get().metadata.finalizers).toEqual([]);
  });

  it("destroys without the switch when a meta-cluster provider in the state lacks the pin", async () => {
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    h.states.set("fleet.dev", [
      ...h.states.get("fleet.dev")!,
      { type: "pulumi:providers:kubernetes", name: "meta-cluster" },
      { type: "pulumi:providers:kubernetes", name: "business-cluster" },
    ]);
    h.objects.set("fleet/dev", { ...h.get(), metadata: { ...h.get().metadata, deletionTimestamp: new Date("2026-11-25T13:00:00Z") } });
    await h.reconciler.reconcile("fleet/dev");
    expect(h.engine.destroyEnv).toEqual([undefined]);
    expect(h.progressing).toContainEqual(expect.stringMatching(/^destroying stack fleet\.dev; add-ons cannot be abandoned .*meta-cluster/));
    expect(h.events.some((e) => e.reason === "AddonsAbandoned")).toBe(false);
    expect(h.engine.destroyed).toEqual(["fleet.dev"]);
  });

  it("waits for the cluster's Machines to be deleted before destroying its masters", async () => {
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    h.machines.push("w0", "w1");
    h.objects.set("fleet/dev", { ...h.get(), metadata: { ...h.get().metadata, deletionTimestamp: new Date("2026-11-25T13:00:00Z") } });
    expect(await h.reconciler.reconcile("fleet/dev")).toEqual({ requeueAfter: 10_000 });
    expect(h.engine.destroyed).toEqual([]);
    expect(h.condition("Progressing")).toMatchObject({ reason: "WaitingForMachines", message: expect.stringContaining("w0, w1") });
    h.machines.length = 0;
    await h.reconciler.reconcile("fleet/dev");
    expect(h.engine.destroyed).toEqual(["fleet.dev"]);
  });
});

describe("ClusterReconciler hooks (metrics)", () => {
  const expiry = "certs fleet/dev 2027-11-25T12:00:00.000Z";

  it("tells the certificate expiry after an up, and again to a new leader that has not updated anything", async () => {
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    expect(h.observed.at(-1)).toBe(expiry);
    h.observed.length = 0;
    h.advance(60_000);
    await h.newReconciler().reconcile("fleet/dev");
    expect(h.observed).toContain(expiry);
  });

  it("counts a drift check in sync, and a drifted one followed by its correction", async () => {
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    h.advance(300_000);
    await h.reconciler.reconcile("fleet/dev");
    h.advance(300_000);
    h.engine.drift = { create: 1 };
    await h.reconciler.reconcile("fleet/dev");
    expect(h.observed.filter((o) => !o.startsWith("certs"))).toEqual(["drift in-sync", "drift drifted", "corrected"]);
  });

  it("counts a failed preview as an error, and no correction when the correcting up fails", async () => {
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    h.advance(300_000);
    h.engine.previewFailWith = new StackOperationError("fleet.dev", "preview", "engine", "no network");
    await expect(h.reconciler.reconcile("fleet/dev")).rejects.toThrow(/no network/);
    // Said where users look: drift goes uncorrected while the check cannot run.
    expect(h.condition("Drifted")).toMatchObject({ status: "Unknown", reason: "DriftCheckFailed", message: expect.stringContaining("no network") });
    expect(h.events.find((e) => e.reason === "DriftCheckFailed")?.message).toContain("no network");
    h.engine.previewFailWith = undefined;
    h.engine.drift = { update: 1 };
    h.engine.failWith = new StackOperationError("fleet.dev", "up", "engine", "boom");
    await expect(h.reconciler.reconcile("fleet/dev")).rejects.toThrow(/boom/);
    expect(h.observed.filter((o) => !o.startsWith("certs"))).toEqual(["drift error", "drift drifted"]);
  });

  it("withdraws the expiry once the Cluster is being deleted, and when it is gone", async () => {
    h.put();
    await h.reconciler.reconcile("fleet/dev");
    h.objects.set("fleet/dev", { ...h.get(), metadata: { ...h.get().metadata, deletionTimestamp: new Date("2026-11-25T13:00:00Z") } });
    h.observed.length = 0;
    await h.reconciler.reconcile("fleet/dev");
    expect(new Set(h.observed)).toEqual(new Set(["certs fleet/dev gone"]));
    h.objects.delete("fleet/dev");
    h.observed.length = 0;
    await h.reconciler.reconcile("fleet/dev");
    expect(h.observed).toEqual(["certs fleet/dev gone"]);
  });
});

describe("describeChanges", () => {
  it("names at most five resources by kind, name and changed properties, then counts the rest", () => {
    const changes = Array.from({ length: 7 }, (_, i) => ({ op: "update", type: "kubernetes:core/v1:Secret", name: `s${i}`, properties: ["data", "metadata"] }));
    expect(describeChanges(changes)).toBe(
      "update Secret s0 (data, metadata); update Secret s1 (data, metadata); update Secret s2 (data, metadata); update Secret s3 (data, metadata); update Secret s4 (data, metadata); and 2 more",
    );
    expect(describeChanges([])).toBe("");
  });
});

describe("ClusterReconciler drift checks with a live fingerprint", () => {
  function withFingerprint(fullDriftCheckMs?: number) {
    const live = { fingerprint: "fp-1", fail: false, reads: [] as string[] };
    const fh = harness({
      fullDriftCheckMs,
      liveFingerprint: async (at) => {
        live.reads.push(`${at.cluster} ${at.mastersNamespace} ${at.adminKubeconfigCopy?.namespace}/${at.adminKubeconfigCopy?.name}`);
        if (live.fail) throw new Error("meta-cluster unreachable");
        return live.fingerprint;
      },
    });
    fh.put();
    return { fh, live };
  }
  const previews = (calls: Call[]) => calls.filter((c) => c.op === "preview").length;

  it("previews once to verify the stack, then trusts an unchanged fingerprint until the full-check period", async () => {
    const { fh, live } = withFingerprint(3_600_000);
    await fh.reconciler.reconcile("fleet/dev");
    for (let i = 0; i < 3; i++) {
      fh.advance(300_000);
      expect(await fh.reconciler.reconcile("fleet/dev")).toEqual({ requeueAfter: 300_000 });
    }
    // The first check after the update verifies with a preview; the next two only read the fingerprint.
    expect(previews(fh.calls)).toBe(1);
    expect(fh.observed.filter((o) => o.startsWith("drift"))).toEqual(["drift in-sync", "drift in-sync by fingerprint", "drift in-sync by fingerprint"]);
    expect(live.reads[0]).toBe(`dev ${MASTERS} fleet/dev-admin-kubeconfig`);
    expect(fh.condition("Drifted")).toMatchObject({ status: "False", reason: "InSync" });
    // An hour after the verifying preview (at 5 min), a full one runs again even though nothing moved.
    fh.advance(2_700_000);
    await fh.reconciler.reconcile("fleet/dev");
    expect(previews(fh.calls)).toBe(1);
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    expect(previews(fh.calls)).toBe(2);
  });

  it("sends a changed fingerprint to the full preview, which finds and corrects the drift", async () => {
    const { fh, live } = withFingerprint();
    await fh.reconciler.reconcile("fleet/dev");
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    live.fingerprint = "fp-2";
    fh.engine.drift = { create: 1 };
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    expect(fh.calls.map((c) => c.op)).toEqual(["up", "preview", "preview", "up"]);
    expect(fh.observed).toContain("corrected");
    // After the correcting update the old fingerprint proves nothing: the next check previews again.
    fh.engine.drift = {};
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    expect(previews(fh.calls)).toBe(3);
  });

  it("accepts a changed fingerprint the preview finds in sync (a status write) and trusts the new one", async () => {
    const { fh, live } = withFingerprint();
    await fh.reconciler.reconcile("fleet/dev");
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    live.fingerprint = "fp-after-pod-restart";
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    expect(fh.calls.map((c) => c.op)).toEqual(["up", "preview", "preview"]);
  });

  it("falls back to the full preview when the fingerprint cannot be read", async () => {
    const { fh, live } = withFingerprint();
    await fh.reconciler.reconcile("fleet/dev");
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    live.fail = true;
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    expect(previews(fh.calls)).toBe(2);
  });

  it("reads the add-ons through the stack's admin kubeconfig when they are deployed; a business apiserver down sends the check to the preview", async () => {
    const at: (ClusterObjectsLocation | undefined)[] = [];
    let businessDown = false;
    const fh = harness({
      liveFingerprint: async (location) => {
        at.push(location);
        if (location.addons && businessDown) throw new Error("the business apiserver does not answer");
        return "fp-1";
      },
    });
    const withAddons = minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "dev.k8s.example.com" } } });
    fh.put(withAddons);
    await fh.reconciler.reconcile("fleet/dev");
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    // Never the tenant's copy next to the Cluster: the Secret the stack keeps in the masters' namespace.
    expect(at[0]?.addons).toEqual({ adminKubeconfig: { namespace: MASTERS, name: "dev-admin-kubeconfig", key: "kubeconfig" } });
    expect(previews(fh.calls)).toBe(1);
    businessDown = true;
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    expect(previews(fh.calls)).toBe(2);
    // All add-ons disabled (a new generation): nothing is read in the business cluster any more.
    fh.put({ ...withAddons, addons: { network: { enabled: false }, kubeProxy: { enabled: false }, coreDNS: { enabled: false } } }, 2);
    await fh.reconciler.reconcile("fleet/dev");
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    expect(at.at(-1)?.addons).toBeUndefined();
  });

  it("reports the add-ons' readiness after the up and on each drift check, with an Event per transition, and leaves Ready to the masters", async () => {
    let live: AddonWorkloads | Error = { daemonSets: [], deployments: [], hasNodes: false };
    const ah = harness({
      addonWorkloads: async () => {
        if (live instanceof Error) throw live;
        return live;
      },
    });
    const ds = (name: string, available: number): k8s.V1DaemonSet => ({
      metadata: { name, generation: 1 },
      status: { desiredNumberScheduled: 2, numberAvailable: available, updatedNumberScheduled: 2, currentNumberScheduled: 2, numberMisscheduled: 0, numberReady: available, observedGeneration: 1 },
    });
    const coredns: k8s.V1Deployment = { metadata: { name: "coredns", generation: 1 }, spec: { replicas: 2, selector: {}, template: {} }, status: { availableReplicas: 2, updatedReplicas: 2, replicas: 2, observedGeneration: 1 } };
    const addonEvents = () => ah.events.filter((e) => e.reason.startsWith("Addons")).map((e) => `${e.type} ${e.reason}: ${e.message}`);
    ah.put(minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "dev.k8s.example.com" } } }));
    await ah.reconciler.reconcile("fleet/dev");
    // The workloads exist, no Machine has joined yet.
    expect(ah.condition("AddonsReady")).toMatchObject({ status: "False", reason: "Missing" });
    live = { daemonSets: [ds("flannel", 0), ds("kube-proxy", 0)], deployments: [coredns], hasNodes: false };
    ah.advance(300_000);
    await ah.reconciler.reconcile("fleet/dev");
    expect(ah.condition("AddonsReady")).toMatchObject({ status: "False", reason: "NoNodes", message: "no Nodes yet: add Machines" });
    expect(ah.condition("Ready")?.status).toBe("True");
    live = { daemonSets: [ds("flannel", 2), ds("kube-proxy", 1)], deployments: [coredns], hasNodes: true };
    ah.advance(300_000);
    await ah.reconciler.reconcile("fleet/dev");
    expect(ah.condition("AddonsReady")).toMatchObject({ status: "False", reason: "NotReady", message: "kube-proxy 1/2 available" });
    live = { daemonSets: [ds("flannel", 2), ds("kube-proxy", 2)], deployments: [coredns], hasNodes: true };
    ah.advance(300_000);
    await ah.reconciler.reconcile("fleet/dev");
    expect(ah.condition("AddonsReady")).toMatchObject({ status: "True", reason: "Ready" });
    live = new Error("This operation was aborted");
    ah.advance(300_000);
    await ah.reconciler.reconcile("fleet/dev");
    expect(ah.condition("AddonsReady")).toMatchObject({ status: "Unknown", reason: "Unreachable" });
    expect(ah.condition("Ready")?.status).toBe("True");
    // A second check that finds the same: no new Event.
    ah.advance(300_000);
    await ah.reconciler.reconcile("fleet/dev");
    expect(addonEvents()).toEqual([
      "Warning AddonsNotReady: not found in kube-system: DaemonSet flannel, DaemonSet kube-proxy, Deployment coredns (the next drift check puts it back)",
      "Warning AddonsNotReady: no Nodes yet: add Machines",
      "Warning AddonsNotReady: kube-proxy 1/2 available",
      "Normal AddonsReady: available: flannel 2/2, kube-proxy 2/2, coredns 2/2",
      "Warning AddonsUnknown: the business cluster's apiserver could not be read: This operation was aborted",
    ]);
  });

  it("says the add-ons are Disabled without reading the business cluster when the spec turns them all off", async () => {
    let reads = 0;
    const ah = harness({
      addonWorkloads: async () => {
        reads++;
        return { daemonSets: [], deployments: [], hasNodes: true };
      },
    });
    ah.put(minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "dev.k8s.example.com" } }, addons: { network: { enabled: false }, kubeProxy: { enabled: false }, coreDNS: { enabled: false } } }));
    await ah.reconciler.reconcile("fleet/dev");
    expect(ah.condition("AddonsReady")).toMatchObject({ status: "True", reason: "Disabled" });
    expect(reads).toBe(0);
  });

  it("previews again after a new generation, and for a new leader that has verified nothing yet", async () => {
    const { fh } = withFingerprint();
    await fh.reconciler.reconcile("fleet/dev");
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    fh.advance(300_000);
    await fh.newReconciler().reconcile("fleet/dev");
    expect(previews(fh.calls)).toBe(2);
  });

  it("previews inside the certificate renewal window, where the preview is what re-issues them", async () => {
    // A full-check period longer than the test, so only the window can cause the preview.
    const { fh } = withFingerprint(10 * 365 * 86_400_000);
    await fh.reconciler.reconcile("fleet/dev");
    fh.advance(300_000);
    await fh.reconciler.reconcile("fleet/dev");
    // 2027-11-25 expiry, renewBeforeDays 30: move the clock to 10 days before it.
    fh.advance(Date.parse("2027-10-15T12:00:00Z") - Date.parse("2026-11-25T12:05:00Z"));
    await fh.reconciler.reconcile("fleet/dev");
    expect(previews(fh.calls)).toBe(1);
    fh.advance(Date.parse("2027-11-15T12:00:00Z") - Date.parse("2027-10-15T12:00:00Z"));
    await fh.reconciler.reconcile("fleet/dev");
    expect(previews(fh.calls)).toBe(2);
  });
});
