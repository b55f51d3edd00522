/**
 * The decision behind a destroy with the business apiserver down (unreachable-addons.ts): when
 * the switch may be set, and what the providers' diagnostics say was abandoned.
 */
import { describe, expect, it } from "vitest";
import { abandonDecision, abandonedMessage, AbandonedResources } from "../../src/controllers/cluster/unreachable-addons";
import type { StateResource } from "../../src/runtime/stack-runner";

const provider = (name: string, deleteUnreachable?: string | boolean): StateResource => ({
  type: "pulumi:providers:kubernetes",
  name,
  ...(deleteUnreachable === undefined ? {} : { inputs: { deleteUnreachable } }),
});
const masters: StateResource[] = [
  { type: "pulumi:pulumi:Stack", name: "kube-on-kube-clusters-fleet.dev" },
  { type: "kubernetes:core/v1:Namespace", name: "dev-namespace", id: "kok-fleet-dev" },
];

describe("abandonDecision", () => {
  it("sets PULUMI_K8S_DELETE_UNREACHABLE when the business cluster's provider is the only one that follows it", () => {
    expect(abandonDecision([...masters, provider("meta-cluster", "false"), provider("business-cluster")])).toEqual({ allow: true, env: { PULUMI_K8S_DELETE_UNREACHABLE: "true" } });
    expect(abandonDecision([...masters, provider("meta-cluster", false), provider("business-cluster")]).allow).toBe(true);
  });

  it("never sets it while another Kubernetes provider has no deleteUnreachable: false in the state", () => {
    for (const meta of [provider("meta-cluster"), provider("meta-cluster", "true"), provider("meta-cluster", true)]) {
      const decision = abandonDecision([...masters, meta, provider("business-cluster")]);
      expect(decision).toEqual({ allow: false, addons: true, reason: expect.stringContaining("meta-cluster") });
    }
    // A default provider (a resource registered without one) follows the variable as well.
    expect(abandonDecision([...masters, provider("meta-cluster", "false"), provider("default_4_25_0"), provider("business-cluster")])).toMatchObject({ allow: false, reason: expect.stringContaining("default_4_25_0") });
  });

  it("has nothing to abandon without add-ons, or without a stack", () => {
    expect(abandonDecision([...masters, provider("meta-cluster", "false")])).toMatchObject({ allow: false, addons: false, reason: expect.stringContaining("no add-ons") });
    expect(abandonDecision(undefined).allow).toBe(false);
    // Not fooled by a resource of another type with the provider's name.
    expect(abandonDecision([...masters, { type: "kubernetes:core/v1:Secret", name: "business-cluster" }]).allow).toBe(false);
  });
});

describe("AbandonedResources", () => {
  it("counts what pulumi-kubernetes dropped from the state, not its other warnings", () => {
    const seen = new AbandonedResources();
    const dropped = "configured Kubernetes cluster is unreachable and the `deleteUnreachable` option is enabled. Deleting the unreachable resource from Pulumi state";
    seen.onDiagnostic({ severity: "warning", type: "kubernetes:apps/v1:DaemonSet", name: "dev-addons-flannel", message: "configured Kubernetes cluster is unreachable: connection refused" });
    seen.onDiagnostic({ severity: "info", type: "kubernetes:apps/v1:DaemonSet", name: "dev-addons-flannel", message: dropped });
    seen.onDiagnostic({ severity: "info", type: "kubernetes:apps/v1:DaemonSet", name: "dev-addons-flannel", message: dropped });
    seen.onDiagnostic({ severity: "info", type: "kubernetes:core/v1:Service", name: "dev-addons-kube-dns", message: dropped });
    seen.onDiagnostic({ severity: "info", type: "kubernetes:core/v1:Secret", name: "dev-admin", message: "deleted" });
    expect(seen.list).toEqual(["DaemonSet dev-addons-flannel", "Service dev-addons-kube-dns"]);
  });

  it("names five and counts the rest", () => {
    const message = abandonedMessage(Array.from({ length: 7 }, (_, i) => `ConfigMap c${i}`));
    expect(message).toMatch(/^7 add-on object\(s\) abandoned, not deleted, because the business cluster's apiserver was unreachable \(ConfigMap c0, .*ConfigMap c4, and 2 more\)/);
  });
});
