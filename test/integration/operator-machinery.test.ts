/**
 * The operator machinery against a real kube-apiserver + etcd (test/support/apiserver.ts): informer
 * events and recovery when the apiserver goes away, leader election over a real Lease, Event
 * aggregation, and status writes that hit a real 409. Waits are bounded polls of a condition,
 * never fixed sleeps; the figures printed (restart and failover times) are measured, not asserted.
 */
import {
  ApiextensionsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  type V1ConfigMap,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Controller } from "../../src/runtime/controller";
import { EventRecorder } from "../../src/runtime/events";
import { listInPages, ResilientInformer, type ChangeType } from "../../src/runtime/informer";
import { LeaderElector } from "../../src/runtime/leader-election";
import { Manager } from "../../src/runtime/manager";
import { StatusWriter } from "../../src/runtime/status-writer";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { eventually } from "../support/poll";

const NS = "kok-machinery";

let apiserver: TestApiserver;
let kc: KubeConfig;
let core: CoreV1Api;

function configMapInformer(extra: Partial<ConstructorParameters<typeof ResilientInformer<V1ConfigMap>>[0]> = {}) {
  const informer = new ResilientInformer<V1ConfigMap>({
    kubeConfig: kc,
    path: `/api/v1/namespaces/${NS}/configmaps`,
    list: () => core.listNamespacedConfigMap({ namespace: NS }),
    restartBackoff: { baseMs: 100, capMs: 1000 },
    ...extra,
  });
  const seen: Array<[string, ChangeType]> = [];
  informer.onChange((key, type) => seen.push([key, type]));
  const saw = (key: string, type: ChangeType) => seen.some(([k, t]) => k === key && t === type);
  return { informer, seen, saw };
}

const cm = (name: string, data: Record<string, string> = {}): V1ConfigMap => ({ metadata: { name, namespace: NS }, data });

beforeAll(async () => {
  apiserver = await startTestApiserver();
  kc = apiserver.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
});

afterAll(async () => {
  await apiserver?.stop();
});

describe("informer + controller against a real apiserver", () => {
  it("turns create, update and delete into keys, reconciles them, and resyncs", async () => {
    const { informer, saw } = configMapInformer({ resyncPeriodMs: 300 });
    const reconciled: string[] = [];
    const controller = new Controller({ kind: "ConfigMap", concurrency: 2, reconcile: async (key) => void reconciled.push(key) });
    informer.onChange((key) => controller.enqueue(key));
    controller.start();
    informer.start();
    await informer.waitForSync();

    await core.createNamespacedConfigMap({ namespace: NS, body: cm("alpha", { v: "1" }) });
    await eventually("add of alpha", () => saw(`${NS}/alpha`, "add"));
    expect(informer.get(`${NS}/alpha`)?.data).toEqual({ v: "1" });

    await core.replaceNamespacedConfigMap({ name: "alpha", namespace: NS, body: cm("alpha", { v: "2" }) });
    await eventually("update of alpha", () => saw(`${NS}/alpha`, "update"));
    expect(informer.get(`${NS}/alpha`)?.data).toEqual({ v: "2" });
    await eventually("a resync of alpha", () => saw(`${NS}/alpha`, "resync"));

    await core.deleteNamespacedConfigMap({ name: "alpha", namespace: NS });
    await eventually("delete of alpha", () => saw(`${NS}/alpha`, "delete"));
    expect(informer.get(`${NS}/alpha`)).toBeUndefined();
    expect(reconciled).toContain(`${NS}/alpha`);

    await informer.stop();
    await controller.stop();
  });

  it("caches listed and watched objects without managedFields or kubectl's last-applied copy", async () => {
    const last = "kubectl.kubernetes.io/last-applied-configuration";
    await core.createNamespacedConfigMap({ namespace: NS, body: { ...cm("trim-listed", { v: "1" }), metadata: { name: "trim-listed", namespace: NS, annotations: { [last]: "{}", keep: "me" } } } });
    const { informer, saw } = configMapInformer();
    informer.start();
    await informer.waitForSync();
    await core.createNamespacedConfigMap({ namespace: NS, body: cm("trim-watched", { v: "1" }) });
    await eventually("add of trim-watched", () => saw(`${NS}/trim-watched`, "add"));
    const listed = informer.get(`${NS}/trim-listed`);
    const watched = informer.get(`${NS}/trim-watched`);
    // The apiserver does keep them: the cache drops them.
    expect((await core.readNamespacedConfigMap({ namespace: NS, name: "trim-watched" })).metadata?.managedFields?.length).toBeGreaterThan(0);
    expect(listed?.metadata?.managedFields).toBeUndefined();
    expect(listed?.metadata?.annotations).toEqual({ keep: "me" });
    expect(watched?.metadata?.managedFields).toBeUndefined();
    expect(watched?.data).toEqual({ v: "1" });
    await informer.stop();
  });

  it("restarts after the apiserver goes away and sees what changed meanwhile", async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: cm("before") });
    await core.createNamespacedConfigMap({ namespace: NS, body: cm("kept", { v: "1" }) });
    // The restart waits on this gate, so the changes below certainly happen while it is down.
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const errors: unknown[] = [];
    const { informer, saw } = configMapInformer({ sleep: () => gate, onError: (err) => errors.push(err) });
    informer.start();
    await informer.waitForSync();
    expect(informer.get(`${NS}/before`)).toBeDefined();

    await apiserver.stopApiserver();
    await eventually("the informer to notice the apiserver is gone", () => errors.length > 0);
    await apiserver.startApiserver();
    await core.createNamespacedConfigMap({ namespace: NS, body: cm("while-down") });
    await core.replaceNamespacedConfigMap({ name: "kept", namespace: NS, body: cm("kept", { v: "2" }) });
    await core.deleteNamespacedConfigMap({ name: "before", namespace: NS });
    expect(saw(`${NS}/while-down`, "add")).toBe(false);

    const reopened = Date.now();
    openGate();
    await eventually("the changes made while down", () => saw(`${NS}/while-down`, "add") && saw(`${NS}/before`, "delete") && saw(`${NS}/kept`, "update"));
    console.log(`informer caught up ${Date.now() - reopened} ms after its restart was allowed (${informer.restarts} restart(s))`);
    expect(informer.get(`${NS}/kept`)?.data).toEqual({ v: "2" });
    expect(informer.get(`${NS}/before`)).toBeUndefined();
    await informer.stop();
  });

  it("recovers on its own backoff: a change after the apiserver returns is seen", async () => {
    const { informer, saw } = configMapInformer();
    informer.start();
    await informer.waitForSync();
    await apiserver.stopApiserver();
    await apiserver.startApiserver();
    const back = Date.now();
    await core.createNamespacedConfigMap({ namespace: NS, body: cm("after-restart") });
    await eventually("add of after-restart", () => saw(`${NS}/after-restart`, "add"));
    console.log(`informer saw a new object ${Date.now() - back} ms after the apiserver was ready again (${informer.restarts} restart(s))`);
    expect(informer.restarts).toBeGreaterThan(0);
    await informer.stop();
  });
});

describe("leader election over a real Lease", () => {
  const timings = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 250 };

  function candidate(identity: string, log: string[]) {
    return new LeaderElector({
      api: kc.makeApiClient(CoordinationV1Api),
      namespace: NS,
      name: "machinery-test",
      identity,
      ...timings,
      onStartedLeading: () => void log.push(`${identity} started`),
      onStoppedLeading: () => void log.push(`${identity} stopped`),
    });
  }

  it("elects exactly one, hands over on release, and takes over when the leader stops renewing", async () => {
    const log: string[] = [];
    const a = candidate("replica-a", log);
    const b = candidate("replica-b", log);
    const atMostOne = () => expect([a, b].filter((e) => e.isLeader()).length).toBeLessThanOrEqual(1);
    a.start();
    await eventually("replica-a to lead", () => a.isLeader());
    b.start();
    await eventually("replica-b to see replica-a as leader", () => {
      atMostOne();
      return b.leader() === "replica-a";
    });
    expect(b.isLeader()).toBe(false);

    const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: "machinery-test", namespace: NS });
    expect(lease.spec).toMatchObject({ holderIdentity: "replica-a", leaseDurationSeconds: 3, leaseTransitions: 0 });
    expect(lease.spec?.renewTime).toBeDefined();
    expect(lease.spec?.acquireTime).toBeDefined();

    const released = Date.now();
    await a.stop();
    await eventually("replica-b to take over after release", () => {
      atMostOne();
      return b.isLeader();
    });
    const handover = Date.now() - released;

    // A third replica; replica-b then "crashes": it stops renewing without releasing.
    const c = candidate("replica-c", log);
    c.start();
    await eventually("replica-c to see replica-b as leader", () => c.leader() === "replica-b");
    const crashed = Date.now();
    await b.stop({ release: false });
    await eventually("replica-c to take over the expired lease", () => c.isLeader());
    const failover = Date.now() - crashed;
    console.log(`leader handover on release: ${handover} ms; failover after a crash: ${failover} ms (leaseDuration ${timings.leaseDurationMs} ms)`);

    const after = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: "machinery-test", namespace: NS });
    expect(after.spec).toMatchObject({ holderIdentity: "replica-c", leaseTransitions: 2 });
    expect(log).toEqual(["replica-a started", "replica-a stopped", "replica-b started", "replica-b stopped", "replica-c started"]);
    await c.stop();
  });
});

describe("events and status against a real apiserver", () => {
  it("aggregates identical events by count and keeps secrets out of messages", async () => {
    const subject = await core.createNamespacedConfigMap({ namespace: NS, body: cm("event-subject") });
    const subjectRef = { apiVersion: "v1", kind: "ConfigMap", metadata: subject.metadata };
    const secret = "hunter2-passphrase";
    const recorder = new EventRecorder({ api: core, instance: "test-replica", secrets: () => [secret] });
    for (let i = 0; i < 3; i++) await recorder.warning(subjectRef, "UpFailed", `pulumi up failed: passphrase ${secret} rejected`);
    await recorder.normal(subjectRef, "Provisioned", "control plane is ready");

    const events = await core.listNamespacedEvent({ namespace: NS, fieldSelector: "involvedObject.name=event-subject" });
    const byReason = Object.fromEntries(events.items.map((e) => [e.reason, e]));
    expect(events.items).toHaveLength(2);
    expect(byReason.UpFailed).toMatchObject({ count: 3, type: "Warning", reportingComponent: "kube-on-kube-operator", reportingInstance: "test-replica" });
    expect(byReason.UpFailed!.message).toBe("pulumi up failed: passphrase [REDACTED] rejected");
    expect(byReason.UpFailed!.involvedObject).toMatchObject({ kind: "ConfigMap", name: "event-subject", uid: subject.metadata!.uid });
    expect(byReason.Provisioned).toMatchObject({ count: 1, type: "Normal" });
  });

  it("writes status through the subresource, retrying a real 409 with a fresh read", async () => {
    const group = "test.kubeonkube.io";
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({
      body: {
        metadata: { name: `widgets.${group}` },
        spec: {
          group,
          names: { kind: "Widget", plural: "widgets", singular: "widget", listKind: "WidgetList" },
          scope: "Namespaced",
          versions: [
            {
              name: "v1",
              served: true,
              storage: true,
              subresources: { status: {} },
              schema: { openAPIV3Schema: { type: "object", x_kubernetes_preserve_unknown_fields: true } },
            },
          ],
        },
      },
    });
    await eventually("the Widget CRD to be established", async () => {
      const crd = await ext.readCustomResourceDefinition({ name: `widgets.${group}` });
      return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
    });
    const custom = kc.makeApiClient(CustomObjectsApi);
    const target = { group, version: "v1", plural: "widgets", namespace: NS };
    await eventually("the widgets endpoint to serve", () =>
      custom.createNamespacedCustomObject({ ...target, body: { apiVersion: `${group}/v1`, kind: "Widget", metadata: { name: "w1" }, spec: { size: 1 } } }).then(
        () => true,
        () => false,
      ),
    );

    type WidgetStatus = { observedSize?: number; message?: string };
    type Widget = KubernetesObject & { spec: { size: number }; status?: WidgetStatus };
    const conflicts: number[] = [];
    let edited = false;
    // Someone edits the spec between our read and our first write: the apiserver must answer 409.
    const racingApi = Object.assign(Object.create(custom) as CustomObjectsApi, {
      replaceNamespacedCustomObjectStatus: async (req: Parameters<CustomObjectsApi["replaceNamespacedCustomObjectStatus"]>[0]) => {
        if (!edited) {
          edited = true;
          const current = (await custom.getNamespacedCustomObject({ ...target, name: "w1" })) as Widget;
          await custom.replaceNamespacedCustomObject({ ...target, name: "w1", body: { ...current, spec: { size: 2 } } });
        }
        return custom.replaceNamespacedCustomObjectStatus(req);
      },
    });
    const writer = new StatusWriter<WidgetStatus, Widget>({
      api: racingApi,
      ...target,
      secrets: () => ["s3cret-token"],
      onConflict: (_key, attempt) => conflicts.push(attempt),
    });
    const seenSizes: number[] = [];
    const written = await writer.update(`${NS}/w1`, (current) => {
      seenSizes.push(current.spec.size);
      return { observedSize: current.spec.size, message: "token s3cret-token accepted" };
    });
    expect(conflicts).toEqual([1]);
    // The retry recomputed from the re-read object, so the status reflects the concurrent edit.
    expect(seenSizes).toEqual([1, 2]);
    expect(written?.status).toEqual({ observedSize: 2, message: "token [REDACTED] accepted" });
    expect(written?.spec.size).toBe(2);

    // An unchanged status is not written again (no resourceVersion churn).
    const again = await writer.update(`${NS}/w1`, (current) => ({ observedSize: current.spec.size, message: "token s3cret-token accepted" }));
    expect(again?.metadata?.resourceVersion).toBe(written?.metadata?.resourceVersion);
    expect(await writer.update(`${NS}/missing`, () => ({ observedSize: 0 }))).toBeUndefined();
  });
});

describe("lists in pages against a real apiserver", () => {
  it("follows continue tokens to the last page, for built-in and custom collections", async () => {
    for (let i = 0; i < 5; i++) await core.createNamespacedConfigMap({ namespace: NS, body: cm(`paged-${i}`) });
    const configMaps = await listInPages((page) => core.listNamespacedConfigMap({ namespace: NS, labelSelector: undefined, ...page }), 2);
    expect(configMaps.items.filter((c) => c.metadata?.name?.startsWith("paged-"))).toHaveLength(5);
    // Custom objects come back as plain JSON (metadata.continue, not _continue): the Widget CRD of the status test above.
    const custom = kc.makeApiClient(CustomObjectsApi);
    const target = { group: "test.kubeonkube.io", version: "v1", plural: "widgets", namespace: NS };
    for (let i = 0; i < 5; i++) await custom.createNamespacedCustomObject({ ...target, body: { apiVersion: "test.kubeonkube.io/v1", kind: "Widget", metadata: { name: `paged-${i}` }, spec: { size: i } } });
    const widgets = await listInPages<KubernetesObject>((page) => custom.listNamespacedCustomObject({ ...target, ...page }) as never, 2);
    expect(widgets.items.filter((w) => w.metadata?.name?.startsWith("paged-"))).toHaveLength(5);
    expect(widgets.metadata?.resourceVersion).toMatch(/^\d+$/);
  });
});

describe("manager: two replicas, one acts", () => {
  it("only the leader reconciles; the standby takes over, cleans up first, and looks at every object", async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: cm("managed-1") });
    const reconciledBy: Array<[string, string]> = [];
    const order: string[] = [];
    const replica = (identity: string) => {
      const { informer } = configMapInformer();
      const manager = new Manager({
        election: {
          api: kc.makeApiClient(CoordinationV1Api),
          namespace: NS,
          name: "manager-test",
          identity,
          leaseDurationMs: 3000,
          renewDeadlineMs: 2000,
          retryPeriodMs: 250,
        },
        beforeReconciling: async () => void order.push(`${identity} cleanup`),
      });
      manager.register({
        kind: "ConfigMap",
        informer,
        concurrency: 2,
        reconcile: async (key) => {
          order.push(`${identity} reconcile`);
          reconciledBy.push([identity, key]);
        },
      });
      return manager;
    };
    const a = replica("manager-a");
    const b = replica("manager-b");
    await a.start();
    await eventually("manager-a to lead", () => a.isLeading());
    await b.start();
    await eventually("manager-b to be ready as a standby", () => b.readiness()() === undefined);
    await eventually("manager-a to reconcile the existing object", () => reconciledBy.some(([r, k]) => r === "manager-a" && k === `${NS}/managed-1`));

    await core.createNamespacedConfigMap({ namespace: NS, body: cm("managed-2") });
    await eventually("manager-a to reconcile the new object", () => reconciledBy.some(([r, k]) => r === "manager-a" && k === `${NS}/managed-2`));
    expect(reconciledBy.filter(([r]) => r === "manager-b")).toEqual([]);
    expect(b.isLeading()).toBe(false);

    await a.stop();
    const aCount = reconciledBy.filter(([r]) => r === "manager-a").length;
    await eventually("manager-b to take over and reconcile both objects", () =>
      [`${NS}/managed-1`, `${NS}/managed-2`].every((key) => reconciledBy.some(([r, k]) => r === "manager-b" && k === key)),
    );
    expect(reconciledBy.filter(([r]) => r === "manager-a").length).toBe(aCount);
    // Cleanup ran before the new leader's first reconcile.
    expect(order.filter((o) => o.startsWith("manager-b"))[0]).toBe("manager-b cleanup");
    await b.stop();
  });
});
