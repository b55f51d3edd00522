/**
 * The Cluster drift check trusts a fingerprint of the live objects (src/controllers/cluster/live-fingerprint.ts)
 * only if it reads every Kubernetes object the cluster program creates. This keeps the two in step:
 * a new kind, an unlabelled object or an object outside the places it reads fails here, before a
 * drift of it could go unnoticed between full previews.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { objectsLocationOf } from "../../src/controllers/cluster/reconciler";
import { ADDON_LABEL, ADDON_NAMESPACE, ADDON_OBJECT_TYPES, CLUSTER_LABEL, MASTER_OBJECT_TYPES } from "../../src/controllers/cluster/live-fingerprint";
import { clusterProgram } from "../../src/program/cluster-program";
import { installMocks, managedBy, plain, settle, valueOf } from "../support/pulumi-mocks";
import { minimalSpec, standardSpec } from "../support/specs";

const recorder = installMocks();

beforeEach(() => recorder.reset());

interface Metadata {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

describe("the live fingerprint covers, and the stack can take back, every object of the cluster program", () => {
  const withBackup = (base: ReturnType<typeof standardSpec>) => ({
    ...base,
    etcd: { ...base.etcd, backup: { store: { s3: { bucket: "kok-backups", prefix: "fleet/dev", endpoint: "https://s3.example.com", credentialsSecretRef: { name: "store" } } } } },
  });
  // Credentials for the specs with backups; ignored by the others.
  const etcdBackup = { credentials: { accessKeyId: "TEST-ONLY-id", secretAccessKey: "TEST-ONLY-secret" } };
  for (const [mode, spec] of [
    ["minimal", minimalSpec()],
    ["standard", standardSpec()],
    ["standard with etcd backups", withBackup(standardSpec())],
  ] as const) {
    it(`${mode}: every Kubernetes object is a fingerprinted kind, in a place it reads, labelled with the Cluster`, async () => {
      const cluster = { metadata: { namespace: "fleet", name: "dev" }, spec };
      const at = objectsLocationOf(cluster);
      const out = clusterProgram({ name: "dev", spec, namespace: at.mastersNamespace, adminKubeconfigCopy: at.adminKubeconfigCopy, etcdBackup });
      await valueOf(out.endpoint);
      await settle();
      // The backup CronJob is read exactly when the program renders one.
      expect(at.etcdBackup?.credentials, "etcdBackup read").toEqual(recorder.ofType("kubernetes:batch/v1:CronJob").length > 0 ? { namespace: "fleet", name: "store" } : undefined);
      // The meta-cluster's objects (the add-ons, in the business cluster, are checked below).
      const objects = recorder.resources.filter((r) => r.custom && r.type.startsWith("kubernetes:") && r.type !== "pulumi:providers:kubernetes" && !managedBy(r, "business-cluster"));
      expect(objects.length).toBeGreaterThan(10);
      const uncovered: string[] = [];
      for (const r of objects) {
        const metadata = plain<Metadata>(r.inputs.metadata ?? {});
        if (r.type === "kubernetes:core/v1:Namespace") {
          if (metadata.name !== at.mastersNamespace) uncovered.push(`${r.name}: Namespace ${metadata.name}`);
        } else if (r.type === "kubernetes:core/v1:Secret" && metadata.namespace === at.adminKubeconfigCopy?.namespace) {
          const copies = [at.adminKubeconfigCopy, ...(at.userKubeconfigCopies ?? [])].map((c) => c?.name);
          if (!copies.includes(metadata.name)) uncovered.push(`${r.name}: Secret ${metadata.namespace}/${metadata.name}`);
        } else {
          if (!(MASTER_OBJECT_TYPES as readonly string[]).includes(r.type)) uncovered.push(`${r.name}: type ${r.type} is not listed`);
          if (metadata.namespace !== at.mastersNamespace) uncovered.push(`${r.name}: namespace ${metadata.namespace}`);
          if (metadata.labels?.[CLUSTER_LABEL] !== "dev") uncovered.push(`${r.name}: label ${CLUSTER_LABEL} is ${metadata.labels?.[CLUSTER_LABEL]}`);
        }
      }
      expect(uncovered).toEqual([]);
      // A drift the check finds must be correctable: the stack takes back fields a hand edit (a
      // tenant's, on the copy next to its Cluster) made another manager's.
      const notForced = objects.filter((r) => plain<Metadata>(r.inputs.metadata ?? {}).annotations?.["pulumi.com/patchForce"] !== "true").map((r) => r.name);
      expect(notForced).toEqual([]);
    });

    it(`${mode}: the fingerprint reads the add-ons exactly when the program deploys them, every one of them`, async () => {
      const at = objectsLocationOf({ metadata: { namespace: "fleet", name: "dev" }, spec });
      clusterProgram({ name: "dev", spec, namespace: at.mastersNamespace, adminKubeconfigCopy: at.adminKubeconfigCopy, etcdBackup });
      await settle();
      const addons = recorder.resources.filter((r) => r.custom && r.type.startsWith("kubernetes:") && managedBy(r, "business-cluster"));
      // Standard has an externalHost (add-ons deployed), minimal none.
      expect(addons.length > 0, "add-ons deployed").toBe(mode !== "minimal");
      if (mode === "minimal") {
        expect(at.addons).toBeUndefined();
        return;
      }
      // Read through the stack's admin kubeconfig in the masters' namespace, never the tenant's copy.
      expect(at.addons?.adminKubeconfig).toEqual({ namespace: at.mastersNamespace, name: "dev-admin-kubeconfig", key: "kubeconfig" });
      const [labelKey, labelValue] = ADDON_LABEL.split("=");
      const uncovered: string[] = [];
      for (const r of addons) {
        const metadata = plain<Metadata>(r.inputs.metadata ?? {});
        const clusterScoped = r.type.endsWith(":ClusterRole") || r.type.endsWith(":ClusterRoleBinding");
        if (!(ADDON_OBJECT_TYPES as readonly string[]).includes(r.type)) uncovered.push(`${r.name}: type ${r.type} is not listed`);
        if (metadata.namespace !== (clusterScoped ? undefined : ADDON_NAMESPACE)) uncovered.push(`${r.name}: namespace ${metadata.namespace}`);
        if (metadata.labels?.[labelKey!] !== labelValue) uncovered.push(`${r.name}: label ${labelKey} is ${metadata.labels?.[labelKey!]}`);
      }
      expect(uncovered).toEqual([]);
      expect(ADDON_OBJECT_TYPES.filter((t) => t.endsWith(":Secret")), "no Secret of the business cluster is read").toEqual([]);
    });

    it(`${mode}: with every add-on disabled, no add-on is read`, () => {
      const off = { ...spec, addons: { network: { enabled: false }, kubeProxy: { enabled: false }, coreDNS: { enabled: false } } };
      expect(objectsLocationOf({ metadata: { namespace: "fleet", name: "dev" }, spec: off }).addons).toBeUndefined();
    });
  }
});
