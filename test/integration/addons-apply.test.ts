/**
 * ClusterAddons applied by the real engine and pulumi-kubernetes to a real kube-apiserver (no
 * nodes, no controllers: what a business cluster is before its first Machine). The apiserver
 * accepts every object as rendered; the update does not wait for Pods that cannot run; a second
 * preview is quiet; disabling an add-on deletes its objects; a destroy removes the rest.
 */
import { AppsV1Api, CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveClusterSpec, type ResolvedAddons } from "../../src/api/v1alpha1";
import { ClusterAddons } from "../../src/components/addons/cluster-addons";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { assertPlugins, newTestStack, type TestStack } from "../support/engine";
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
    console.log(`first up of the add-ons: ${firstUpSeconds.toFixed(1)} s`);
    expect(firstUpSeconds).toBeLessThan(120);
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
});
