/**
 * EtcdBackup: the scheduled snapshots of one business cluster's etcd (spec.etcd.backup), as
 * objects in the masters' namespace that the operator trusts (docs/backups.md):
 *
 * - CronJob `<c>-etcd-backup` (label app.kubernetes.io/component=etcd-backup): one Pod at a time
 *   (concurrencyPolicy Forbid), schedule in UTC, three succeeded and three failed Jobs kept. Its
 *   Pod runs the operator image's `kok etcd backup` with an etcd client certificate, writes the
 *   snapshot to an emptyDir, uploads it, prunes, and leaves one JSON line in its termination
 *   message, which the operator reads for `status.etcd.lastBackup`. The operator creates the
 *   on-demand Jobs from this CronJob's jobTemplate, so both kinds run the same Pod.
 * - Secret `<c>-etcd-backup-client` (tls.crt, tls.key, ca.crt): a client leaf of the etcd CA
 *   (CN kube-on-kube-etcd-backup), so the job never holds a member's server or peer key.
 * - Secret `<c>-etcd-backup-store` (accessKeyId, secretAccessKey): the stack's copy of the
 *   tenant's Secret (the operator reads it in the Cluster's namespace and passes it in as a
 *   secret); the job's Pod lives in the masters' namespace and cannot read the tenant's.
 * - NetworkPolicy `<c>-etcd-backup`: the Pod's only egress is etcd's client port, DNS and the
 *   store's port (to the store's address when the endpoint is one; otherwise any address but
 *   link-local). The endpoint itself passed the admin policy's allowedBackupEndpoints.
 *
 * The Pod is "restricted" (non-root, read-only root, no capabilities), mounts no ServiceAccount
 * token, and runs on the masters' nodes.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  BACKUP_STORE_SECRET_KEYS,
  ETCD_BACKUP_COMPONENT_LABEL,
  isIP,
  parseBackupEndpoint,
  type ResolvedEtcdBackup,
} from "../api/v1alpha1";
import { objectNames, selectorLabels, type ClusterContext } from "./cluster-context";
import { ETCD_CLIENT_PORT } from "./etcd";
import { CHECKSUM_ANNOTATION, secretChecksum } from "./master-workload";
import type { PemPair } from "./pki";
import { MASTER_CONTAINER_SECURITY_CONTEXT, MASTER_POD_SECURITY_CONTEXT } from "./pod-security";
import { componentType } from "./type-tokens";

export { BACKUP_IMAGE_REPOSITORY, defaultBackupImage } from "./backup-image";

export interface EtcdBackupArgs {
  readonly cluster: ClusterContext;
  readonly backup: ResolvedEtcdBackup;
  /** The image with `kok` as its entrypoint, etcdctl and etcdutl: the operator's. */
  readonly image: string;
  /** `<namespace>/<name>` of the Cluster, written into each snapshot's sidecar. */
  readonly clusterRef: string;
  readonly client: { readonly caCertPem: pulumi.Input<string>; readonly cert: PemPair };
  readonly credentials: BackupStoreCredentials;
}

export interface BackupStoreCredentials {
  readonly accessKeyId: pulumi.Input<string>;
  readonly secretAccessKey: pulumi.Input<string>;
}

/** Where the backup Pod finds its client certificate and keeps the snapshot while it uploads it. */
export const BACKUP_CLIENT_DIR = "/etc/kube-on-kube/etcd-backup";
export const BACKUP_WORK_DIR = "/var/lib/kube-on-kube/etcd-backup";
/** A snapshot is about etcd's database size; etcd refuses writes past its quota (8 GiB at most). */
const WORK_DIR_SIZE_LIMIT = "10Gi";
const TERMINATION_LOG = "/dev/termination-log";
/** A hung backup (an unreachable store, a stalled upload) ends, so the next schedule can run. */
const JOB_DEADLINE_SECONDS = 3600;
/** On-demand Jobs have no CronJob history limit to remove them; their result is in status by then. */
const JOB_TTL_SECONDS = 7 * 86_400;

/** The labels of the CronJob, its Jobs and their Pods. */
export function etcdBackupLabels(cluster: string): Record<string, string> {
  return {
    "kubeonkube.io/cluster": cluster,
    [ETCD_BACKUP_COMPONENT_LABEL.key]: ETCD_BACKUP_COMPONENT_LABEL.value,
    "app.kubernetes.io/part-of": "kube-on-kube",
    "app.kubernetes.io/managed-by": "pulumi",
  };
}

/** The env of a container that talks to the store: the keys of the stack's copy of the credentials. */
export function storeCredentialEnv(cluster: string): k8s.types.input.core.v1.EnvVar[] {
  const secret = objectNames(cluster).etcdBackupStore;
  return [
    { name: "AWS_ACCESS_KEY_ID", valueFrom: { secretKeyRef: { name: secret, key: BACKUP_STORE_SECRET_KEYS.accessKeyId } } },
    { name: "AWS_SECRET_ACCESS_KEY", valueFrom: { secretKeyRef: { name: secret, key: BACKUP_STORE_SECRET_KEYS.secretAccessKey } } },
  ];
}

/** `kok etcd backup` and its flags, as `--flag=value` so no value is ever read as a flag. */
export function etcdBackupArgs(ctx: ClusterContext, backup: ResolvedEtcdBackup, clusterRef: string): string[] {
  const names = objectNames(ctx.name);
  const s3 = backup.store.s3;
  const flags: [string, string][] = [
    ["cluster", clusterRef],
    ["endpoints", `https://${names.etcdClientService}.${ctx.namespace}.svc:${ETCD_CLIENT_PORT}`],
    ["cacert", `${BACKUP_CLIENT_DIR}/ca.crt`],
    ["cert", `${BACKUP_CLIENT_DIR}/tls.crt`],
    ["key", `${BACKUP_CLIENT_DIR}/tls.key`],
    ["s3-endpoint", s3.endpoint],
    ["region", s3.region],
    ["bucket", s3.bucket],
    ["prefix", s3.prefix],
    ["keep", String(backup.retention.count)],
    ["max-age", backup.retention.maxAge],
    ["work-dir", BACKUP_WORK_DIR],
    ["result-file", TERMINATION_LOG],
  ];
  return ["etcd", "backup", ...flags.map(([flag, value]) => `--${flag}=${value}`)];
}

/** The CronJob's spec: what the operator's on-demand Jobs copy too (its jobTemplate). */
export function etcdBackupCronJobSpec(ctx: ClusterContext, args: Pick<EtcdBackupArgs, "backup" | "image" | "clusterRef">, checksum: pulumi.Input<string>): k8s.types.input.batch.v1.CronJobSpec {
  const names = objectNames(ctx.name);
  const labels = etcdBackupLabels(ctx.name);
  const { spec } = ctx;
  return {
    schedule: args.backup.schedule,
    timeZone: "Etc/UTC",
    concurrencyPolicy: "Forbid",
    successfulJobsHistoryLimit: 3,
    failedJobsHistoryLimit: 3,
    // A schedule missed by more than this (operator or controller down) is skipped, not run late in a burst.
    startingDeadlineSeconds: 3600,
    jobTemplate: {
      metadata: { labels },
      spec: {
        // One retry: a snapshot that failed twice needs a person (the condition says why).
        backoffLimit: 1,
        activeDeadlineSeconds: JOB_DEADLINE_SECONDS,
        ttlSecondsAfterFinished: JOB_TTL_SECONDS,
        template: {
          metadata: { labels, annotations: { [CHECKSUM_ANNOTATION]: checksum } },
          spec: {
            // Never: a failed Pod stays with its termination message, the operator's source.
            restartPolicy: "Never",
            enableServiceLinks: false,
            automountServiceAccountToken: false,
            securityContext: MASTER_POD_SECURITY_CONTEXT,
            nodeSelector: Object.keys(spec.masterNodeSelector).length ? spec.masterNodeSelector : undefined,
            tolerations: spec.masterTolerations.length ? spec.masterTolerations : undefined,
            containers: [
              {
                name: "etcd-backup",
                image: args.image,
                // The image's entrypoint is `kok` (src/images/operator.ts).
                args: etcdBackupArgs(ctx, args.backup, args.clusterRef),
                env: [...storeCredentialEnv(ctx.name), { name: "TMPDIR", value: BACKUP_WORK_DIR }],
                resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "1Gi" } },
                securityContext: MASTER_CONTAINER_SECURITY_CONTEXT,
                terminationMessagePath: TERMINATION_LOG,
                terminationMessagePolicy: "File",
                volumeMounts: [
                  { name: "client", mountPath: BACKUP_CLIENT_DIR, readOnly: true },
                  { name: "work", mountPath: BACKUP_WORK_DIR },
                ],
              },
            ],
            volumes: [
              { name: "client", secret: { secretName: names.etcdBackupClient, defaultMode: 0o400 } },
              { name: "work", emptyDir: { sizeLimit: WORK_DIR_SIZE_LIMIT } },
            ],
          },
        },
      },
    },
  };
}

/** The address block(s) the store may be reached at: its own address, or any but link-local. */
export function storeIpBlocks(endpoint: string): k8s.types.input.networking.v1.IPBlock[] {
  const parsed = parseBackupEndpoint(endpoint);
  if ("problem" in parsed) throw new Error(`spec.etcd.backup.store.s3.endpoint: ${parsed.problem}`);
  if (isIP(parsed.host)) return [{ cidr: parsed.host.includes(":") ? `${parsed.host}/128` : `${parsed.host}/32` }];
  // A name: where it resolves is the platform's (allowedBackupEndpoints lists it); the cloud
  // metadata services are link-local, so the Pod can never reach them through this rule.
  return [
    { cidr: "0.0.0.0/0", except: ["169.254.0.0/16"] },
    { cidr: "::/0", except: ["fe80::/10"] },
  ];
}

/** The backup Pod's egress: etcd's client port, DNS, the store's port. Nothing may connect to it. */
export function etcdBackupNetworkPolicySpec(ctx: Pick<ClusterContext, "name">, endpoint: string): k8s.types.input.networking.v1.NetworkPolicySpec {
  const parsed = parseBackupEndpoint(endpoint);
  if ("problem" in parsed) throw new Error(`spec.etcd.backup.store.s3.endpoint: ${parsed.problem}`);
  return {
    podSelector: { matchLabels: { "kubeonkube.io/cluster": ctx.name, [ETCD_BACKUP_COMPONENT_LABEL.key]: ETCD_BACKUP_COMPONENT_LABEL.value } },
    policyTypes: ["Ingress", "Egress"],
    egress: [
      { to: [{ podSelector: { matchLabels: selectorLabels(ctx.name, "etcd") } }], ports: [{ protocol: "TCP", port: ETCD_CLIENT_PORT }] },
      { ports: [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 53 }] },
      { to: storeIpBlocks(endpoint).map((ipBlock) => ({ ipBlock })), ports: [{ protocol: "TCP", port: parsed.port }] },
    ],
  };
}

export class EtcdBackup extends pulumi.ComponentResource {
  readonly cronJob: k8s.batch.v1.CronJob;
  readonly clientSecret: k8s.core.v1.Secret;
  readonly storeSecret: k8s.core.v1.Secret;
  readonly networkPolicy: k8s.networking.v1.NetworkPolicy;

  constructor(name: string, args: EtcdBackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super(componentType("EtcdBackup"), name, {}, opts);
    const ctx = args.cluster;
    const names = objectNames(ctx.name);
    const labels = etcdBackupLabels(ctx.name);
    const child = { parent: this };
    const metadata = (objectName: string) => ({ name: objectName, namespace: ctx.namespace, labels });

    const clientFiles: Record<string, pulumi.Input<string>> = { "ca.crt": args.client.caCertPem, "tls.crt": args.client.cert.certPem, "tls.key": args.client.cert.keyPem };
    this.clientSecret = new k8s.core.v1.Secret(
      `${name}-client`,
      { metadata: metadata(names.etcdBackupClient), type: "kubernetes.io/tls", stringData: pulumi.secret(pulumi.output(clientFiles)) as pulumi.Output<Record<string, string>> },
      child,
    );
    const storeFiles: Record<string, pulumi.Input<string>> = { [BACKUP_STORE_SECRET_KEYS.accessKeyId]: args.credentials.accessKeyId, [BACKUP_STORE_SECRET_KEYS.secretAccessKey]: args.credentials.secretAccessKey };
    this.storeSecret = new k8s.core.v1.Secret(
      `${name}-store`,
      { metadata: metadata(names.etcdBackupStore), type: "Opaque", stringData: pulumi.secret(pulumi.output(storeFiles)) as pulumi.Output<Record<string, string>> },
      child,
    );
    this.networkPolicy = new k8s.networking.v1.NetworkPolicy(
      `${name}-network-policy`,
      { metadata: metadata(names.etcdBackup), spec: etcdBackupNetworkPolicySpec(ctx, args.backup.store.s3.endpoint) },
      child,
    );
    // Renewed client certificates or new store credentials change the Pods of the next Jobs.
    const checksum = secretChecksum({ ...clientFiles, ...storeFiles });
    this.cronJob = new k8s.batch.v1.CronJob(
      `${name}-cronjob`,
      { metadata: metadata(names.etcdBackup), spec: etcdBackupCronJobSpec(ctx, args, checksum) },
      { parent: this, dependsOn: [this.clientSecret, this.storeSecret, this.networkPolicy] },
    );
    this.registerOutputs({});
  }
}
