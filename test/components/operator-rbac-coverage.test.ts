/**
 * The operator runs the cluster program with its own ServiceAccount: every kind of object the
 * program creates must be granted by the RBAC of `kok manifests`, or the first `up` of a Cluster
 * fails with a 403 on the meta-cluster (a new kind — the masters' NetworkPolicies — did exactly that).
 */
import { describe, expect, it } from "vitest";
import { installManifests } from "../../src/operator/install-manifests";
import { clusterProgram } from "../../src/program/cluster-program";
import { installMocks, managedBy, settle, valueOf } from "../support/pulumi-mocks";
import { standardSpec } from "../support/specs";

const recorder = installMocks();

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** `kubernetes:networking.k8s.io/v1:NetworkPolicy` → networking.k8s.io, networkpolicies. */
function groupAndResource(type: string): { group: string; resource: string } {
  const [, groupVersion, kind] = type.split(":");
  const group = groupVersion.slice(0, groupVersion.lastIndexOf("/"));
  const lower = kind.toLowerCase();
  return { group: group === "core" ? "" : group, resource: lower.endsWith("y") ? `${lower.slice(0, -1)}ies` : `${lower}s` };
}

describe("the operator's RBAC", () => {
  it("grants every verb an up needs on every kind the cluster program creates", async () => {
    // With etcd backups, so their CronJob is among the kinds (a Cluster with backups must not fail its first up).
    const spec = standardSpec();
    const backup = { store: { s3: { bucket: "kok-backups", prefix: "dev", endpoint: "https://s3.example.com", region: "us-east-1", credentialsSecretRef: { name: "store" } } } };
    const out = clusterProgram({
      name: "dev",
      spec: { ...spec, etcd: { ...spec.etcd, backup } },
      namespace: "kok-dev",
      operatorNamespace: "kube-on-kube-system",
      etcdBackup: { credentials: { accessKeyId: "TEST-ONLY-id", secretAccessKey: "TEST-ONLY-secret" } },
    });
    await valueOf(out.endpoint);
    await settle();
    // In the meta-cluster only: the add-ons go to the business cluster with its admin kubeconfig.
    const metaObjects = recorder.resources.filter((r) => r.custom && r.type.startsWith("kubernetes:") && !r.type.startsWith("pulumi:providers") && !managedBy(r, "business-cluster"));
    expect(metaObjects.length).toBeLessThan(recorder.resources.filter((r) => r.custom && r.type.startsWith("kubernetes:")).length);
    const types = new Set(metaObjects.map((r) => r.type));
    expect(types).toContain("kubernetes:networking.k8s.io/v1:NetworkPolicy");
    expect(types).toContain("kubernetes:batch/v1:CronJob");
    const rules = installManifests()
      .filter((o) => o.kind === "ClusterRole" || o.kind === "Role")
      .flatMap((o) => (o as { rules: Rule[] }).rules);
    const missing: string[] = [];
    for (const type of types) {
      const { group, resource } = groupAndResource(type);
      for (const verb of ["get", "create", "patch", "delete"]) {
        if (!rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb))) missing.push(`${verb} ${group || "core"}/${resource}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
