/**
 * The etcd backup objects of a ControlPlane (src/components/etcd-backup.ts) and the restore init
 * container of its etcd members, under Pulumi mocks: the fixed names and labels the operator
 * reads, the exact `kok etcd backup|restore` command lines, secrets kept secret, a hardened Pod,
 * egress only to etcd, DNS and the store, and nothing new for a cluster without backups.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { installMocks, isSecretInput, plain, type RecordedResource } from "../support/pulumi-mocks";
import { minimalSpec, standardSpec } from "../support/specs";

import { ControlPlane } from "../../src/components/control-plane";
import { etcdFlags } from "../../src/components/etcd";
import { etcdInitialCluster } from "../../src/components/cluster-context";
import { defaultBackupImage, storeIpBlocks } from "../../src/components/etcd-backup";
import { MAX_CLUSTER_NAME_LENGTH, resolveClusterSpec, SpecValidationError, type ClusterSpec, type EtcdBackupSpec } from "../../src/api/v1alpha1";
import { objectNames } from "../../src/components/cluster-context";
import { deployControlPlane as deploy } from "../support/control-plane-deploy";

const recorder = installMocks();

const K = {
  sts: "kubernetes:apps/v1:StatefulSet",
  cron: "kubernetes:batch/v1:CronJob",
  secret: "kubernetes:core/v1:Secret",
  netpol: "kubernetes:networking.k8s.io/v1:NetworkPolicy",
  csr: "tls:index/certRequest:CertRequest",
  leaf: "tls:index/locallySignedCert:LocallySignedCert",
};
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const inputs = (r: RecordedResource) => r.inputs as Obj;
const byObjectName = (type: string, name: string) => {
  const found = recorder.ofType(type).filter((r) => inputs(r).metadata?.name === name);
  expect(found, `${type} ${name}`).toHaveLength(1);
  return found[0];
};

const CREDENTIALS = { accessKeyId: "TEST-ONLY-AKID", secretAccessKey: "TEST-ONLY-secret-key" };
const backup = (s3: Partial<EtcdBackupSpec["store"]["s3"]> = {}): EtcdBackupSpec => ({
  schedule: "15 */6 * * *",
  retention: { count: 10, maxAge: "72h" },
  store: { s3: { bucket: "kok-backups", prefix: "team-a/prod", endpoint: "https://s3.eu-west-1.amazonaws.com", region: "eu-west-1", credentialsSecretRef: { name: "store" }, ...s3 } },
});
const withBackup = (spec: ClusterSpec, extra: Partial<ClusterSpec["etcd"]> = {}): ClusterSpec => ({ ...spec, etcd: { ...spec.etcd, backup: backup(), ...extra } });

beforeEach(() => recorder.reset());

describe("EtcdBackup in a ControlPlane", () => {
  it("renders the CronJob the operator reads, with the exact kok etcd backup command", async () => {
    await deploy("prod-a", {
      spec: withBackup(standardSpec()),
      namespace: "kok-team-a-prod-a-0123456789",
      etcdBackup: { credentials: CREDENTIALS, image: "registry.example.com/kok/operator:9.9.9", clusterRef: "team-a/prod-a" },
    });
    const cron = inputs(byObjectName(K.cron, "prod-a-etcd-backup"));
    expect(cron.metadata.namespace).toBe("kok-team-a-prod-a-0123456789");
    expect(cron.metadata.labels["app.kubernetes.io/component"]).toBe("etcd-backup");
    expect(cron.spec).toMatchObject({ schedule: "15 */6 * * *", timeZone: "Etc/UTC", concurrencyPolicy: "Forbid", successfulJobsHistoryLimit: 3, failedJobsHistoryLimit: 3 });
    const job = cron.spec.jobTemplate.spec;
    expect(cron.spec.jobTemplate.metadata.labels["app.kubernetes.io/component"]).toBe("etcd-backup");
    expect(job.template.metadata.labels).toMatchObject({ "app.kubernetes.io/component": "etcd-backup", "kubeonkube.io/cluster": "prod-a" });
    const pod = job.template.spec;
    expect(pod.restartPolicy).toBe("Never");
    const [container] = pod.containers;
    expect(container.image).toBe("registry.example.com/kok/operator:9.9.9");
    expect(container.command).toBeUndefined();
    expect(container.args).toEqual([
      "etcd",
      "backup",
      "--cluster=team-a/prod-a",
      "--endpoints=https://prod-a-etcd-client.kok-team-a-prod-a-0123456789.svc:2379",
      "--cacert=/etc/kube-on-kube/etcd-backup/ca.crt",
      "--cert=/etc/kube-on-kube/etcd-backup/tls.crt",
      "--key=/etc/kube-on-kube/etcd-backup/tls.key",
      "--s3-endpoint=https://s3.eu-west-1.amazonaws.com",
      "--region=eu-west-1",
      "--bucket=kok-backups",
      "--prefix=team-a/prod",
      "--keep=10",
      "--max-age=72h",
      "--work-dir=/var/lib/kube-on-kube/etcd-backup",
      "--result-file=/dev/termination-log",
    ]);
    expect(container.terminationMessagePath).toBe("/dev/termination-log");
    expect(container.env.filter((e: Obj) => e.name.startsWith("AWS_"))).toEqual([
      { name: "AWS_ACCESS_KEY_ID", valueFrom: { secretKeyRef: { name: "prod-a-etcd-backup-store", key: "accessKeyId" } } },
      { name: "AWS_SECRET_ACCESS_KEY", valueFrom: { secretKeyRef: { name: "prod-a-etcd-backup-store", key: "secretAccessKey" } } },
    ]);
    // The masters' placement, without their anti-affinity against each other.
    expect(pod.nodeSelector).toEqual(standardSpec().masterNodeSelector);
    expect(pod.tolerations).toEqual(standardSpec().masterTolerations);
    expect(pod.affinity).toBeUndefined();
  });

  it("runs a hardened Pod: non-root, read-only root, no token, the work dir an emptyDir", async () => {
    await deploy("prod-a", { spec: withBackup(minimalSpec()), etcdBackup: { credentials: CREDENTIALS } });
    const pod = inputs(byObjectName(K.cron, "prod-a-etcd-backup")).spec.jobTemplate.spec.template.spec;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.enableServiceLinks).toBe(false);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    const [container] = pod.containers;
    expect(container.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
    const work = pod.volumes.find((v: Obj) => v.name === "work");
    expect(work.emptyDir.sizeLimit).toBeDefined();
    expect(container.volumeMounts).toContainEqual({ name: "work", mountPath: "/var/lib/kube-on-kube/etcd-backup" });
    expect(container.volumeMounts).toContainEqual({ name: "client", mountPath: "/etc/kube-on-kube/etcd-backup", readOnly: true });
    expect(pod.volumes.find((v: Obj) => v.name === "client").secret.secretName).toBe("prod-a-etcd-backup-client");
    expect(container.image).toBe(defaultBackupImage());
    expect(defaultBackupImage()).toMatch(/^docker\.io\/kube-on-kube\/operator:\d+\.\d+\.\d+/);
  });

  it("issues a client leaf of the etcd CA and keeps both Secrets secret", async () => {
    await deploy("prod-a", { spec: withBackup(minimalSpec()), etcdBackup: { credentials: CREDENTIALS } });
    const csr = inputs(recorder.named("prod-a-pki-etcd-backup-client-csr"));
    expect(csr.subject.commonName).toBe("kube-on-kube-etcd-backup");
    const leaf = inputs(recorder.named("prod-a-pki-etcd-backup-client"));
    expect(leaf.allowedUses).toContain("client_auth");
    expect(leaf.allowedUses).not.toContain("server_auth");
    expect(String(plain(leaf.caCertPem))).toContain("mock-prod-a-pki-etcd-ca");

    const client = inputs(byObjectName(K.secret, "prod-a-etcd-backup-client"));
    expect(client.type).toBe("kubernetes.io/tls");
    expect(isSecretInput(client.stringData)).toBe(true);
    expect(Object.keys(plain<Obj>(client.stringData)).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    expect(plain<Obj>(client.stringData)["tls.crt"]).toContain("mock-prod-a-pki-etcd-backup-client");

    const store = inputs(byObjectName(K.secret, "prod-a-etcd-backup-store"));
    expect(isSecretInput(store.stringData)).toBe(true);
    expect(plain(store.stringData)).toEqual(CREDENTIALS);
    // The credentials appear nowhere else, in clear: not in the CronJob, not in any other object.
    for (const r of recorder.resources.filter((x) => x !== byObjectName(K.secret, "prod-a-etcd-backup-store"))) {
      expect(JSON.stringify(r.inputs), r.name).not.toContain("TEST-ONLY");
    }
  });

  it("lets the backup Pod reach etcd's client port, DNS and the store's port only", async () => {
    await deploy("prod-a", { spec: withBackup(minimalSpec()), etcdBackup: { credentials: CREDENTIALS } });
    const policy = inputs(byObjectName(K.netpol, "prod-a-etcd-backup")).spec;
    expect(policy.podSelector.matchLabels).toEqual({ "kubeonkube.io/cluster": "prod-a", "app.kubernetes.io/component": "etcd-backup" });
    expect(policy.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(policy.ingress).toBeUndefined();
    expect(policy.egress).toEqual([
      { to: [{ podSelector: { matchLabels: { "kubeonkube.io/cluster": "prod-a", "kubeonkube.io/component": "etcd" } } }], ports: [{ protocol: "TCP", port: 2379 }] },
      { ports: [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 53 }] },
      {
        to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["169.254.0.0/16"] } }, { ipBlock: { cidr: "::/0", except: ["fe80::/10"] } }],
        ports: [{ protocol: "TCP", port: 443 }],
      },
    ]);
    expect(storeIpBlocks("http://10.88.0.1:9000")).toEqual([{ cidr: "10.88.0.1/32" }]);
    expect(storeIpBlocks("https://[2001:db8::5]:9000")).toEqual([{ cidr: "2001:db8::5/128" }]);
  });

  it("keeps the CronJob's name within the 52 characters Kubernetes allows (its Jobs append a suffix), for the longest cluster name", () => {
    const names = objectNames("c".repeat(MAX_CLUSTER_NAME_LENGTH));
    expect(names.etcdBackup.length).toBeLessThanOrEqual(52);
    expect(names.etcdBackupClient.length).toBeLessThanOrEqual(253);
    expect(names.etcdBackupStore.length).toBeLessThanOrEqual(253);
  });

  it("adds nothing to a cluster without backups", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    expect(recorder.ofType(K.cron)).toHaveLength(0);
    expect(recorder.resources.filter((r) => r.name.includes("backup"))).toEqual([]);
    expect(inputs(byObjectName(K.sts, "prod-a-etcd")).spec.template.spec.initContainers).toBeUndefined();
  });

  it("refuses a spec with backups but no credentials, before registering anything", () => {
    expect(() => new ControlPlane("prod-a", { spec: withBackup(minimalSpec()) })).toThrow(SpecValidationError);
    expect(() => new ControlPlane("prod-a", { spec: withBackup(minimalSpec()) })).toThrow(/etcdBackup\.credentials/);
    expect(() => new ControlPlane("prod-a", { spec: withBackup(minimalSpec()), etcdBackup: { credentials: CREDENTIALS, image: "Not An Image", clusterRef: "x" } })).toThrow(
      /etcdBackup\.image[\s\S]*etcdBackup\.clusterRef/,
    );
    expect(recorder.resources).toEqual([]);
  });
});

describe("restore init container", () => {
  it("runs kok etcd restore with the member's own identity flags, before etcd, with the store's credentials", async () => {
    const spec = withBackup(standardSpec(), { restore: { snapshot: "s3://kok-backups/team-a/old/2026-12-04T06-00-00Z.db" } });
    await deploy("prod-a", { spec, namespace: "kok-prod-a", etcdBackup: { credentials: CREDENTIALS, image: "registry.example.com/kok/operator:9.9.9" } });
    const sts = byObjectName(K.sts, "prod-a-etcd");
    const pod = inputs(sts).spec.template.spec;
    expect(pod.initContainers).toHaveLength(1);
    const [restore] = pod.initContainers;
    expect(restore.image).toBe("registry.example.com/kok/operator:9.9.9");
    // The member's flags as etcd gets them: the restored directory and membership are the ones etcd opens.
    const ctx = { name: "prod-a", namespace: "kok-prod-a", spec: resolveClusterSpec(spec), metaClusterDomain: "cluster.local" };
    const memberFlag = (flag: string) => etcdFlags(ctx).find((f) => f.startsWith(`--${flag}=`));
    expect(restore.args).toEqual([
      "etcd",
      "restore",
      "--snapshot=s3://kok-backups/team-a/old/2026-12-04T06-00-00Z.db",
      "--s3-endpoint=https://s3.eu-west-1.amazonaws.com",
      "--region=eu-west-1",
      memberFlag("data-dir"),
      memberFlag("name"),
      // Every member of the spec: a restore creates the cluster (the membership ConfigMap is for members that join later).
      `--initial-cluster=${etcdInitialCluster(ctx)}`,
      memberFlag("initial-cluster-token"),
      memberFlag("initial-advertise-peer-urls"),
    ]);
    expect(restore.args).toContain("--data-dir=/var/lib/etcd/$(POD_NAME)");
    expect(restore.args).toContain("--name=$(POD_NAME)");
    expect(restore.env.map((e: Obj) => e.name)).toEqual(["POD_NAME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "TMPDIR"]);
    // ETCD_INITIAL_CLUSTER_STATE: a member added later joins the members instead of restoring the snapshot.
    expect(restore.envFrom).toEqual([{ configMapRef: { name: "prod-a-etcd-membership" } }]);
    const etcdMount = pod.containers[0].volumeMounts.find((m: Obj) => m.mountPath === "/var/lib/etcd");
    expect(restore.volumeMounts).toContainEqual({ name: etcdMount.name, mountPath: "/var/lib/etcd" });
    expect(restore.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true });
    // The members start only once the credentials they restore with exist.
    expect(recorder.named("prod-a-etcd").dependsOn).toContain("prod-a-etcd-backup-store");
  });
});
