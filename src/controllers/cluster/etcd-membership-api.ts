/**
 * The meta-cluster side of the etcd membership check (etcd-membership-check.ts): reads of the etcd
 * StatefulSet, the membership ConfigMap, the members' Pods and PVCs and the membership Jobs; writes
 * of a Job, and of a lost member's Pod and PVC (deleted). RBAC: batch jobs create/list, Pods and
 * PVCs list/delete, StatefulSets and ConfigMaps get in masters' namespaces (src/operator/rbac.ts).
 * Its writes go through `gate` (the operator's write-gate.ts: none once this replica's term ended).
 */
import * as k8s from "@kubernetes/client-node";
import { isNotFound } from "../../runtime/api-errors";
import { selectorLabels } from "../../components/cluster-context";
import { createJobOnce } from "./etcd-backup-api";
import type { EtcdMembershipApi } from "./etcd-membership-check";

const notFoundIsUndefined = async <T>(read: () => Promise<T>): Promise<T | undefined> => {
  try {
    return await read();
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
};

export class KubeEtcdMembershipApi implements EtcdMembershipApi {
  private readonly batch: k8s.BatchV1Api;
  private readonly core: k8s.CoreV1Api;
  private readonly coreWrites: k8s.CoreV1Api;
  private readonly apps: k8s.AppsV1Api;

  constructor(kubeConfig: k8s.KubeConfig, gate: <T extends object>(api: T, what: string) => T = (api) => api) {
    this.batch = gate(kubeConfig.makeApiClient(k8s.BatchV1Api), "BatchV1Api");
    this.core = kubeConfig.makeApiClient(k8s.CoreV1Api);
    this.coreWrites = gate(kubeConfig.makeApiClient(k8s.CoreV1Api), "CoreV1Api");
    this.apps = kubeConfig.makeApiClient(k8s.AppsV1Api);
  }

  statefulSet(namespace: string, name: string) {
    return notFoundIsUndefined(() => this.apps.readNamespacedStatefulSet({ namespace, name }));
  }

  configMap(namespace: string, name: string) {
    return notFoundIsUndefined(() => this.core.readNamespacedConfigMap({ namespace, name }));
  }

  private selector(cluster: string): string {
    return Object.entries(selectorLabels(cluster, "etcd")).map(([k, v]) => `${k}=${v}`).join(",");
  }

  async memberPods(namespace: string, cluster: string) {
    return (await this.core.listNamespacedPod({ namespace, labelSelector: this.selector(cluster) })).items;
  }

  async memberClaims(namespace: string, cluster: string) {
    // The claim template's labels are the etcd component's (src/components/etcd.ts).
    return (await this.core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: this.selector(cluster) })).items;
  }

  async jobs(namespace: string, labelSelector: string) {
    return (await this.batch.listNamespacedJob({ namespace, labelSelector })).items;
  }

  async jobPods(namespace: string, labelSelector: string) {
    return (await this.core.listNamespacedPod({ namespace, labelSelector })).items;
  }

  async createJob(job: k8s.V1Job): Promise<"created" | "exists"> {
    return createJobOnce(this.batch, job);
  }

  async wipeMember(namespace: string, pod: string, claim: string | undefined): Promise<void> {
    // The claim first: it is kept until the Pod is gone (pvc-protection), then the StatefulSet
    // makes the Pod again with a new, empty one.
    if (claim) await notFoundIsUndefined(() => this.coreWrites.deleteNamespacedPersistentVolumeClaim({ namespace, name: claim }));
    await notFoundIsUndefined(() => this.coreWrites.deleteNamespacedPod({ namespace, name: pod }));
  }
}
