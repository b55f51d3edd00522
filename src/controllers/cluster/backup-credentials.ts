/**
 * The etcd backup store's credentials of a Cluster, for its stack: the operator reads the Secret
 * `spec.etcd.backup.store.s3.credentialsSecretRef` names, in the Cluster's own namespace and
 * nowhere else (the reference has no namespace field: a tenant can only point at its own
 * Secrets), and hands the two keys to the program as Pulumi secrets. The stack copies them to
 * `<cluster>-etcd-backup-store` in the masters' namespace, where the backup job runs; the engine
 * keeps them encrypted in the state. Errors name the field, the Secret and the key, never a value.
 */
import * as pulumi from "@pulumi/pulumi";
import { BACKUP_STORE_SECRET_KEYS, type ClusterObject } from "../../api/v1alpha1";
import type { ControlPlaneArgs } from "../../components/control-plane";

/** A Secret's data, decoded; undefined when the Secret does not exist. */
export type SecretReader = (namespace: string, name: string) => Promise<Record<string, string> | undefined>;

const FIELD = "spec.etcd.backup.store.s3.credentialsSecretRef";

/**
 * What the cluster program needs for a Cluster with backups (ControlPlaneArgs.etcdBackup), or
 * undefined for one without. Throws, naming the Secret, when it or one of its keys is missing.
 */
export async function etcdBackupProgramArgs(cluster: Pick<ClusterObject, "metadata" | "spec">, readSecret: SecretReader | undefined, image: string | undefined): Promise<ControlPlaneArgs["etcdBackup"]> {
  const ref = cluster.spec.etcd?.backup?.store?.s3?.credentialsSecretRef;
  if (!ref) return undefined;
  const { namespace, name } = cluster.metadata;
  if (!readSecret) throw new Error(`${FIELD}: this operator cannot read Secrets, so Cluster ${namespace}/${name} cannot have backups`);
  const data = await readSecret(namespace, ref.name);
  if (!data) throw new Error(`${FIELD}: Secret ${namespace}/${ref.name} not found; create it with the keys ${Object.values(BACKUP_STORE_SECRET_KEYS).join(" and ")}`);
  const missing = Object.values(BACKUP_STORE_SECRET_KEYS).filter((key) => !data[key]);
  if (missing.length) throw new Error(`${FIELD}: Secret ${namespace}/${ref.name} has no ${missing.join(" and no ")}`);
  return {
    credentials: {
      accessKeyId: pulumi.secret(data[BACKUP_STORE_SECRET_KEYS.accessKeyId]),
      secretAccessKey: pulumi.secret(data[BACKUP_STORE_SECRET_KEYS.secretAccessKey]),
    },
    image,
    clusterRef: `${namespace}/${name}`,
  };
}
