import { describe, expect, it } from "vitest";
import { installMocks, settle, valueOf } from "../support/pulumi-mocks";

const recorder = installMocks();

describe("examples/control-plane", () => {
  it("deploys a standard business cluster into its namespace through the meta-cluster provider", async () => {
    const program = await import("../../examples/control-plane/index");
    expect(await valueOf(program.endpoint)).toBe("https://prod-a.k8s.example.com:6443");
    await valueOf(program.adminKubeconfig);
    await settle();
    const provider = recorder.named("meta-cluster");
    expect(provider.type).toBe("pulumi:providers:kubernetes");
    expect(provider.inputs).toMatchObject({ clusterIdentifier: "meta-cluster", enableSecretMutable: "true", enableConfigMapMutable: "true" });
    const workloads = [...recorder.ofType("kubernetes:apps/v1:StatefulSet"), ...recorder.ofType("kubernetes:apps/v1:Deployment")];
    expect(workloads.map((w) => (w.inputs as { metadata: { namespace: string } }).metadata.namespace)).toEqual(Array(4).fill("kok-prod-a"));
    for (const w of workloads) expect(w.provider).toMatch(/::meta-cluster::/);
  });
});
