/**
 * The etcd backup and restore fields of a Cluster (`spec.etcd.backup`, `spec.etcd.restore`,
 * `status.etcd`) and the fixed names around them: the on-demand annotation and the condition.
 * The checks are in etcd-backup-validation.ts; the admin policy's endpoint gate in
 * backup-endpoints.ts. docs/backups.md describes how a backup runs.
 */
import { Type, type Static } from "@sinclair/typebox";
import { EtcdMemberList } from "./etcd-membership";

/** Annotation on a Cluster: a value different from `status.etcd.lastBackupToken` asks for one backup now. */
export const BACKUP_NOW_ANNOTATION = "kubeonkube.io/backup-now";
/** Condition type on a Cluster with `spec.etcd.backup`: True reason Succeeded; False Failed or Late. */
export const ETCD_BACKUP_HEALTHY_CONDITION = "EtcdBackupHealthy";

/** The label (key and value) on the backup CronJob, its Jobs and Pods, in the masters' namespace. */
export const ETCD_BACKUP_COMPONENT_LABEL = { key: "app.kubernetes.io/component", value: "etcd-backup" } as const;
/** Common name of the backup job's etcd client certificate (a leaf of the etcd CA). */
export const ETCD_BACKUP_CLIENT_CN = "kube-on-kube-etcd-backup";

/** The keys of the tenant's store Secret (and of the stack's copy of it in the masters' namespace). */
export const BACKUP_STORE_SECRET_KEYS = { accessKeyId: "accessKeyId", secretAccessKey: "secretAccessKey" } as const;

export const DEFAULT_BACKUP_SCHEDULE = "0 */6 * * *";
export const DEFAULT_BACKUP_RETENTION = { count: 28, maxAge: "168h" } as const;
export const DEFAULT_BACKUP_REGION = "us-east-1";
export const MAX_BACKUP_RETENTION_COUNT = 1000;

/**
 * An S3 bucket name (AWS's rules, the strictest of the S3 implementations): 3 to 63 lowercase
 * letters, digits, dots and hyphens, a letter or digit at each end. "..", IP-shaped names and the
 * reserved prefixes and suffixes are refused by the semantic check.
 */
export const S3_BUCKET_PATTERN = "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$";
/**
 * An object key prefix: `/`-separated words of letters, digits and `._-` (no empty segment, no
 * leading or trailing `/`). It ends up in an argument list and in object keys, never a shell.
 */
export const S3_PREFIX_PATTERN = "^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$";
export const MAX_S3_PREFIX_LENGTH = 512;
/**
 * The S3 endpoint: scheme, host (a DNS name, an IPv4 address or a bracketed IPv6 address) and an
 * optional port; no user info, path, query or fragment (requests are path-style: the bucket is
 * the first path segment).
 */
export const S3_ENDPOINT_PATTERN = "^https?://([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|\\[[0-9a-fA-F:.]+\\])(:[0-9]{1,5})?/?$";
export const S3_REGION_PATTERN = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$";
/** A Go duration as `time.ParseDuration` reads it, without a sign and without µs: `168h`, `90m`, `1h30m`. */
export const GO_DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$";
/** A snapshot location: `s3://<bucket>/<key>`, the key ending in `.db` (as backups are named). */
export const S3_SNAPSHOT_PATTERN = "^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*[.]db$";

export const EtcdBackupS3Store = Type.Object(
  {
    bucket: Type.String({ pattern: S3_BUCKET_PATTERN, minLength: 3, maxLength: 63, description: "The bucket; it must exist." }),
    prefix: Type.String({
      pattern: S3_PREFIX_PATTERN,
      maxLength: MAX_S3_PREFIX_LENGTH,
      description: "Key prefix of this cluster's snapshots (`<prefix>/<UTC time>.db` and a `.json` sidecar); retention prunes only under it.",
    }),
    endpoint: Type.String({
      pattern: S3_ENDPOINT_PATTERN,
      maxLength: 2048,
      description: "The S3 endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com (path-style requests). Only a host the admin policy's allowedBackupEndpoints lists; https unless that entry allows plain http.",
    }),
    region: Type.Optional(Type.String({ pattern: S3_REGION_PATTERN, maxLength: 64, default: DEFAULT_BACKUP_REGION, description: "The signing region." })),
    credentialsSecretRef: Type.Object(
      { name: Type.String({ minLength: 1, maxLength: 253, description: "A Secret's name in the Cluster's namespace." }) },
      {
        additionalProperties: false,
        description: "A Secret in the Cluster's namespace with the keys accessKeyId and secretAccessKey. The operator copies it to the masters' namespace for the backup job.",
      },
    ),
  },
  { additionalProperties: false },
);
export type EtcdBackupS3Store = Static<typeof EtcdBackupS3Store>;

export const EtcdBackupStore = Type.Object(
  { s3: EtcdBackupS3Store },
  { additionalProperties: false, description: "Where snapshots go (and where a restore reads them)." },
);
export type EtcdBackupStore = Static<typeof EtcdBackupStore>;

export const EtcdBackupRetention = Type.Object(
  {
    count: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_BACKUP_RETENTION_COUNT, default: DEFAULT_BACKUP_RETENTION.count, description: "Snapshots kept at most (the newest)." }),
    ),
    maxAge: Type.Optional(
      Type.String({
        pattern: GO_DURATION_PATTERN,
        maxLength: 32,
        default: DEFAULT_BACKUP_RETENTION.maxAge,
        description: "Older snapshots are deleted (a Go duration, e.g. 168h). The snapshot just taken is never deleted.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type EtcdBackupRetention = Static<typeof EtcdBackupRetention>;

export const EtcdBackupSpec = Type.Object(
  {
    schedule: Type.Optional(
      Type.String({ maxLength: 128, default: DEFAULT_BACKUP_SCHEDULE, description: "Cron schedule (5 fields, UTC) of the backup CronJob in the masters' namespace." }),
    ),
    retention: Type.Optional(EtcdBackupRetention),
    store: EtcdBackupStore,
  },
  { additionalProperties: false, description: "Scheduled snapshots of etcd to an S3 store; `kubeonkube.io/backup-now: <new token>` asks for one now." },
);
export type EtcdBackupSpec = Static<typeof EtcdBackupSpec>;

export const EtcdRestoreSpec = Type.Object(
  {
    snapshot: Type.String({
      pattern: S3_SNAPSHOT_PATTERN,
      maxLength: 1100,
      description: "s3://<bucket>/<key>.db in spec.etcd.backup.store's bucket (read with its credentials); its .json sidecar's sha256 is verified.",
    }),
  },
  { additionalProperties: false, description: "Only at creation (immutable): every member starts from this snapshot, with a new cluster ID. Requires spec.etcd.backup." },
);
export type EtcdRestoreSpec = Static<typeof EtcdRestoreSpec>;

/** One backup as the backup job reported it (its termination message). */
export const EtcdBackupRecord = Type.Object(
  {
    time: Type.String({ format: "date-time" }),
    location: Type.String({ description: "s3://<bucket>/<key>.db" }),
    revision: Type.Integer({ minimum: 0 }),
    size: Type.Integer({ minimum: 0, description: "Bytes." }),
  },
  { additionalProperties: false },
);
export type EtcdBackupRecord = Static<typeof EtcdBackupRecord>;

export const EtcdStatus = Type.Object(
  {
    version: Type.Optional(
      Type.String({
        maxLength: 64,
        description: "The etcd version the members run, as of the last successful update. A change of spec.etcd.version that goes back, skips a minor, or would restart a single emptyDir member empty is refused against it.",
      }),
    ),
    members: Type.Optional(Type.Integer({ minimum: 0, description: "Voting etcd members, as last observed." })),
    memberList: Type.Optional(EtcdMemberList),
    membershipJob: Type.Optional(Type.String({ maxLength: 63, description: "The last membership Job whose result was read (src/controllers/cluster/etcd-membership.ts)." })),
    lastBackup: Type.Optional(EtcdBackupRecord),
    lastBackupToken: Type.Optional(Type.String({ maxLength: 256, description: "The last kubeonkube.io/backup-now value handled." })),
  },
  { additionalProperties: false },
);
export type EtcdStatus = Static<typeof EtcdStatus>;
