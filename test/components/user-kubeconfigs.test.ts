/**
 * The user kubeconfigs of spec.kubeconfigs reach their users: the Cluster program copies each one
 * next to the Cluster (its own Secret, so the tenant's RBAC can give each user theirs), as a secret,
 * with the same kubeconfig as the masters' namespace keeps; an entry removed takes its copy along,
 * and its CA out of the apiserver's client CA bundle.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { userKubeconfigCopyOf } from "../../src/api/v1alpha1";
import { clusterProgram } from "../../src/program/cluster-program";
import { installMocks, isSecretInput, plain, settle, valueOf } from "../support/pulumi-mocks";
import { standardSpec } from "../support/specs";

const recorder = installMocks();
beforeEach(() => recorder.reset());

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const secrets = () => recorder.ofType("kubernetes:core/v1:Secret").map((r) => ({ r, metadata: plain<Obj>(r.inputs.metadata) }));

async function run(kubeconfigs: ReturnType<typeof standardSpec>["kubeconfigs"], copy = true) {
  const out = clusterProgram({
    name: "prod",
    spec: { ...standardSpec(), kubeconfigs },
    namespace: "kok-team-a-prod",
    ...(copy ? { adminKubeconfigCopy: { namespace: "team-a", name: "prod-admin-kubeconfig" } } : {}),
  });
  await valueOf(out.endpoint);
  await settle();
}

describe("user kubeconfigs", () => {
  it("are copied next to the Cluster, one Secret per entry, as secrets equal to the masters' namespace's", async () => {
    await run([
      { name: "ops-viewer", user: "ops", groups: ["view-only"], validityDays: 60 },
      { name: "ci", user: "ci-bot" },
    ]);
    const inTenant = secrets().filter((s) => s.metadata.namespace === "team-a");
    expect(inTenant.map((s) => s.metadata.name).sort()).toEqual(["prod-admin-kubeconfig", "prod.kubeconfig.ci", "prod.kubeconfig.ops-viewer"]);
    for (const entry of ["ops-viewer", "ci"]) {
      const copy = inTenant.find((s) => s.metadata.name === `prod.kubeconfig.${entry}`)!;
      expect(copy.metadata.labels).toMatchObject({ "kubeonkube.io/cluster": "prod", "kubeonkube.io/kubeconfig": entry });
      // The tenant may edit it; the stack takes it back at the next drift check.
      expect(copy.metadata.annotations["pulumi.com/patchForce"]).toBe("true");
      expect(isSecretInput(copy.r.inputs.stringData)).toBe(true);
      const masters = secrets().find((s) => s.metadata.namespace === "kok-team-a-prod" && s.metadata.name === `prod-kubeconfig-${entry}`)!;
      const kubeconfig = plain<Obj>(copy.r.inputs.stringData).kubeconfig as string;
      expect(kubeconfig).toBe(plain<Obj>(masters.r.inputs.stringData ?? masters.r.inputs.data).kubeconfig);
      expect(kubeconfig).toContain(`name: ${entry === "ci" ? "ci-bot" : "ops"}`);
    }
  });

  it("are not copied without a tenant namespace to copy to (the root program), nor for entries that are gone", async () => {
    await run([{ name: "ops-viewer", user: "ops" }], false);
    expect(secrets().filter((s) => s.metadata.name?.includes(".kubeconfig."))).toEqual([]);
    recorder.reset();
    await run([]);
    expect(secrets().filter((s) => s.metadata.namespace === "team-a").map((s) => s.metadata.name)).toEqual(["prod-admin-kubeconfig"]);
  });

  it("are each signed by the entry's own CA, which the apiserver trusts for clients only while the entry exists", async () => {
    const clientCas = () => {
      const certs = secrets().find((s) => s.metadata.name === "prod-apiserver-certs")!;
      const pem = plain<Obj>(certs.r.inputs.stringData ?? certs.r.inputs.data)["client-ca.crt"] as string;
      return [...pem.matchAll(/mock-([\w-]+)/g)].map((m) => m[1]);
    };
    await run([
      { name: "ops-viewer", user: "ops" },
      { name: "ci", user: "ci-bot" },
    ]);
    expect(clientCas()).toEqual(["prod-pki-ca", "prod-pki-users-ca-ci", "prod-pki-users-ca-ops-viewer"]);
    for (const entry of ["ops-viewer", "ci"]) {
      expect(String(recorder.named(`prod-pki-user-${entry}`).inputs.caCertPem)).toContain(`mock-prod-pki-users-ca-${entry}`);
    }
    // The entry removed: its CA leaves the bundle (and the stack), so its certificates are refused.
    recorder.reset();
    await run([{ name: "ci", user: "ci-bot" }]);
    expect(clientCas()).toEqual(["prod-pki-ca", "prod-pki-users-ca-ci"]);
    expect(recorder.resources.map((r) => r.name)).not.toContain("prod-pki-users-ca-ops-viewer");
  });

  it("have names no two Clusters of one namespace can share", () => {
    const a = userKubeconfigCopyOf({ metadata: { namespace: "team-a", name: "a" } }, "b-c");
    const ab = userKubeconfigCopyOf({ metadata: { namespace: "team-a", name: "a-b" } }, "c");
    expect(a.name).toBe("a.kubeconfig.b-c");
    expect(a.name).not.toBe(ab.name);
  });
});
