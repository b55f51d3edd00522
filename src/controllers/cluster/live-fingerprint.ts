/**
 * The cheap half of a Cluster's drift check: a fingerprint of the live objects its stack manages.
 *
 * A full drift check is `preview --refresh`: a Pulumi CLI, a language host and the providers, a few
 * CPU seconds per Cluster. Most checks find nothing, so the reconciler first compares this
 * fingerprint with the one taken just before the last check that proved the stack in sync. Every
 * write to a Kubernetes object moves its `resourceVersion`, and a deleted and re-created object has
 * a new `uid`, so an unchanged fingerprint means no object of the stack was touched since — nothing
 * to preview. A changed one (a scaled Deployment, an edited Secret, a removed label, a deleted
 * Service, or only a status write after a Pod restart) sends the check to the full preview, which
 * decides whether it is drift. A false alarm costs one preview; a miss is impossible for the objects
 * read here, and the reconciler still runs the full preview on a period for everything else.
 *
 * Which objects: those the cluster program creates, i.e. the masters' Namespace, every object of
 * MASTER_OBJECT_KINDS in it labelled `kubeonkube.io/cluster=<name>` (test/components checks the
 * program creates no other kind and no unlabelled object), and the admin kubeconfig copy next to the
 * Cluster. Only metadata enters the fingerprint; Secret contents are never kept or logged.
 */
import { createHash } from "node:crypto";
import * as k8s from "@kubernetes/client-node";
import { isNotFound } from "../../runtime/api-errors";

/** Pulumi types of the namespaced objects the cluster program creates for the masters. */
export const MASTER_OBJECT_TYPES = [
  "kubernetes:apps/v1:Deployment",
  "kubernetes:apps/v1:StatefulSet",
  "kubernetes:core/v1:Service",
  "kubernetes:core/v1:Secret",
  "kubernetes:core/v1:ConfigMap",
  "kubernetes:policy/v1:PodDisruptionBudget",
  "kubernetes:networking.k8s.io/v1:NetworkPolicy",
] as const;

/** Label every master object carries, valued with the Cluster's name (componentLabels). */
export const CLUSTER_LABEL = "kubeonkube.io/cluster";

/** What the fingerprint is made of: identity and write counter of one live object. */
export interface LiveObjectMeta {
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly uid?: string;
  readonly resourceVersion?: string;
}

/** Where a Cluster's objects live: the masters' namespace and the optional admin kubeconfig copy. */
export interface ClusterObjectsLocation {
  /** The Cluster's name, the value of CLUSTER_LABEL on its master objects. */
  readonly cluster: string;
  readonly mastersNamespace: string;
  readonly adminKubeconfigCopy?: { readonly namespace: string; readonly name: string };
}

/** One order-independent hash of the objects' identities and resourceVersions. */
export function fingerprintOf(objects: readonly LiveObjectMeta[]): string {
  const lines = objects.map((o) => `${o.kind}/${o.namespace ?? ""}/${o.name} ${o.uid ?? ""} ${o.resourceVersion ?? ""}`).sort();
  return createHash("sha256").update(lines.join("\n")).digest("hex");
}

type Lister = (namespace: string, labelSelector: string) => Promise<{ items: k8s.KubernetesObject[] }>;

/**
 * Reads the live objects of a Cluster from the meta-cluster: one list per kind in the masters'
 * namespace (label-selected), a GET of the Namespace and of the admin kubeconfig copy. A missing
 * object is simply absent from the result (and so changes the fingerprint).
 */
export class LiveClusterObjects {
  private readonly listers: ReadonlyArray<readonly [string, Lister]>;
  private readonly core: k8s.CoreV1Api;

  constructor(kubeConfig: k8s.KubeConfig) {
    const apps = kubeConfig.makeApiClient(k8s.AppsV1Api);
    const core = (this.core = kubeConfig.makeApiClient(k8s.CoreV1Api));
    const policy = kubeConfig.makeApiClient(k8s.PolicyV1Api);
    const networking = kubeConfig.makeApiClient(k8s.NetworkingV1Api);
    const byKind: Record<(typeof MASTER_OBJECT_TYPES)[number], Lister> = {
      "kubernetes:apps/v1:Deployment": (namespace, labelSelector) => apps.listNamespacedDeployment({ namespace, labelSelector }),
      "kubernetes:apps/v1:StatefulSet": (namespace, labelSelector) => apps.listNamespacedStatefulSet({ namespace, labelSelector }),
      "kubernetes:core/v1:Service": (namespace, labelSelector) => core.listNamespacedService({ namespace, labelSelector }),
      "kubernetes:core/v1:Secret": (namespace, labelSelector) => core.listNamespacedSecret({ namespace, labelSelector }),
      "kubernetes:core/v1:ConfigMap": (namespace, labelSelector) => core.listNamespacedConfigMap({ namespace, labelSelector }),
      "kubernetes:policy/v1:PodDisruptionBudget": (namespace, labelSelector) => policy.listNamespacedPodDisruptionBudget({ namespace, labelSelector }),
      "kubernetes:networking.k8s.io/v1:NetworkPolicy": (namespace, labelSelector) => networking.listNamespacedNetworkPolicy({ namespace, labelSelector }),
    };
    // "kubernetes:apps/v1:Deployment" → "Deployment", "kubernetes:networking.k8s.io/v1:NetworkPolicy" → "NetworkPolicy"
    this.listers = Object.entries(byKind).map(([type, list]) => [type.slice(type.lastIndexOf(":") + 1), list] as const);
  }

  /** The metadata of every object of the Cluster's stack that exists now. */
  async read(at: ClusterObjectsLocation): Promise<LiveObjectMeta[]> {
    const selector = `${CLUSTER_LABEL}=${at.cluster}`;
    const meta = (kind: string, o: k8s.KubernetesObject): LiveObjectMeta => ({
      kind,
      namespace: o.metadata?.namespace,
      name: o.metadata?.name ?? "",
      uid: o.metadata?.uid,
      resourceVersion: o.metadata?.resourceVersion,
    });
    const orAbsent = async (kind: string, get: () => Promise<k8s.KubernetesObject>): Promise<LiveObjectMeta[]> => {
      try {
        return [meta(kind, await get())];
      } catch (error) {
        if (isNotFound(error)) return [];
        throw error;
      }
    };
    const parts = await Promise.all([
      ...this.listers.map(async ([kind, list]) => (await list(at.mastersNamespace, selector)).items.map((o) => meta(kind, o))),
      orAbsent("Namespace", () => this.core.readNamespace({ name: at.mastersNamespace })),
      at.adminKubeconfigCopy ? orAbsent("Secret", () => this.core.readNamespacedSecret(at.adminKubeconfigCopy!)) : Promise.resolve([]),
    ]);
    return parts.flat();
  }

  /** fingerprintOf(read(at)). */
  async fingerprint(at: ClusterObjectsLocation): Promise<string> {
    return fingerprintOf(await this.read(at));
  }
}
