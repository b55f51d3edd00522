/**
 * Why the cluster program's business-cluster provider depends on the ControlPlane: pulumi-kubernetes
 * probes the apiserver once, when the provider is configured, and a provider that found none
 * fails every create of the run, even after the apiserver came up. Here a dynamic resource stands
 * for the masters (it returns once the apiserver answers /readyz) and the apiserver starts a few
 * seconds into the `up`: with the provider depending on it the add-ons are created; without, the
 * same `up` fails, which is what the first `up` of every Cluster would do.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveClusterSpec } from "../../src/api/v1alpha1";
import { ClusterAddons } from "../../src/components/addons/cluster-addons";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { assertPlugins, newTestStack, type TestStack } from "../support/engine";
import { minimalSpec } from "../support/specs";

const NETWORK = { serviceCIDR: "10.0.0.0/24", podCIDR: "10.244.0.0/16", clusterDomain: "cluster.local" };

/** Done once `url`/readyz answers 200 (up to 2 minutes): the masters rolled out. */
const mastersReady: pulumi.dynamic.ResourceProvider = {
  async create(inputs: { url: string }) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const https = require("node:https") as typeof import("node:https");
    const ready = () =>
      new Promise<boolean>((resolve) => {
        const req = https.get(`${inputs.url}/readyz`, { rejectUnauthorized: false, timeout: 2000 }, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        });
        req.on("error", () => resolve(false));
        req.on("timeout", () => req.destroy());
      });
    for (let i = 0; i < 240 && !(await ready()); i++) await new Promise((r) => setTimeout(r, 500));
    return { id: "ready", outs: inputs };
  },
};

class MastersReady extends pulumi.dynamic.Resource {
  constructor(name: string, url: string) {
    super(mastersReady, name, { url }, {});
  }
}

function backgroundDeletion(args: pulumi.ResourceTransformationArgs): pulumi.ResourceTransformationResult | undefined {
  if (!args.type.startsWith("kubernetes:")) return undefined;
  const props = args.props as { metadata?: pulumi.Input<{ annotations?: Record<string, string> }> };
  const metadata = pulumi.output(props.metadata ?? {}).apply((m) => ({ ...m, annotations: { ...m.annotations, "pulumi.com/deletionPropagationPolicy": "background" } }));
  return { props: { ...props, metadata }, opts: args.opts };
}

describe("the business-cluster provider is configured after the masters", () => {
  let apiserver: TestApiserver;

  beforeAll(async () => {
    assertPlugins([{ name: "kubernetes", version: "4.25.0" }]);
    apiserver = await startTestApiserver();
  }, 120_000);
  afterAll(async () => {
    await apiserver?.stop();
  });

  /** An `up` with the apiserver down at its start and up 8 s later. */
  async function upWhileTheApiserverStarts(providerWaits: boolean): Promise<{ error?: string; test: TestStack }> {
    const kubeconfig = apiserver.kubeConfig().exportConfig();
    const addons = resolveClusterSpec(minimalSpec({ network: NETWORK })).addons;
    const test = await newTestStack(`kok-addons-timing-${providerWaits ? "waits" : "eager"}`, async () => {
      const masters = new MastersReady("masters", apiserver.url);
      const provider = new k8s.Provider("business-cluster", { kubeconfig, clusterIdentifier: "business-cluster", skipUpdateUnreachable: true }, providerWaits ? { dependsOn: [masters] } : {});
      new ClusterAddons("dev-addons", { apiServerEndpoint: "https://192.0.2.10:30443", addons, network: NETWORK }, { providers: [provider], dependsOn: [masters], transformations: [backgroundDeletion] });
    });
    await apiserver.stopApiserver();
    const starting = new Promise((r) => setTimeout(r, 8000)).then(() => apiserver.startApiserver());
    const error = await test.stack.up().then(
      () => undefined,
      (err: Error) => err.message,
    );
    await starting;
    return { error, test };
  }

  it("creates the add-ons when the provider depends on the masters", async () => {
    const { error, test } = await upWhileTheApiserverStarts(true);
    expect(error).toBeUndefined();
    await test.stack.destroy();
    test.dispose();
  }, 240_000);

  it("fails the same up when it does not (so the check above can fail)", async () => {
    const { error, test } = await upWhileTheApiserverStarts(false);
    expect(error).toMatch(/configured Kubernetes cluster is unreachable/);
    test.dispose();
  }, 240_000);
});
