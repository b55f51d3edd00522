/**
 * The add-on half of the live fingerprint against a real kube-apiserver + etcd: the apiserver plays
 * both the meta-cluster (the masters' namespace with the admin kubeconfig Secret the stack wrote)
 * and the business cluster (kube-system and cluster-scoped RBAC with the add-ons). The read takes
 * exactly the labelled add-on objects, never a Secret of the business cluster; the fingerprint moves
 * on each change the drift check must not miss (a ConfigMap edited, a DaemonSet deleted or
 * re-created, RBAC edited or unlabelled) and stays put otherwise; and a business apiserver that
 * does not answer fails the read within its bound, without holding up another Cluster's read.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { AppsV1Api, CoreV1Api, PolicyV1Api, RbacAuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LiveClusterObjects, type ClusterObjectsLocation } from "../../src/controllers/cluster/live-fingerprint";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { tokenKubeconfig, withFields } from "../support/kubeconfigs";

const NS = "kube-system";
const PART_OF = { "app.kubernetes.io/part-of": "kube-on-kube" };
const BOUND_MS = 3000;
const SECRET_SENTINEL = "business-secret-value-never-read";

const locationOf = (cluster: string): ClusterObjectsLocation => ({
  cluster,
  mastersNamespace: `fleet-${cluster}`,
  addons: { adminKubeconfig: { namespace: `fleet-${cluster}`, name: `${cluster}-admin-kubeconfig`, key: "kubeconfig" } },
});
const OPS = locationOf("ops");

let apiserver: TestApiserver;
let kc: KubeConfig;
let core: CoreV1Api;
let apps: AppsV1Api;
let rbac: RbacAuthorizationV1Api;
let live: LiveClusterObjects;
let token: string;
let caPem: string;
/** Accepts connections and never answers: a business apiserver behind a black hole. */
let silent: Server;
const sockets = new Set<Socket>();

const daemonSet = (name: string) => ({
  metadata: { name, namespace: NS, labels: { ...PART_OF, "k8s-app": name } },
  spec: {
    selector: { matchLabels: { "k8s-app": name } },
    template: { metadata: { labels: { "k8s-app": name } }, spec: { containers: [{ name, image: "registry.invalid/none:1" }] } },
  },
});

/** The admin kubeconfig Secret of `at` (as the stack writes it into the masters' namespace), pointing at `server`. */
async function writeAdminKubeconfig(at: ClusterObjectsLocation, server: string): Promise<void> {
  const ref = at.addons!.adminKubeconfig;
  await core.createNamespace({ body: { metadata: { name: ref.namespace } } });
  await core.createNamespacedSecret({
    namespace: ref.namespace,
    body: { metadata: { name: ref.name, namespace: ref.namespace, labels: { "kubeonkube.io/cluster": at.cluster } }, stringData: { [ref.key]: tokenKubeconfig(server, caPem, token) } },
  });
}

beforeAll(async () => {
  apiserver = await startTestApiserver();
  kc = apiserver.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  token = kc.getCurrentUser()!.token!;
  caPem = readFileSync(kc.getCurrentCluster()!.caFile!, "utf8");
  live = new LiveClusterObjects(kc, { businessTimeoutMs: BOUND_MS });
  silent = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));

  await writeAdminKubeconfig(OPS, apiserver.url);
  // The add-ons as the stack deploys them (addons/*.ts), kube-system and cluster-scoped.
  await apps.createNamespacedDaemonSet({ namespace: NS, body: daemonSet("kube-proxy") });
  await apps.createNamespacedDaemonSet({ namespace: NS, body: daemonSet("flannel") });
  const coredns = { name: "coredns", namespace: NS, labels: { ...PART_OF, "k8s-app": "kube-dns" } };
  await apps.createNamespacedDeployment({ namespace: NS, body: { metadata: coredns, spec: { ...daemonSet("coredns").spec, replicas: 2 } } });
  await core.createNamespacedService({ namespace: NS, body: { metadata: { ...coredns, name: "kube-dns" }, spec: { ports: [{ name: "dns", port: 53, protocol: "UDP" }], selector: { "k8s-app": "kube-dns" } } } });
  await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: coredns, data: { Corefile: ".:53 { forward . /etc/resolv.conf }" } } });
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: coredns } });
  await kc.makeApiClient(PolicyV1Api).createNamespacedPodDisruptionBudget({ namespace: NS, body: { metadata: coredns, spec: { maxUnavailable: 1, selector: { matchLabels: { "k8s-app": "kube-dns" } } } } });
  await rbac.createClusterRole({ body: { metadata: { name: "system:coredns", labels: PART_OF }, rules: [{ apiGroups: [""], resources: ["services"], verbs: ["list", "watch"] }] } });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: "system:coredns", labels: PART_OF },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:coredns" },
      subjects: [{ kind: "ServiceAccount", name: "coredns", namespace: NS }],
    },
  });
  // Not add-ons: a labelled Secret in kube-system (no add-on has one: it is never read), a labelled
  // ConfigMap elsewhere, an unlabelled ConfigMap in kube-system.
  await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: "not-an-addon", namespace: NS, labels: PART_OF }, stringData: { value: SECRET_SENTINEL } } });
  await core.createNamespacedConfigMap({ namespace: "default", body: { metadata: { name: "elsewhere", namespace: "default", labels: PART_OF }, data: { a: "b" } } });
  await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: "unlabelled", namespace: NS }, data: { a: "b" } } });
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  silent?.close();
  await apiserver?.stop();
});

describe("LiveClusterObjects with add-ons in the business cluster", () => {
  it("reads exactly the labelled add-on objects, metadata only, and no Secret of the business cluster", async () => {
    const objects = await live.read(OPS);
    const business = objects.filter((o) => o.cluster === "business");
    expect(business.map((o) => `${o.kind} ${o.namespace ?? ""}/${o.name}`).sort()).toEqual(
      [
        "DaemonSet kube-system/kube-proxy",
        "DaemonSet kube-system/flannel",
        "Deployment kube-system/coredns",
        "Service kube-system/kube-dns",
        "ConfigMap kube-system/coredns",
        "ServiceAccount kube-system/coredns",
        "PodDisruptionBudget kube-system/coredns",
        "ClusterRole /system:coredns",
        "ClusterRoleBinding /system:coredns",
      ].sort(),
    );
    for (const o of business) expect(o.uid && o.resourceVersion, `${o.kind} ${o.name}`).toBeTruthy();
    // The meta-cluster part is still there (the masters' namespace and the admin kubeconfig Secret).
    expect(objects.filter((o) => !o.cluster).map((o) => `${o.kind} ${o.name}`).sort()).toEqual(["Namespace fleet-ops", "Secret ops-admin-kubeconfig"]);
    const text = JSON.stringify(objects);
    expect(text).not.toContain(SECRET_SENTINEL);
    expect(text).not.toContain(token);
  });

  it("keeps its fingerprint while nothing of the add-ons is written, and moves it on each change the drift check needs", async () => {
    const steady = await live.fingerprint(OPS);
    expect(await live.fingerprint(OPS)).toBe(steady);
    await core.patchNamespacedConfigMap({ namespace: "default", name: "elsewhere", body: [{ op: "replace", path: "/data/a", value: "c" }] });
    await core.patchNamespacedConfigMap({ namespace: NS, name: "unlabelled", body: [{ op: "replace", path: "/data/a", value: "c" }] });
    await core.patchNamespacedSecret({ namespace: NS, name: "not-an-addon", body: [{ op: "replace", path: "/data/value", value: Buffer.from("other").toString("base64") }] });
    expect(await live.fingerprint(OPS), "writes outside the add-ons").toBe(steady);

    const seen = new Set([steady]);
    const expectMoved = async (what: string) => {
      const next = await live.fingerprint(OPS);
      expect(seen.has(next), what).toBe(false);
      seen.add(next);
    };
    await core.patchNamespacedConfigMap({ namespace: NS, name: "coredns", body: [{ op: "replace", path: "/data/Corefile", value: ".:53 { whoami }" }] });
    await expectMoved("CoreDNS ConfigMap edited");
    await apps.deleteNamespacedDaemonSet({ namespace: NS, name: "kube-proxy" });
    await expectMoved("kube-proxy DaemonSet deleted");
    await apps.createNamespacedDaemonSet({ namespace: NS, body: daemonSet("kube-proxy") });
    await expectMoved("kube-proxy DaemonSet re-created (new uid)");
    await apps.patchNamespacedDeployment({ namespace: NS, name: "coredns", body: [{ op: "replace", path: "/spec/replicas", value: 5 }] });
    await expectMoved("CoreDNS scaled");
    await rbac.patchClusterRole({ name: "system:coredns", body: [{ op: "add", path: "/rules/0/verbs/-", value: "get" }] });
    await expectMoved("ClusterRole rules edited");
    await rbac.patchClusterRoleBinding({ name: "system:coredns", body: [{ op: "remove", path: "/metadata/labels/app.kubernetes.io~1part-of" }] });
    await expectMoved("ClusterRoleBinding unlabelled (it leaves the selection)");
    await core.deleteNamespacedServiceAccount({ namespace: NS, name: "coredns" });
    await expectMoved("ServiceAccount deleted");
  });

  it("fails the read within its bound when the business apiserver does not answer, and holds up no other Cluster's read", async () => {
    const port = (silent.address() as { port: number }).port;
    const dark = locationOf("dark");
    await writeAdminKubeconfig(dark, `https://127.0.0.1:${port}`);
    const started = Date.now();
    const [darkRead, opsRead] = await Promise.allSettled([live.fingerprint(dark), live.fingerprint(OPS).then((fp) => ({ fp, ms: Date.now() - started }))]);
    const darkMs = Date.now() - started;
    expect(darkRead.status).toBe("rejected");
    expect(darkMs).toBeGreaterThanOrEqual(BOUND_MS - 100);
    expect(darkMs).toBeLessThan(BOUND_MS + 5000);
    expect(opsRead.status).toBe("fulfilled");
    expect((opsRead as PromiseFulfilledResult<{ ms: number }>).value.ms, "the other Cluster's read").toBeLessThan(BOUND_MS);
  });

  it("fails the read when nothing listens at the business endpoint, or when the admin kubeconfig is missing or refused", async () => {
    const refused = locationOf("refused");
    // A port just freed: nothing listens there.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    await writeAdminKubeconfig(refused, `https://127.0.0.1:${port}`);
    await expect(live.fingerprint(refused)).rejects.toThrow();

    const missing = locationOf("missing");
    await core.createNamespace({ body: { metadata: { name: missing.mastersNamespace } } });
    await expect(live.fingerprint(missing)).rejects.toThrow();

    const hostile = locationOf("hostile");
    const ref = hostile.addons!.adminKubeconfig;
    await core.createNamespace({ body: { metadata: { name: ref.namespace } } });
    const text = withFields(tokenKubeconfig(apiserver.url, caPem, token), "user", { tokenFile: "/etc/passwd" });
    await core.createNamespacedSecret({ namespace: ref.namespace, body: { metadata: { name: ref.name, namespace: ref.namespace }, stringData: { [ref.key]: text } } });
    await expect(live.fingerprint(hostile)).rejects.toThrow(/tokenFile is not allowed/);
  });
});
