/**
 * The Cluster program's Kubernetes providers update a ConfigMap's data in place (real engine,
 * real pulumi-kubernetes, real kube-apiserver). Without `enableConfigMapMutable` a change of data
 * is a replacement, and with a fixed name a replacement is delete-then-create: the etcd membership
 * ConfigMap (read at each member's start) or the audit policy (mounted by the apiservers) was then
 * missing for a moment on each change. A stack written before the option existed takes it as an
 * update of its provider, not a replacement of everything the provider holds.
 */
import { CoreV1Api } from "@kubernetes/client-node";
import * as k8s from "@pulumi/kubernetes";
import type { OpType } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { businessClusterProviderArgs, META_CLUSTER_PROVIDER, metaClusterProviderArgs } from "../../src/program/cluster-program";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { assertPlugins, newTestStack, type TestStack } from "../support/engine";

const NAME = "kok-membership";

let apiserver: TestApiserver;
let core: CoreV1Api;
let kubeconfig: string;
const stacks: TestStack[] = [];

/** A stack whose program holds one provider (its arguments as given) and one ConfigMap of `data`. */
async function configMapStack(project: string, namespace: string, current: { providerArgs: k8s.ProviderArgs; data: Record<string, string> }): Promise<TestStack> {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const test = await newTestStack(project, async () => {
    const provider = new k8s.Provider(META_CLUSTER_PROVIDER, current.providerArgs);
    // Background deletion: this apiserver runs no garbage collector to finish a foreground one.
    const annotations = { "pulumi.com/deletionPropagationPolicy": "background" };
    new k8s.core.v1.ConfigMap("membership", { metadata: { name: NAME, namespace, annotations }, data: current.data }, { provider });
  });
  stacks.push(test);
  return test;
}

/** The operations of an `up`, each with its count, as the engine reports them. */
async function upOps(test: TestStack): Promise<Partial<Record<OpType, number>>> {
  const result = await test.stack.up();
  return result.summary.resourceChanges ?? {};
}

/** The meta-cluster provider's arguments as versions before `enableConfigMapMutable` wrote them. */
function olderProviderArgs(): k8s.ProviderArgs {
  const args: k8s.ProviderArgs = { ...metaClusterProviderArgs(kubeconfig) };
  delete (args as { enableConfigMapMutable?: unknown }).enableConfigMapMutable;
  return args;
}

const uidOf = async (namespace: string) => (await core.readNamespacedConfigMap({ name: NAME, namespace })).metadata?.uid;

beforeAll(async () => {
  assertPlugins([{ name: "kubernetes", version: "4.25.0" }]);
  apiserver = await startTestApiserver();
  const kc = apiserver.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  kubeconfig = kc.exportConfig();
}, 240_000);

afterAll(async () => {
  for (const test of stacks) test.dispose();
  await apiserver?.stop();
});

describe("ConfigMaps of the Cluster program's providers", () => {
  it("are updated in place: same object, new data, no replacement", async () => {
    const current = { providerArgs: metaClusterProviderArgs(kubeconfig), data: { ETCD_INITIAL_CLUSTER_STATE: "new" } };
    const test = await configMapStack("kok-cm-in-place", "in-place", current);
    await upOps(test);
    const before = await uidOf("in-place");
    current.data = { ETCD_INITIAL_CLUSTER_STATE: "existing" };
    const ops = await upOps(test);
    expect(ops).toMatchObject({ update: 1 });
    expect(ops.replace ?? 0).toBe(0);
    expect(await uidOf("in-place")).toBe(before);
    expect((await core.readNamespacedConfigMap({ name: NAME, namespace: "in-place" })).data).toEqual({ ETCD_INITIAL_CLUSTER_STATE: "existing" });
  }, 240_000);

  it("without the option were replaced: a new object (what the option avoids)", async () => {
    const current = { providerArgs: olderProviderArgs(), data: { ETCD_INITIAL_CLUSTER_STATE: "new" } };
    const test = await configMapStack("kok-cm-replaced", "replaced", current);
    await upOps(test);
    const before = await uidOf("replaced");
    current.data = { ETCD_INITIAL_CLUSTER_STATE: "existing" };
    expect(await upOps(test)).toMatchObject({ replace: 1 });
    expect(await uidOf("replaced")).not.toBe(before);
  }, 240_000);

  it("of a stack written before the option: the provider is updated, the ConfigMap kept, then changed in place", async () => {
    const current = { providerArgs: olderProviderArgs(), data: { ETCD_INITIAL_CLUSTER_STATE: "new" } };
    const test = await configMapStack("kok-cm-upgrade", "upgrade", current);
    await upOps(test);
    const before = await uidOf("upgrade");
    // The package upgraded: the same program with today's provider arguments.
    current.providerArgs = metaClusterProviderArgs(kubeconfig);
    const ops = await upOps(test);
    expect(ops).toMatchObject({ update: 1 });
    expect(ops.replace ?? 0).toBe(0);
    expect(await uidOf("upgrade")).toBe(before);
    current.data = { ETCD_INITIAL_CLUSTER_STATE: "existing" };
    expect((await upOps(test)).replace ?? 0).toBe(0);
    expect(await uidOf("upgrade")).toBe(before);
  }, 240_000);

  it("of the business cluster's provider (the add-ons' Corefile and proxy configuration) change in place too", () => {
    expect(businessClusterProviderArgs("kubeconfig").enableConfigMapMutable).toBe(true);
  });
});
