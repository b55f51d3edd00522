/**
 * The etcd backup objects and the restore init container, rendered by a ControlPlane under Pulumi
 * mocks, judged by a real kube-apiserver: the CronJob, its NetworkPolicy and both Secrets are
 * accepted as rendered (server-side dry run), and the Pods a Job of the CronJob and a restoring
 * etcd member would run are admitted by Pod Security "restricted" in the masters' namespace,
 * while the same backup Pod without its securityContext is refused.
 */
import { AppsV1Api, BatchV1Api, CoreV1Api, NetworkingV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installMocks, plain, settle, valueOf, type RecordedResource } from "../support/pulumi-mocks";
import { standardSpec } from "../support/specs";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { ControlPlane } from "../../src/components/control-plane";

const recorder = installMocks();

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const NS = "kok-team-a-prod-a-0123456789";
const rendered = (type: string) => recorder.ofType(type).map((r: RecordedResource) => plain<Obj>(r.inputs));
const named = (type: string, name: string) => rendered(type).find((o) => o.metadata.name === name) as Obj;

let apiserver: TestApiserver;
let core: CoreV1Api;
let apps: AppsV1Api;
let batch: BatchV1Api;
let networking: NetworkingV1Api;

beforeAll(async () => {
  const spec = standardSpec();
  const cp = new ControlPlane("prod-a", {
    spec: {
      ...spec,
      etcd: {
        ...spec.etcd,
        backup: { store: { s3: { bucket: "kok-backups", prefix: "team-a/prod-a", endpoint: "https://s3.example.com", credentialsSecretRef: { name: "store" } } } },
        restore: { snapshot: "s3://kok-backups/team-a/old/2026-12-04T06-00-00Z.db" },
      },
    },
    namespace: NS,
    etcdBackup: { credentials: { accessKeyId: "TEST-ONLY-AKID", secretAccessKey: "TEST-ONLY-secret" }, clusterRef: "team-a/prod-a" },
  });
  await valueOf(cp.adminKubeconfig);
  await settle();
  apiserver = await startTestApiserver();
  const kc = apiserver.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  batch = kc.makeApiClient(BatchV1Api);
  networking = kc.makeApiClient(NetworkingV1Api);
  const [namespace] = rendered("kubernetes:core/v1:Namespace");
  await core.createNamespace({ body: { metadata: { name: namespace.metadata.name, labels: namespace.metadata.labels } } });
  // No controller-manager here to create it, and Pod admission wants it.
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: "default" } } });
}, 120_000);

afterAll(async () => apiserver?.stop());

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const body = (error as { body?: unknown }).body;
    return typeof body === "string" ? body : String(error);
  }
  return "admitted";
}

describe("etcd backup objects on a real apiserver", () => {
  it("accepts the CronJob, its NetworkPolicy and both Secrets as rendered, in a namespace enforcing restricted", async () => {
    const ns = await core.readNamespace({ name: NS });
    expect(ns.metadata?.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    const cron = named("kubernetes:batch/v1:CronJob", "prod-a-etcd-backup");
    const created = await batch.createNamespacedCronJob({ namespace: NS, body: { metadata: { name: cron.metadata.name, labels: cron.metadata.labels }, spec: cron.spec }, dryRun: "All" });
    expect(created.spec).toMatchObject({ timeZone: "Etc/UTC", concurrencyPolicy: "Forbid", successfulJobsHistoryLimit: 3, failedJobsHistoryLimit: 3 });
    const policy = named("kubernetes:networking.k8s.io/v1:NetworkPolicy", "prod-a-etcd-backup");
    const acceptedPolicy = await networking.createNamespacedNetworkPolicy({ namespace: NS, body: { metadata: { name: policy.metadata.name }, spec: policy.spec }, dryRun: "All" });
    expect(acceptedPolicy.spec?.egress).toHaveLength(3);
    for (const name of ["prod-a-etcd-backup-client", "prod-a-etcd-backup-store"]) {
      const secret = named("kubernetes:core/v1:Secret", name);
      expect(await rejection(core.createNamespacedSecret({ namespace: NS, body: { metadata: { name }, type: secret.type, stringData: secret.stringData }, dryRun: "All" })), name).toBe("admitted");
    }
  });

  it("admits the backup Job's Pod and a restoring etcd member's Pod under Pod Security restricted", async () => {
    const template = named("kubernetes:batch/v1:CronJob", "prod-a-etcd-backup").spec.jobTemplate.spec.template;
    const backupPod: V1Pod = { metadata: { name: "prod-a-etcd-backup-manual-x", namespace: NS, labels: template.metadata.labels }, spec: template.spec };
    expect(await rejection(core.createNamespacedPod({ namespace: NS, body: backupPod, dryRun: "All" }))).toBe("admitted");

    const etcd = named("kubernetes:apps/v1:StatefulSet", "prod-a-etcd");
    expect(await rejection(apps.createNamespacedStatefulSet({ namespace: NS, body: { metadata: { name: "prod-a-etcd", labels: etcd.metadata.labels }, spec: etcd.spec }, dryRun: "All" }))).toBe("admitted");
    const claims = etcd.spec.volumeClaimTemplates.map((c: Obj) => ({ name: c.metadata.name, persistentVolumeClaim: { claimName: `${c.metadata.name}-prod-a-etcd-0` } }));
    const member: V1Pod = { metadata: { name: "prod-a-etcd-0", namespace: NS, labels: etcd.spec.template.metadata.labels }, spec: { ...etcd.spec.template.spec, volumes: [...etcd.spec.template.spec.volumes, ...claims] } };
    expect(member.spec?.initContainers?.[0].name).toBe("restore");
    expect(await rejection(core.createNamespacedPod({ namespace: NS, body: member, dryRun: "All" }))).toBe("admitted");
  });

  it("refuses the backup Pod without its securityContext: the namespace, not only the template, holds it to restricted", async () => {
    const spec = named("kubernetes:batch/v1:CronJob", "prod-a-etcd-backup").spec.jobTemplate.spec.template.spec;
    const weak: V1Pod = { metadata: { name: "weak", namespace: NS }, spec: { ...spec, securityContext: undefined, containers: spec.containers.map((c: Obj) => ({ ...c, securityContext: undefined })) } };
    expect(await rejection(core.createNamespacedPod({ namespace: NS, body: weak, dryRun: "All" }))).toMatch(/violates PodSecurity \\?"restricted/);
  });
});
