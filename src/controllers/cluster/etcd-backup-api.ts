/**
 * The meta-cluster side of the etcd backup check (etcd-backup-check.ts): the stack's backup
 * CronJob, the Jobs and their Pods in a masters' namespace, one list call each; the on-demand Job
 * created and each finished Job annotated as reported. RBAC: src/operator/rbac.ts (batch cronjobs
 * and jobs, Pods read), writes confined to masters' namespaces by operator-admission-policy.ts.
 * Its writes go through `gate` (the operator's write-gate.ts: none once this replica's term ended).
 */
import * as k8s from "@kubernetes/client-node";
import { isConflict, isNotFound } from "../../runtime/api-errors";
import type { EtcdBackupApi } from "./etcd-backup-check";
import { BACKUP_REPORTED_ANNOTATION, JOB_NAME_LABEL } from "./etcd-backups";

export class KubeEtcdBackupApi implements EtcdBackupApi {
  private readonly batch: k8s.BatchV1Api;
  private readonly core: k8s.CoreV1Api;

  constructor(kubeConfig: k8s.KubeConfig, gate: <T extends object>(api: T, what: string) => T = (api) => api) {
    this.batch = gate(kubeConfig.makeApiClient(k8s.BatchV1Api), "BatchV1Api");
    this.core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  }

  async cronJob(namespace: string, name: string): Promise<k8s.V1CronJob | undefined> {
    try {
      return await this.batch.readNamespacedCronJob({ namespace, name });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async jobs(namespace: string): Promise<k8s.V1Job[]> {
    return (await this.batch.listNamespacedJob({ namespace })).items;
  }

  async jobPods(namespace: string): Promise<k8s.V1Pod[]> {
    return (await this.core.listNamespacedPod({ namespace, labelSelector: JOB_NAME_LABEL })).items;
  }

  async createJob(job: k8s.V1Job): Promise<"created" | "exists"> {
    return createJobOnce(this.batch, job);
  }

  async markReported(namespace: string, name: string): Promise<void> {
    try {
      await this.batch.patchNamespacedJob(
        { namespace, name, body: { metadata: { annotations: { [BACKUP_REPORTED_ANNOTATION]: "true" } } } },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
    } catch (error) {
      // Removed by the CronJob's history limit meanwhile: nothing left to tell twice.
      if (!isNotFound(error)) throw error;
    }
  }
}

/**
 * Creates a Job whose name says which step it is: a 409 AlreadyExists is the same step's Job,
 * created before a restart, not an error (the backup-now token's, a membership step's).
 */
export async function createJobOnce(batch: Pick<k8s.BatchV1Api, "createNamespacedJob">, job: k8s.V1Job): Promise<"created" | "exists"> {
  try {
    await batch.createNamespacedJob({ namespace: job.metadata!.namespace!, body: job });
    return "created";
  } catch (error) {
    if (isConflict(error)) return "exists";
    throw error;
  }
}
