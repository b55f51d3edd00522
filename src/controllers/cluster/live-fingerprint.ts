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
 *
 * And, for a Cluster whose add-ons are deployed (`location.addons`), the add-on objects in the
 * business cluster: every object of ADDON_OBJECT_TYPES labelled `app.kubernetes.io/part-of=
 * kube-on-kube`, in kube-system or cluster-scoped (ClusterRoles, ClusterRoleBindings). They are read
 * through the admin kubeconfig the stack wrote into the masters' namespace (only the operator's
 * stacks write there; never the tenant's copy), rebuilt from its server, CA and credentials only
 * (trusted-kubeconfig.ts), each read bounded by `businessTimeoutMs`. No Secret of the business
 * cluster is read (the add-ons have none). A business apiserver that does not answer fails the
 * read, and the drift check falls back to the full preview. The same client reads the add-on
 * workloads' status for the AddonsReady condition (addonWorkloads, addons-readiness.ts).
 */
import { createHash } from "node:crypto";
import * as k8s from "@kubernetes/client-node";
import { ADDON_NAMESPACE, PART_OF_LABEL } from "../../components/addons/common";
import { isNotFound } from "../../runtime/api-errors";
import { loadKubeconfig } from "../machine/node-health";
import type { AddonWorkloads } from "./addons-readiness";

export { ADDON_NAMESPACE };

/** Pulumi types of the namespaced objects the cluster program creates for the masters. */
export const MASTER_OBJECT_TYPES = [
  "kubernetes:apps/v1:Deployment",
  "kubernetes:apps/v1:StatefulSet",
  "kubernetes:core/v1:Service",
  "kubernetes:core/v1:Secret",
  "kubernetes:core/v1:ConfigMap",
  "kubernetes:policy/v1:PodDisruptionBudget",
  "kubernetes:networking.k8s.io/v1:NetworkPolicy",
  // Only for a Cluster with spec.etcd.backup (ClusterObjectsLocation.etcdBackup).
  "kubernetes:batch/v1:CronJob",
] as const;

/**
 * Kinds read only where the stack renders them: the etcd backup CronJob, so a Cluster without
 * backups costs no list (and an operator whose RBAC predates backups can still check it).
 */
const ONLY_WITH_BACKUPS = new Set(["CronJob"]);
/**
 * Kinds whose controller writes their status through the object's resourceVersion: their spec's
 * `generation` stands in for it (the CronJob controller records every scheduled run, which would
 * send each Cluster with backups to a full preview after every backup).
 */
const BY_GENERATION = new Set(["CronJob"]);

/** Label every master object carries, valued with the Cluster's name (componentLabels). */
export const CLUSTER_LABEL = "kubeonkube.io/cluster";

/**
 * Pulumi types of the add-on objects the cluster program creates in the business cluster (kube-system
 * and cluster-scoped), all labelled ADDON_LABEL. No Secret among them: none is ever read there.
 */
export const ADDON_OBJECT_TYPES = [
  "kubernetes:apps/v1:DaemonSet",
  "kubernetes:apps/v1:Deployment",
  "kubernetes:core/v1:Service",
  "kubernetes:core/v1:ConfigMap",
  "kubernetes:core/v1:ServiceAccount",
  "kubernetes:policy/v1:PodDisruptionBudget",
  "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
  "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
] as const;

/** Selector of the add-on objects: the label every one of them carries (addonMetadata). */
export const ADDON_LABEL = Object.entries(PART_OF_LABEL)
  .map(([k, v]) => `${k}=${v}`)
  .join(",");

/** Default bound of the whole business-cluster read of one Cluster. */
export const DEFAULT_BUSINESS_TIMEOUT_MS = 10_000;

/** What the fingerprint is made of: identity and write counter of one live object. */
export interface LiveObjectMeta {
  /** "business" for an object of the business cluster; absent for the meta-cluster's. */
  readonly cluster?: "business";
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
  /** The copies of the user kubeconfigs (spec.kubeconfigs) next to the Cluster. */
  readonly userKubeconfigCopies?: readonly { readonly namespace: string; readonly name: string }[];
  /**
   * Set when the stack deploys add-ons into the business cluster: the Secret (in the masters'
   * namespace, written by the stack) whose `key` holds the admin kubeconfig to read them with.
   */
  readonly addons?: { readonly adminKubeconfig: { readonly namespace: string; readonly name: string; readonly key: string } };
  /**
   * Set when the stack renders the etcd backup CronJob (spec.etcd.backup): then the CronJob is read,
   * and the tenant's store Secret the stack copies, so new credentials reach the next update.
   */
  readonly etcdBackup?: { readonly credentials: { readonly namespace: string; readonly name: string } };
}

/** One order-independent hash of the objects' identities and resourceVersions. */
export function fingerprintOf(objects: readonly LiveObjectMeta[]): string {
  const lines = objects.map((o) => `${o.cluster ? `${o.cluster}:` : ""}${o.kind}/${o.namespace ?? ""}/${o.name} ${o.uid ?? ""} ${o.resourceVersion ?? ""}`).sort();
  return createHash("sha256").update(lines.join("\n")).digest("hex");
}

type Lister = (namespace: string, labelSelector: string) => Promise<{ items: k8s.KubernetesObject[] }>;

/** One label-selected list of add-on objects of one kind (namespaced kinds: in ADDON_NAMESPACE). */
export type AddonLister = (labelSelector: string) => Promise<{ items: k8s.KubernetesObject[] }>;

/** "kubernetes:apps/v1:Deployment" → "Deployment". */
const kindOf = (type: string) => type.slice(type.lastIndexOf(":") + 1);

/** The listers of ADDON_OBJECT_TYPES through a client of the business cluster, by kind. */
export function addonListers(business: k8s.KubeConfig): ReadonlyArray<readonly [string, AddonLister]> {
  const apps = business.makeApiClient(k8s.AppsV1Api);
  const core = business.makeApiClient(k8s.CoreV1Api);
  const policy = business.makeApiClient(k8s.PolicyV1Api);
  const rbac = business.makeApiClient(k8s.RbacAuthorizationV1Api);
  const namespace = ADDON_NAMESPACE;
  const byType: Record<(typeof ADDON_OBJECT_TYPES)[number], AddonLister> = {
    "kubernetes:apps/v1:DaemonSet": (labelSelector) => apps.listNamespacedDaemonSet({ namespace, labelSelector }),
    "kubernetes:apps/v1:Deployment": (labelSelector) => apps.listNamespacedDeployment({ namespace, labelSelector }),
    "kubernetes:core/v1:Service": (labelSelector) => core.listNamespacedService({ namespace, labelSelector }),
    "kubernetes:core/v1:ConfigMap": (labelSelector) => core.listNamespacedConfigMap({ namespace, labelSelector }),
    "kubernetes:core/v1:ServiceAccount": (labelSelector) => core.listNamespacedServiceAccount({ namespace, labelSelector }),
    "kubernetes:policy/v1:PodDisruptionBudget": (labelSelector) => policy.listNamespacedPodDisruptionBudget({ namespace, labelSelector }),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole": (labelSelector) => rbac.listClusterRole({ labelSelector }),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": (labelSelector) => rbac.listClusterRoleBinding({ labelSelector }),
  };
  return Object.entries(byType).map(([type, list]) => [kindOf(type), list] as const);
}

type AdminKubeconfigRef = NonNullable<ClusterObjectsLocation["addons"]>["adminKubeconfig"];

/** The metadata of every add-on object that exists now, one list per kind. */
export async function readAddonObjects(listers: ReadonlyArray<readonly [string, AddonLister]>): Promise<LiveObjectMeta[]> {
  const parts = await Promise.all(
    listers.map(async ([kind, list]) =>
      (await list(ADDON_LABEL)).items.map(
        (o): LiveObjectMeta => ({
          cluster: "business",
          kind,
          namespace: o.metadata?.namespace,
          name: o.metadata?.name ?? "",
          uid: o.metadata?.uid,
          resourceVersion: o.metadata?.resourceVersion,
        }),
      ),
    ),
  );
  return parts.flat();
}

/** `kubeConfig`, every request of which is aborted by `signal` (an apiserver that never answers). */
export function abortedBy(kubeConfig: k8s.KubeConfig, signal: AbortSignal): k8s.KubeConfig {
  const apply = kubeConfig.applySecurityAuthentication.bind(kubeConfig);
  kubeConfig.applySecurityAuthentication = async (context) => {
    await apply(context);
    context.setSignal(signal);
  };
  return kubeConfig;
}

export interface LiveClusterObjectsOptions {
  /** Bound of the whole business-cluster read of one Cluster; default DEFAULT_BUSINESS_TIMEOUT_MS. */
  readonly businessTimeoutMs?: number;
  /** How the add-on objects are listed through a business cluster's client; default addonListers (tests). */
  readonly addonListers?: (business: k8s.KubeConfig) => ReadonlyArray<readonly [string, AddonLister]>;
}

/**
 * Reads the live objects of a Cluster from the meta-cluster: one list per kind in the masters'
 * namespace (label-selected), a GET of the Namespace and of the admin kubeconfig copy. A missing
 * object is simply absent from the result (and so changes the fingerprint). With `at.addons`, also
 * the add-on objects from the business cluster (see the top of this file).
 */
export class LiveClusterObjects {
  private readonly listers: ReadonlyArray<readonly [string, Lister]>;
  private readonly core: k8s.CoreV1Api;

  constructor(
    kubeConfig: k8s.KubeConfig,
    private readonly opts: LiveClusterObjectsOptions = {},
  ) {
    const apps = kubeConfig.makeApiClient(k8s.AppsV1Api);
    const core = (this.core = kubeConfig.makeApiClient(k8s.CoreV1Api));
    const policy = kubeConfig.makeApiClient(k8s.PolicyV1Api);
    const networking = kubeConfig.makeApiClient(k8s.NetworkingV1Api);
    const batch = kubeConfig.makeApiClient(k8s.BatchV1Api);
    const byKind: Record<(typeof MASTER_OBJECT_TYPES)[number], Lister> = {
      "kubernetes:apps/v1:Deployment": (namespace, labelSelector) => apps.listNamespacedDeployment({ namespace, labelSelector }),
      "kubernetes:apps/v1:StatefulSet": (namespace, labelSelector) => apps.listNamespacedStatefulSet({ namespace, labelSelector }),
      "kubernetes:core/v1:Service": (namespace, labelSelector) => core.listNamespacedService({ namespace, labelSelector }),
      "kubernetes:core/v1:Secret": (namespace, labelSelector) => core.listNamespacedSecret({ namespace, labelSelector }),
      "kubernetes:core/v1:ConfigMap": (namespace, labelSelector) => core.listNamespacedConfigMap({ namespace, labelSelector }),
      "kubernetes:policy/v1:PodDisruptionBudget": (namespace, labelSelector) => policy.listNamespacedPodDisruptionBudget({ namespace, labelSelector }),
      "kubernetes:networking.k8s.io/v1:NetworkPolicy": (namespace, labelSelector) => networking.listNamespacedNetworkPolicy({ namespace, labelSelector }),
      "kubernetes:batch/v1:CronJob": (namespace, labelSelector) => batch.listNamespacedCronJob({ namespace, labelSelector }),
    };
    this.listers = Object.entries(byKind).map(([type, list]) => [kindOf(type), list] as const);
  }

  /** The metadata of every object of the Cluster's stack that exists now. */
  async read(at: ClusterObjectsLocation): Promise<LiveObjectMeta[]> {
    const selector = `${CLUSTER_LABEL}=${at.cluster}`;
    const meta = (kind: string, o: k8s.KubernetesObject): LiveObjectMeta => ({
      kind,
      namespace: o.metadata?.namespace,
      name: o.metadata?.name ?? "",
      uid: o.metadata?.uid,
      resourceVersion: BY_GENERATION.has(kind) ? `generation ${o.metadata?.generation ?? ""}` : o.metadata?.resourceVersion,
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
      ...this.listers
        .filter(([kind]) => at.etcdBackup || !ONLY_WITH_BACKUPS.has(kind))
        .map(async ([kind, list]) => (await list(at.mastersNamespace, selector)).items.map((o) => meta(kind, o))),
      orAbsent("Namespace", () => this.core.readNamespace({ name: at.mastersNamespace })),
      at.adminKubeconfigCopy ? orAbsent("Secret", () => this.core.readNamespacedSecret(at.adminKubeconfigCopy!)) : Promise.resolve([]),
      ...(at.userKubeconfigCopies ?? []).map((copy) => orAbsent("Secret", () => this.core.readNamespacedSecret(copy))),
      at.addons ? this.readAddons(at.cluster, at.addons.adminKubeconfig) : Promise.resolve([]),
      at.etcdBackup ? orAbsent("Secret", () => this.core.readNamespacedSecret(at.etcdBackup!.credentials)) : Promise.resolve([]),
    ]);
    return parts.flat();
  }

  /**
   * The add-on objects of the business cluster, through the admin kubeconfig in `ref` (the
   * stack's, in the masters' namespace). Throws when that Secret is missing or refused, or the
   * business apiserver fails or does not answer within the bound: the preview decides then.
   */
  private async readAddons(cluster: string, ref: AdminKubeconfigRef): Promise<LiveObjectMeta[]> {
    return readAddonObjects((this.opts.addonListers ?? addonListers)(await this.business(cluster, ref)));
  }

  /**
   * A client of the business cluster from the admin kubeconfig in `ref` (the stack's, in the
   * masters' namespace), every request of which is aborted after `businessTimeoutMs`. Throws when
   * that Secret is missing or refused.
   */
  private async business(cluster: string, ref: AdminKubeconfigRef): Promise<k8s.KubeConfig> {
    const where = `the admin kubeconfig of Cluster ${cluster} (Secret ${ref.namespace}/${ref.name}, key ${ref.key})`;
    const data = (await this.core.readNamespacedSecret({ namespace: ref.namespace, name: ref.name })).data?.[ref.key];
    if (!data) throw new Error(`${where} is missing: the add-ons cannot be read`);
    const signal = AbortSignal.timeout(this.opts.businessTimeoutMs ?? DEFAULT_BUSINESS_TIMEOUT_MS);
    return abortedBy(loadKubeconfig(cluster, Buffer.from(data, "base64").toString("utf8")), signal);
  }

  /**
   * The add-on workloads' status and whether any Node is registered (addons-readiness.ts), through
   * the same client and bound as the fingerprint's read. Throws as that read does (the condition is
   * Unknown then); `at` without add-ons has none to read.
   */
  async addonWorkloads(at: ClusterObjectsLocation): Promise<AddonWorkloads> {
    if (!at.addons) throw new Error(`Cluster ${at.cluster} deploys no add-ons: nothing to read`);
    const business = await this.business(at.cluster, at.addons.adminKubeconfig);
    const apps = business.makeApiClient(k8s.AppsV1Api);
    const core = business.makeApiClient(k8s.CoreV1Api);
    const [daemonSets, deployments, nodes] = await Promise.all([
      apps.listNamespacedDaemonSet({ namespace: ADDON_NAMESPACE, labelSelector: ADDON_LABEL }),
      apps.listNamespacedDeployment({ namespace: ADDON_NAMESPACE, labelSelector: ADDON_LABEL }),
      core.listNode({ limit: 1 }),
    ]);
    return { daemonSets: daemonSets.items, deployments: deployments.items, hasNodes: nodes.items.length > 0 };
  }

  /** fingerprintOf(read(at)). */
  async fingerprint(at: ClusterObjectsLocation): Promise<string> {
    return fingerprintOf(await this.read(at));
  }
}
