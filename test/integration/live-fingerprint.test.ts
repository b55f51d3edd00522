/**
 * LiveClusterObjects against a real kube-apiserver + etcd: it reads exactly the objects of one
 * Cluster's stack (labelled, in the masters' namespace, plus the Namespace and the admin kubeconfig
 * copy), its fingerprint stays put while nothing is written, and moves on every kind of change the
 * drift check must not miss: a label removed, a spec edited, an object deleted or re-created.
 */
import { AppsV1Api, BatchV1Api, CoreV1Api, PolicyV1Api, type KubeConfig, type V1CronJob } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LiveClusterObjects, type ClusterObjectsLocation } from "../../src/controllers/cluster/live-fingerprint";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";

const AT: ClusterObjectsLocation = { cluster: "dev", mastersNamespace: "fleet-dev", adminKubeconfigCopy: { namespace: "fleet", name: "dev-admin-kubeconfig" } };
const labels = { "kubeonkube.io/cluster": "dev", "kubeonkube.io/component": "kube-apiserver" };

let apiserver: TestApiserver;
let kc: KubeConfig;
let core: CoreV1Api;
let apps: AppsV1Api;
let live: LiveClusterObjects;

const deployment = (name: string, l: Record<string, string>, replicas = 1) => ({
  metadata: { name, namespace: AT.mastersNamespace, labels: l },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "c", image: "registry.invalid/none:1" }] } },
  },
});

beforeAll(async () => {
  apiserver = await startTestApiserver();
  kc = apiserver.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  live = new LiveClusterObjects(kc);
  for (const name of ["fleet", "fleet-dev"]) await core.createNamespace({ body: { metadata: { name } } });
  const ns = AT.mastersNamespace;
  await apps.createNamespacedDeployment({ namespace: ns, body: deployment("dev-apiserver", labels) });
  await apps.createNamespacedStatefulSet({
    namespace: ns,
    body: { metadata: { name: "dev-etcd", namespace: ns, labels }, spec: { serviceName: "dev-etcd", selector: { matchLabels: { app: "x" } }, template: deployment("x", {}).spec.template } },
  });
  await core.createNamespacedService({ namespace: ns, body: { metadata: { name: "dev-apiserver", namespace: ns, labels }, spec: { ports: [{ port: 6443 }], selector: labels } } });
  await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: "dev-apiserver-certs", namespace: ns, labels }, stringData: { "tls.key": "not-a-real-key" } } });
  await kc.makeApiClient(PolicyV1Api).createNamespacedPodDisruptionBudget({
    namespace: ns,
    body: { metadata: { name: "dev-apiserver-pdb", namespace: ns, labels }, spec: { maxUnavailable: 1, selector: { matchLabels: labels } } },
  });
  await core.createNamespacedSecret({ namespace: "fleet", body: { metadata: { name: "dev-admin-kubeconfig", namespace: "fleet" }, stringData: { kubeconfig: "apiVersion: v1" } } });
  // Not part of the stack: no label, another Cluster's label.
  await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: "someone-elses", namespace: ns }, stringData: { a: "b" } } });
  await apps.createNamespacedDeployment({ namespace: ns, body: deployment("other-apiserver", { "kubeonkube.io/cluster": "other" }) });
});

afterAll(async () => {
  await apiserver?.stop();
});

describe("LiveClusterObjects", () => {
  it("reads exactly the stack's objects, metadata only", async () => {
    const objects = await live.read(AT);
    expect(objects.map((o) => `${o.kind} ${o.namespace ?? ""}/${o.name}`).sort()).toEqual([
      "Namespace /fleet-dev",
      "PodDisruptionBudget fleet-dev/dev-apiserver-pdb",
      "Secret fleet-dev/dev-apiserver-certs",
      "Secret fleet/dev-admin-kubeconfig",
      "Service fleet-dev/dev-apiserver",
      "StatefulSet fleet-dev/dev-etcd",
      "Deployment fleet-dev/dev-apiserver",
    ].sort());
    for (const o of objects) expect(o.uid && o.resourceVersion, `${o.kind} ${o.name}`).toBeTruthy();
    expect(JSON.stringify(objects)).not.toContain("not-a-real-key");
  });

  it("keeps its fingerprint while nothing is written, and moves it on each change the drift check needs", async () => {
    const steady = await live.fingerprint(AT);
    expect(await live.fingerprint(AT)).toBe(steady);
    // A write to something outside the stack changes nothing.
    await core.patchNamespacedSecret({ namespace: AT.mastersNamespace, name: "someone-elses", body: [{ op: "add", path: "/metadata/labels", value: { x: "y" } }] });
    expect(await live.fingerprint(AT)).toBe(steady);

    const seen = new Set([steady]);
    const expectMoved = async (what: string) => {
      const next = await live.fingerprint(AT);
      expect(seen.has(next), what).toBe(false);
      seen.add(next);
    };
    await apps.patchNamespacedDeployment({ namespace: AT.mastersNamespace, name: "dev-apiserver", body: [{ op: "replace", path: "/spec/replicas", value: 3 }] });
    await expectMoved("replicas edited");
    await core.patchNamespacedService({ namespace: AT.mastersNamespace, name: "dev-apiserver", body: [{ op: "add", path: "/metadata/annotations", value: { touched: "yes" } }] });
    await expectMoved("annotation added");
    await core.patchNamespacedSecret({ namespace: AT.mastersNamespace, name: "dev-apiserver-certs", body: [{ op: "remove", path: "/metadata/labels/kubeonkube.io~1cluster" }] });
    await expectMoved("label removed (the object leaves the selection)");
    await core.deleteNamespacedSecret({ namespace: "fleet", name: "dev-admin-kubeconfig" });
    await expectMoved("admin kubeconfig copy deleted");
    await core.createNamespacedSecret({ namespace: "fleet", body: { metadata: { name: "dev-admin-kubeconfig", namespace: "fleet" }, stringData: { kubeconfig: "apiVersion: v1" } } });
    await expectMoved("copy re-created (new uid)");
  });

  it("reports a missing masters' namespace as no objects, not as an error", async () => {
    expect(await live.read({ cluster: "gone", mastersNamespace: "fleet-gone" })).toEqual([]);
  });

  it("reads the etcd backup CronJob only for a Cluster with backups, by generation: a scheduled run moves nothing, an edit or a re-creation does", async () => {
    const batch = kc.makeApiClient(BatchV1Api);
    const namespace = AT.mastersNamespace;
    const name = "dev-etcd-backup";
    const job = { spec: { template: { spec: { restartPolicy: "Never", containers: [{ name: "c", image: "registry.invalid/none:1" }] } } } };
    const body: V1CronJob = { metadata: { name, namespace, labels: { ...labels, "app.kubernetes.io/component": "etcd-backup" } }, spec: { schedule: "0 */6 * * *", timeZone: "Etc/UTC", jobTemplate: job } };
    await batch.createNamespacedCronJob({ namespace, body });
    await core.createNamespacedSecret({ namespace: "fleet", body: { metadata: { name: "store", namespace: "fleet" }, stringData: { accessKeyId: "TEST-ONLY-a", secretAccessKey: "TEST-ONLY-b" } } });
    const withBackups: ClusterObjectsLocation = { ...AT, etcdBackup: { credentials: { namespace: "fleet", name: "store" } } };
    expect((await live.read(AT)).filter((o) => o.kind === "CronJob")).toEqual([]);
    expect((await live.read(withBackups)).filter((o) => o.kind === "CronJob").map((o) => o.name)).toEqual([name]);
    expect((await live.read(withBackups)).filter((o) => o.namespace === "fleet" && o.name === "store")).toHaveLength(1);
    expect(JSON.stringify(await live.read(withBackups))).not.toContain("TEST-ONLY");

    const steady = await live.fingerprint(withBackups);
    // What the CronJob controller writes at each run: status only, a new resourceVersion.
    const before = await batch.readNamespacedCronJob({ namespace, name });
    await batch.replaceNamespacedCronJobStatus({ namespace, name, body: { ...before, status: { lastScheduleTime: new Date("2026-12-05T06:00:00Z") } } });
    const after = await batch.readNamespacedCronJob({ namespace, name });
    expect(after.metadata?.resourceVersion).not.toBe(before.metadata?.resourceVersion);
    expect(await live.fingerprint(withBackups)).toBe(steady);

    await batch.replaceNamespacedCronJob({ namespace, name, body: { ...after, spec: { ...after.spec!, schedule: "0 0 * * *" } } });
    const edited = await live.fingerprint(withBackups);
    expect(edited, "schedule edited").not.toBe(steady);
    await batch.deleteNamespacedCronJob({ namespace, name });
    const deleted = await live.fingerprint(withBackups);
    expect(deleted, "CronJob deleted").not.toBe(edited);
    await batch.createNamespacedCronJob({ namespace, body });
    const recreated = await live.fingerprint(withBackups);
    expect([steady, edited, deleted], "re-created (new uid)").not.toContain(recreated);
    // The tenant's new credentials: the next check previews, and the update copies them.
    await core.replaceNamespacedSecret({ namespace: "fleet", name: "store", body: { metadata: { name: "store", namespace: "fleet" }, stringData: { accessKeyId: "TEST-ONLY-c", secretAccessKey: "TEST-ONLY-d" } } });
    expect([steady, edited, deleted, recreated], "store credentials changed").not.toContain(await live.fingerprint(withBackups));
    await batch.deleteNamespacedCronJob({ namespace, name });
    await core.deleteNamespacedSecret({ namespace: "fleet", name: "store" });
  });
});
