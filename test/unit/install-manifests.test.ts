import { describe, expect, it } from "vitest";
import { installManifests } from "../../src/operator/install-manifests";

interface Container {
  name: string;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
}
const operatorContainer = (objects: ReturnType<typeof installManifests>): Container => {
  const deployment = objects.find((o) => o.kind === "Deployment") as { spec: { template: { spec: { containers: Container[] } } } } | undefined;
  return deployment!.spec.template.spec.containers.find((c) => c.name === "operator")!;
};

describe("installManifests", () => {
  it("caps the operator's V8 heap (512 MB by default, or as asked) and takes the passphrase from a Secret", () => {
    const env = (o?: Parameters<typeof installManifests>[0]) => Object.fromEntries((operatorContainer(installManifests(o)).env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
    expect(env().NODE_OPTIONS).toBe("--max-old-space-size=512");
    expect(env({ operatorHeapMb: 256 }).NODE_OPTIONS).toBe("--max-old-space-size=256");
    expect(env().PULUMI_CONFIG_PASSPHRASE).toEqual({ secretKeyRef: { name: "kube-on-kube-operator-state-passphrase", key: "passphrase" } });
  });
});
