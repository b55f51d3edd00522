/**
 * The operator's inline program of a Cluster with backups (ClusterReconciler.program), run under
 * Pulumi mocks: the tenant's store Secret, read in the Cluster's namespace, lands in the stack's
 * `<cluster>-etcd-backup-store` as a secret, the CronJob runs `--backup-image` and names the
 * Cluster, and a missing Secret fails the program before any resource is registered.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { installMocks, isSecretInput, plain, settle } from "../support/pulumi-mocks";
import { minimalSpec } from "../support/specs";
import { ClusterReconciler, type ClusterReconcilerOptions } from "../../src/controllers/cluster/reconciler";
import type { ClusterObject, ClusterSpec } from "../../src/api/v1alpha1";

const recorder = installMocks();
beforeEach(() => recorder.reset());

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const spec = (): ClusterSpec => {
  const base = minimalSpec();
  return { ...base, etcd: { ...base.etcd, backup: { store: { s3: { bucket: "kok-backups", prefix: "team-a/prod", endpoint: "https://s3.example.com", credentialsSecretRef: { name: "store" } } } } } };
};
const cluster: ClusterObject = { apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { namespace: "team-a", name: "prod", uid: "u-1" }, spec: spec() };

function reconciler(secrets: Record<string, Record<string, string>>, asked: string[]): ClusterReconciler {
  // Only what program() reads: the Secret reader and the image; the rest is never called here.
  const options = {
    readSecret: async (namespace: string, name: string) => {
      asked.push(`${namespace}/${name}`);
      return secrets[`${namespace}/${name}`];
    },
    backupImage: "registry.example.com/kok/operator:7.7.7",
    resyncMs: 60_000,
  } as unknown as ClusterReconcilerOptions;
  return new ClusterReconciler(options);
}

describe("the operator's program of a Cluster with backups", () => {
  it("copies the tenant's Secret into the stack as a secret and runs the backup image", async () => {
    const asked: string[] = [];
    await reconciler({ "team-a/store": { accessKeyId: "TEST-ONLY-id", secretAccessKey: "TEST-ONLY-secret" } }, asked).program(cluster, "kok-team-a-prod-x")();
    await settle();
    expect(asked).toEqual(["team-a/store"]);
    const store = recorder.resources.find((r) => r.type === "kubernetes:core/v1:Secret" && plain<Obj>(r.inputs.metadata).name === "prod-etcd-backup-store");
    expect(store).toBeDefined();
    expect(isSecretInput(store!.inputs.stringData)).toBe(true);
    expect(plain(store!.inputs.stringData)).toEqual({ accessKeyId: "TEST-ONLY-id", secretAccessKey: "TEST-ONLY-secret" });
    const cron = plain<Obj>(recorder.ofType("kubernetes:batch/v1:CronJob")[0].inputs);
    const [container] = cron.spec.jobTemplate.spec.template.spec.containers;
    expect(container.image).toBe("registry.example.com/kok/operator:7.7.7");
    expect(container.args).toContain("--cluster=team-a/prod");
    expect(cron.metadata.namespace).toBe("kok-team-a-prod-x");
  });

  it("fails, naming the Secret, when the tenant's Secret is missing: nothing is registered", async () => {
    await expect(reconciler({}, []).program(cluster, "kok-team-a-prod-x")()).rejects.toThrow("Secret team-a/store not found");
    await settle();
    expect(recorder.resources).toEqual([]);
  });
});
