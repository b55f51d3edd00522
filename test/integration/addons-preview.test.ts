/**
 * The first `up` of a Cluster previews its add-ons before the business cluster exists: the
 * business-cluster provider's kubeconfig is unknown then (it needs the PKI), and the real engine
 * with the real pulumi-kubernetes plugin must plan the add-ons without calling that provider.
 * No meta-cluster either: its provider points at a closed port, which pulumi-kubernetes also
 * tolerates in a preview.
 */
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterProgram } from "../../src/program/cluster-program";
import { assertPlugins, CONTROL_PLANE_PLUGINS, newTestStack, type TestStack } from "../support/engine";
import { minimalSpec } from "../support/specs";

const UNREACHABLE = `apiVersion: v1
kind: Config
clusters: [{ name: none, cluster: { server: "https://127.0.0.1:1" } }]
users: [{ name: none, user: { token: none } }]
contexts: [{ name: none, context: { cluster: none, user: none } }]
current-context: none
`;

describe("preview of a first up with the add-ons", () => {
  let test: TestStack;
  const planned: { op: string; type: string; name: string }[] = [];
  let stdout = "";

  beforeAll(async () => {
    assertPlugins(CONTROL_PLANE_PLUGINS);
    test = await newTestStack("kok-addons-preview", async () => {
      const spec = minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "192.0.2.10", nodePort: 30443 } } });
      clusterProgram({ name: "dev", spec, metaKubeconfig: UNREACHABLE });
    });
    const result = await test.stack.preview({
      onEvent: (e: EngineEvent) => {
        const m = e.resourcePreEvent?.metadata;
        if (m) planned.push({ op: m.op, type: m.type, name: m.urn.slice(m.urn.lastIndexOf("::") + 2) });
      },
    });
    stdout = result.stdout;
  }, 240_000);
  afterAll(() => test?.dispose());

  it("plans the business-cluster provider and every add-on object as creates, without an error", () => {
    expect(planned.find((p) => p.name === "business-cluster")).toMatchObject({ op: "create", type: "pulumi:providers:kubernetes" });
    const addons = planned.filter((p) => p.name.startsWith("dev-addons-") && p.type.startsWith("kubernetes:"));
    expect(addons.map((p) => p.name).sort(), stdout).toHaveLength(16);
    expect(addons.every((p) => p.op === "create")).toBe(true);
    expect(addons.map((p) => p.type)).toContain("kubernetes:apps/v1:DaemonSet");
  });
});
