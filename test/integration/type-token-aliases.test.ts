/**
 * The move of the component type tokens to `kube-on-kube:index:<Type>` replaces nothing in a stack
 * deployed with the old tokens, through the real engine (file backend, real tls provider).
 *
 * The old stack is written by the same component code with src/components/type-tokens.ts answering
 * before the move: ClusterPki registered as `kube-on-kube:pki:ClusterPki`, no alias. Under a
 * ControlPlane-typed parent, as ControlPlane nests it, so the URNs of its tls children carry the
 * whole chain of parent types. Then the real token module previews and applies: every resource is
 * `same`, none created, replaced or deleted; and without the alias the same preview would replace
 * the PKI, so the test can fail.
 */
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { resolveClusterSpec } from "../../src/api/v1alpha1";
import { ClusterPki } from "../../src/components/pki";
import { assertPlugins, newTestStack, type TestStack } from "../support/engine";
import { minimalSpec } from "../support/specs";

type TokenMode = "old" | "current" | "current-without-alias";
const tokens = vi.hoisted(() => ({ mode: "current" as TokenMode }));

vi.mock("../../src/components/type-tokens", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../src/components/type-tokens")>();
  return {
    ...real,
    componentType: (type: Parameters<typeof real.componentType>[0]) =>
      tokens.mode === "old" ? (real.legacyComponentType(type) ?? real.componentType(type)) : real.componentType(type),
    withLegacyAlias: (type: Parameters<typeof real.withLegacyAlias>[0], opts: pulumi.ComponentResourceOptions | undefined) =>
      tokens.mode === "current" ? real.withLegacyAlias(type, opts) : { ...opts },
  };
});

const program = async () => {
  const parent = new pulumi.ComponentResource("kube-on-kube:index:ControlPlane", "prod-a");
  const spec = resolveClusterSpec(minimalSpec());
  const pki = new ClusterPki("prod-a-pki", { cluster: { name: "prod-a", namespace: "kok-prod-a", spec, metaClusterDomain: "cluster.local" } }, { parent });
  return { caCert: pki.clusterCa.certPem };
};

const typesInState = async (test: TestStack): Promise<string[]> => {
  const state = await test.stack.exportStack();
  return (state.deployment.resources as { type: string }[]).map((r) => r.type);
};

describe("type tokens moved to the module index", () => {
  let test: TestStack;
  let created = 0;
  let caCert = "";

  beforeAll(async () => {
    assertPlugins([{ name: "tls", version: "5.3.0" }]);
    test = await newTestStack("kok-type-tokens", program);
    tokens.mode = "old";
    const result = await test.stack.up();
    created = result.summary.resourceChanges?.create ?? 0;
    caCert = String(result.outputs.caCert.value);
  });
  afterAll(async () => {
    tokens.mode = "current";
    await test?.stack.destroy();
    test?.dispose();
  });

  it("starts from a stack written with the old token", async () => {
    const types = await typesInState(test);
    expect(types).toContain("kube-on-kube:pki:ClusterPki");
    expect(types).not.toContain("kube-on-kube:index:ClusterPki");
    // The PKI's keys, CSRs and certificates, all children of the component.
    expect(created).toBeGreaterThan(30);
  });

  it("would replace the PKI without the alias (the check below can fail)", async () => {
    tokens.mode = "current-without-alias";
    const preview = await test.stack.preview();
    expect(preview.changeSummary.create).toBeGreaterThan(30);
    expect(preview.changeSummary.delete).toBeGreaterThan(30);
  });

  it("previews no change at all with the current tokens and their aliases", async () => {
    tokens.mode = "current";
    const preview = await test.stack.preview();
    expect(preview.changeSummary).toEqual({ same: created });
  });

  it("applies the new token in place: same resources, same certificates, no old token left", async () => {
    tokens.mode = "current";
    const result = await test.stack.up();
    expect(result.summary.resourceChanges).toEqual({ same: created });
    expect(String(result.outputs.caCert.value)).toBe(caCert);
    const types = await typesInState(test);
    expect(types).toContain("kube-on-kube:index:ClusterPki");
    expect(types.filter((t) => /^kube-on-kube:(masters|workers|pki):/.test(t))).toEqual([]);
    // And a later preview is quiet too: the aliases are only needed once.
    expect((await test.stack.preview()).changeSummary).toEqual({ same: created });
  });
});
