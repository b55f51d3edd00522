/**
 * ClusterAddons applied by the real engine and pulumi-kubernetes to a real kube-apiserver (no
 * nodes, no controllers: what a business cluster is before its first Machine). The apiserver
 * accepts every object as rendered; the update does not wait for Pods that cannot run; a second
 * preview is quiet; disabling an add-on deletes its objects; a destroy removes the rest. Then the
 * operator's destroy of a Cluster whose business apiserver is gone: the add-ons are abandoned,
 * the meta-cluster's objects really deleted, and never dropped while the meta-cluster is down.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { AppsV1Api, CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveClusterSpec, type ResolvedAddons } from "../../src/api/v1alpha1";
import { ClusterAddons } from "../../src/components/addons/cluster-addons";
import { abandonDecision, AbandonedResources, DELETE_UNREACHABLE_INPUT } from "../../src/controllers/cluster/unreachable-addons";
import { BUSINESS_CLUSTER_PROVIDER, businessClusterProviderArgs, META_CLUSTER_PROVIDER, metaClusterProviderArgs } from "../../src/program/cluster-program";
import { StackRunner } from "../../src/runtime/stack-runner";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { assertPlugins, engineEnv, newTestStack, type TestStack } from "../support/engine";
import { minimalSpec } from "../support/specs";

// The test apiserver's --service-cluster-ip-range.
const NETWORK = { serviceCIDR: "10.0.0.0/24", podCIDR: "10.244.0.0/16", clusterDomain: "cluster.local" };
const ENDPOINT = "https://192.0.2.10:30443";

/**
 * pulumi-kubernetes deletes with foreground propagation and waits until the garbage collector has
 * removed the object's dependents and then the object; this apiserver runs no controller-manager,
 * hence no garbage collector, and a business cluster always does. Background propagation here only.
 */
function backgroundDeletion(args: pulumi.ResourceTransformationArgs): pulumi.ResourceTransformationResult | undefined {
  if (!args.type.startsWith("kubernetes:")) return undefined;
  const props = args.props as { metadata?: pulumi.Input<{ annotations?: Record<string, string> }> };
  const metadata = pulumi.output(props.metadata ?? {}).apply((m) => ({ ...m, annotations: { ...m.annotations, "pulumi.com/deletionPropagationPolicy": "background" } }));
  return { props: { ...props, metadata }, opts: args.opts };
}

/**
 * A TCP relay to the apiserver on a port of its own: one apiserver serves as both clusters, each
 * reached through its own relay, and closing a relay makes that cluster unreachable (connection
 * refused, as a stopped apiserver) while the other one stays up.
 */
async function relay(target: string): Promise<{ url: string; close(): Promise<void>; open(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let listenPort = 0;
  const open = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((client) => {
        const upstream = connect(Number(port), hostname);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
          s.on("error", () => (s === client ? upstream : client).destroy());
        }
        client.pipe(upstream).pipe(client);
      });
      server.on("error", reject);
      server.listen(listenPort, "127.0.0.1", () => {
        const address = server!.address();
        listenPort = typeof address === "object" && address ? address.port : 0;
        resolve();
      });
    });
  await open();
  return {
    url: `https://127.0.0.1:${listenPort}`,
    open,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server?.close(() => resolve());
      }),
  };
}

describe("the add-ons on a real apiserver", () => {
  let apiserver: TestApiserver;
  let test: TestStack;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  let rbac: RbacAuthorizationV1Api;
  let addons: ResolvedAddons = resolveClusterSpec(minimalSpec({ network: NETWORK, addons: { kubeProxy: { mode: "nftables" } } })).addons;
  let firstUpSeconds = 0;
  const gone = (read: () => Promise<unknown>) =>
    read().then(
      () => false,
      (err: { code?: number }) => err.code === 404,
    );

  beforeAll(async () => {
    assertPlugins([{ name: "kubernetes", version: "4.25.0" }]);
    apiserver = await startTestApiserver();
    const kc = apiserver.kubeConfig();
    [apps, core, rbac] = [kc.makeApiClient(AppsV1Api), kc.makeApiClient(CoreV1Api), kc.makeApiClient(RbacAuthorizationV1Api)];
    const kubeconfig = kc.exportConfig();
    test = await newTestStack("kok-addons-apply", async () => {
      const provider = new k8s.Provider("business-cluster", { kubeconfig, clusterIdentifier: "business-cluster", skipUpdateUnreachable: true });
      new ClusterAddons("dev-addons", { apiServerEndpoint: ENDPOINT, addons, network: NETWORK }, { providers: [provider], transformations: [backgroundDeletion] });
    });
    const started = Date.now();
    await test.stack.up();
    firstUpSeconds = (Date.now() - started) / 1000;
  }, 240_000);

  afterAll(async () => {
    test?.dispose();
    await apiserver?.stop();
  });

  it("creates every object in kube-system without waiting for Pods (there is no node)", async () => {
    // No Pod can run here: an update that waited for the workloads would have failed at
    // pulumi-kubernetes' await timeout, so the `up` having succeeded is the proof. Its time is
    // printed, not asserted (speed belongs in the benchmarks).
    console.log(`first up of the add-ons: ${firstUpSeconds.toFixed(1)} s`);
    const flannel = await apps.readNamespacedDaemonSet({ namespace: "kube-system", name: "flannel" });
    expect(flannel.spec?.template.spec?.containers.map((c) => c.name)).toEqual(["kube-flannel", "install-cni"]);
    expect(flannel.metadata?.annotations?.["pulumi.com/skipAwait"]).toBe("true");
    const proxy = await apps.readNamespacedDaemonSet({ namespace: "kube-system", name: "kube-proxy" });
    expect(proxy.spec?.template.spec?.containers[0].image).toBe("registry.k8s.io/kube-proxy:v1.36.3");
    const proxyConfig = await core.readNamespacedConfigMap({ namespace: "kube-system", name: "kube-proxy" });
    expect(parse(proxyConfig.data!["config.conf"]).mode).toBe("nftables");
    expect(parse(proxyConfig.data!["kubeconfig.conf"]).clusters[0].cluster.server).toBe(ENDPOINT);
    const coredns = await apps.readNamespacedDeployment({ namespace: "kube-system", name: "coredns" });
    expect(coredns.spec?.replicas).toBe(2);
    const dns = await core.readNamespacedService({ namespace: "kube-system", name: "kube-dns" });
    expect(dns.spec?.clusterIP).toBe("10.0.0.10");
    const binding = await rbac.readClusterRoleBinding({ name: "kube-on-kube:node-proxier" });
    expect(binding.roleRef.name).toBe("system:node-proxier");
  });

  it("previews no change right after the update", async () => {
    const preview = await test.stack.preview();
    const changed = Object.entries(preview.changeSummary).filter(([op, n]) => op !== "same" && n > 0);
    expect(changed, preview.stdout).toEqual([]);
  }, 120_000);

  it("lets an up with refresh run while the business apiserver is down (the masters being what drifted)", async () => {
    await apiserver.stopApiserver();
    try {
      const result = await test.stack.up({ refresh: true });
      const changed = Object.entries(result.summary.resourceChanges ?? {}).filter(([op, n]) => op !== "same" && n > 0);
      expect(changed, result.stdout).toEqual([]);
      expect(result.stdout + result.stderr).toMatch(/unreachable/);
    } finally {
      await apiserver.startApiserver();
    }
  }, 240_000);

  it("deletes an add-on switched off, and the rest on destroy", async () => {
    addons = { ...addons, coreDNS: { ...addons.coreDNS, enabled: false } };
    const result = await test.stack.up();
    expect(result.summary.resourceChanges?.delete).toBe(8);
    expect(await gone(() => apps.readNamespacedDeployment({ namespace: "kube-system", name: "coredns" }))).toBe(true);
    expect(await gone(() => core.readNamespacedService({ namespace: "kube-system", name: "kube-dns" }))).toBe(true);
    expect(await gone(() => apps.readNamespacedDaemonSet({ namespace: "kube-system", name: "flannel" }))).toBe(false);
    await test.stack.destroy();
    expect(await gone(() => apps.readNamespacedDaemonSet({ namespace: "kube-system", name: "flannel" }))).toBe(true);
    expect(await gone(() => rbac.readClusterRoleBinding({ name: "kube-on-kube:node-proxier" }))).toBe(true);
  }, 240_000);

  // After the destroy above: the add-ons' names in kube-system are free again.
  it("destroys a Cluster's stack with its business apiserver down: add-ons abandoned, meta-cluster objects deleted, never dropped", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "kok-addons-destroy-"));
    const [metaRelay, businessRelay] = [await relay(apiserver.url), await relay(apiserver.url)];
    try {
      const kubeconfigVia = (url: string) => apiserver.kubeConfig().exportConfig().replace(apiserver.url, url);
      const [metaKubeconfig, businessKubeconfig] = [kubeconfigVia(metaRelay.url), kubeconfigVia(businessRelay.url)];
      const runner = new StackRunner({ projectName: "kok-addons-destroy", backendUrl: `file://${root}`, workRoot: path.join(root, "work"), env: engineEnv() });
      const STACK = "fleet.dev";
      // The cluster program's two providers, with the masters' objects stood in for by two
      // meta-cluster objects (a namespace would wait for a namespace controller this apiserver lacks).
      const program = async () => {
        const opts = { transformations: [backgroundDeletion] };
        const metaCluster = new k8s.Provider(META_CLUSTER_PROVIDER, metaClusterProviderArgs(metaKubeconfig));
        const masters = [
          new k8s.core.v1.ConfigMap("dev-masters", { metadata: { name: "dev-masters", namespace: "default" }, data: { role: "masters" } }, { ...opts, provider: metaCluster }),
          new k8s.core.v1.Secret("dev-admin-kubeconfig", { metadata: { name: "dev-admin-kubeconfig", namespace: "default" }, stringData: { kubeconfig: "x" } }, { ...opts, provider: metaCluster }),
        ];
        const businessCluster = new k8s.Provider(BUSINESS_CLUSTER_PROVIDER, businessClusterProviderArgs(businessKubeconfig), { dependsOn: masters });
        new ClusterAddons("dev-addons", { apiServerEndpoint: ENDPOINT, addons, network: NETWORK }, { ...opts, providers: [businessCluster], dependsOn: masters });
      };
      await runner.up(STACK, program);
      const state = () => runner.resources(STACK, { inputs: [DELETE_UNREACHABLE_INPUT] });
      const addonsInState = async () => (await state())!.filter((r) => r.type.startsWith("kubernetes:") && r.name.startsWith("dev-addons-")).length;
      const addonCount = await addonsInState();
      expect(addonCount).toBeGreaterThan(5);
      const metaObjectsLive = async () => [
        !(await gone(() => core.readNamespacedConfigMap({ namespace: "default", name: "dev-masters" }))),
        !(await gone(() => core.readNamespacedSecret({ namespace: "default", name: "dev-admin-kubeconfig" }))),
      ];

      await businessRelay.close();
      // A refresh (the operator's crash recovery; the drift check's is a preview with refresh)
      // with the business apiserver down keeps the add-ons: no switch outside a destroy.
      await runner.refresh(STACK, program);
      expect(await addonsInState()).toBe(addonCount);

      // Without the switch: the destroy fails on the add-ons, before any meta-cluster object.
      await expect(runner.destroyAndRemove(STACK, program)).rejects.toThrow(/unreachable/);
      expect(await metaObjectsLive()).toEqual([true, true]);
      expect(await addonsInState()).toBe(addonCount);

      const decision = abandonDecision(await state());
      expect(decision.allow, JSON.stringify(decision)).toBe(true);
      const env = decision.allow ? decision.env : {};
      const abandoned = new AbandonedResources();

      // With the switch and the meta-cluster down as well: its provider's pinned input wins over
      // the variable, so its deletes fail and its objects stay in the state.
      await metaRelay.close();
      await expect(runner.destroyAndRemove(STACK, program, undefined, { env, onDiagnostic: abandoned.onDiagnostic })).rejects.toThrow(/unreachable/);
      expect((await state())!.filter((r) => r.name === "dev-masters" || r.name === "dev-admin-kubeconfig").map((r) => r.type).sort()).toEqual([
        "kubernetes:core/v1:ConfigMap",
        "kubernetes:core/v1:Secret",
      ]);

      // The meta-cluster back, the business cluster still gone: the destroy succeeds.
      await metaRelay.open();
      await runner.destroyAndRemove(STACK, program, undefined, { env, onDiagnostic: abandoned.onDiagnostic });
      expect(await metaObjectsLive()).toEqual([false, false]);
      expect(abandoned.list).toHaveLength(addonCount);
      expect(abandoned.list.filter((r) => r.startsWith("DaemonSet dev-addons-"))).toHaveLength(2);
      // Abandoned, not deleted: the objects are still in the (here still running) business cluster.
      expect(await gone(() => apps.readNamespacedDaemonSet({ namespace: "kube-system", name: "flannel" }))).toBe(false);
      expect(await runner.listStacks(program)).toEqual([]);
    } finally {
      await metaRelay.close();
      await businessRelay.close();
      rmSync(root, { recursive: true, force: true });
    }
  }, 480_000);
});
