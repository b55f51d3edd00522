/**
 * ControlPlane: the masters of one business cluster, hosted in a meta-cluster namespace.
 *
 * Composes ClusterPki, Etcd, ApiServer, ControllerManager and Scheduler, ordered so that an upgrade
 * follows the Kubernetes version-skew policy: etcd first, then kube-apiserver, then the
 * controller-manager and scheduler (which may never be newer than the apiserver). Each step waits for
 * its predecessor's RolloutGate, done only when that rollout has finished and no Pod of an older
 * revision is left, so the next step starts only on a healthy, fully upgraded predecessor.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  IMAGE_PATTERN,
  clusterNameProblems,
  etcdUpgradeProblems,
  isDns1123Label,
  kubernetesUpgradeProblems,
  labelProblems,
  MODE_REPLICAS,
  resolveClusterSpec,
  SpecValidationError,
  validateClusterSpec,
  type CaSecretReference,
  type ClusterSpec,
  type Problem,
} from "../api/v1alpha1";
import { ApiServer } from "./apiserver";
import { caRotationProblems, type CaRotationInput } from "./ca-rotation";
import { externalApiServerUrl, internalApiServerUrl, objectNames, type ClusterContext } from "./cluster-context";
import { controlPlaneOutputs, type CertificateAuthorityPems, type ControlPlaneOutputs, type Outputs } from "./control-plane-outputs";
import { ControllerManager } from "./controller-manager";
import { Etcd, etcdDataOutlivesPods, type EtcdMembershipRender } from "./etcd";
import { EtcdMembership } from "./etcd-membership";
import { defaultBackupImage, EtcdBackup, type BackupStoreCredentials } from "./etcd-backup";
import { kubeconfigOutput } from "./kubeconfig";
import { masterSecret } from "./master-workload";
import { MastersNetworkPolicies } from "./network-policies";
import { ClusterPki, type PemPair } from "./pki";
import { podSecurityLabels } from "./pod-security";
import { Scheduler } from "./scheduler";
import { componentType } from "./type-tokens";

export interface ControlPlaneArgs {
  /** The business cluster, exactly as in a `Cluster` resource's spec. */
  readonly spec: ClusterSpec;
  /** Meta-cluster namespace of the masters. Default: the component's name. */
  readonly namespace?: string;
  /** Create (and on destroy delete) that namespace. Default: true. */
  readonly createNamespace?: boolean;
  /**
   * More labels on the namespace it creates, e.g. the operator's ownership labels
   * (`kubeonkube.io/cluster-uid`; see src/api/v1alpha1/names.ts). The component's own
   * `kubeonkube.io/cluster` and `app.kubernetes.io/part-of` win over these. Default: none.
   */
  readonly namespaceLabels?: Readonly<Record<string, string>>;
  /** DNS domain of the meta-cluster, for the names masters use to reach each other. Default: cluster.local. */
  readonly metaClusterDomain?: string;
  /**
   * Kubeconfig of the meta-cluster for the rollout gates, which read the etcd and apiserver
   * rollouts themselves (not through the Kubernetes provider): pass the one the provider uses.
   * Its current context is used; it is kept as a Pulumi secret. Default: the engine's ambient
   * kubeconfig (KUBECONFIG, ~/.kube/config, or the in-cluster service account).
   */
  readonly metaKubeconfig?: pulumi.Input<string>;
  /**
   * What runs now, when known (the operator passes it from status). An upgrade that skips a minor
   * version or goes backwards is refused before anything changes.
   */
  readonly running?: { readonly kubernetesVersion?: string; readonly etcdVersion?: string };
  /**
   * Leaf certificate lifetimes in hours instead of `spec.certificates` days, for certificate
   * rotation drills and short-lived clusters: with `renewBeforeHours` ≥ `validityHours` every
   * `pulumi refresh` marks every leaf for renewal, so the next `up` re-issues them all and rolls
   * every master. The CAs keep `spec.certificates.caValidityDays`.
   */
  readonly rotationDrill?: { readonly validityHours: number; readonly renewBeforeHours: number };
  /**
   * Meta-cluster namespace of the operator, admitted to the apiserver by name in the masters'
   * NetworkPolicies (network-policies.ts). Default: none (no such rule; the apiserver port is open
   * to every source anyway, as the business cluster's entry point).
   */
  readonly operatorNamespace?: string;
  /**
   * Generation of the key that encrypts the business cluster's Secrets at rest; raising it by one
   * rotates the key in one `up` (src/components/apiserver-config.ts). Default: 1.
   */
  readonly encryptionKeyGeneration?: number;
  /**
   * What `spec.etcd.backup` and `spec.etcd.restore` need besides the spec (src/components/etcd-backup.ts).
   * - `credentials`: the store's keys (required with either field); kept as Pulumi secrets, copied
   *   to the Secret `<name>-etcd-backup-store` the backup and restore containers read.
   * - `image`: the image with `kok etcd backup|restore` (the operator's). Default
   *   docker.io/kube-on-kube/operator:<version of this package>.
   * - `clusterRef`: `<namespace>/<name>` written into each snapshot's sidecar. Default
   *   `<namespace>/<name>` of this component.
   */
  readonly etcdBackup?: {
    readonly credentials?: BackupStoreCredentials;
    readonly image?: string;
    readonly clusterRef?: string;
  };
  /**
   * The step of a CA and service-account key rotation (src/components/ca-rotation.ts); the
   * operator derives it from status.certificates.rotation. Default: never rotated (generation 0).
   */
  readonly caRotation?: CaRotationInput;
  /**
   * The etcd membership the operator observed (EtcdArgs.membership): the StatefulSet's replicas
   * follow it, not `spec.etcd.replicas`. Default: the spec's count, a new cluster.
   */
  readonly etcdMembership?: EtcdMembershipRender;
}

/** Every problem of a ControlPlane's name and args, with field paths. */
export function controlPlaneProblems(name: string, args: ControlPlaneArgs): Problem[] {
  const problems = [...clusterNameProblems(name, "name"), ...validateClusterSpec(args?.spec, "spec")];
  if (args?.namespace !== undefined && !isDns1123Label(args.namespace)) {
    problems.push({ path: "namespace", message: `"${args.namespace}" is not a valid namespace name (lowercase DNS label)` });
  }
  if (args?.operatorNamespace !== undefined && !isDns1123Label(args.operatorNamespace)) {
    problems.push({ path: "operatorNamespace", message: `"${args.operatorNamespace}" is not a valid namespace name (lowercase DNS label)` });
  }
  const generation = args?.encryptionKeyGeneration;
  if (generation !== undefined && (!Number.isInteger(generation) || generation < 1)) {
    problems.push({ path: "encryptionKeyGeneration", message: `must be a positive whole number (got ${generation})` });
  }
  if (args?.metaClusterDomain !== undefined && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(args.metaClusterDomain)) {
    problems.push({ path: "metaClusterDomain", message: `"${args.metaClusterDomain}" is not a DNS domain` });
  }
  problems.push(...labelProblems(args?.namespaceLabels, "namespaceLabels"));
  problems.push(...etcdBackupArgProblems(args));
  problems.push(...caRotationProblems(args?.caRotation, "caRotation"));
  const etcdStep = args?.caRotation?.etcd?.step;
  if (etcdStep !== undefined && etcdStep !== "stable" && args?.spec?.etcd && !etcdDataOutlivesPods(args.spec.etcd.storage)) {
    // The members keep running through new certificates (etcd.ts, certificatesReloadInPlace), and
    // would never read a new trust bundle; a roll would start them empty.
    problems.push({
      path: "caRotation.etcd.step",
      message: `"${etcdStep}" needs a roll of etcd's members, whose data is in an emptyDir (spec.etcd.storage): they would start empty. Keep the etcd CA (leave out caRotation.etcd, or step "stable" at its generation), or move etcd to claimTemplate storage`,
    });
  }
  const drill = args?.rotationDrill;
  if (drill !== undefined) {
    for (const key of ["validityHours", "renewBeforeHours"] as const) {
      if (!Number.isInteger(drill[key]) || drill[key] < 1) problems.push({ path: `rotationDrill.${key}`, message: `must be a positive whole number of hours (got ${drill[key]})` });
    }
  }
  const running = args?.running;
  if (running?.kubernetesVersion && typeof args.spec?.kubernetesVersion === "string") {
    for (const message of kubernetesUpgradeProblems(running.kubernetesVersion, args.spec.kubernetesVersion)) {
      problems.push({ path: "spec.kubernetesVersion", message });
    }
  }
  if (running?.etcdVersion && typeof args.spec?.etcd?.version === "string") {
    for (const message of etcdVersionChangeProblems(args.spec, running.etcdVersion, args.etcdMembership?.members)) {
      problems.push({ path: "spec.etcd.version", message });
    }
  }
  return problems;
}

/**
 * Why moving etcd from `running` to the spec's version is refused: a downgrade or a skipped minor
 * (versions.ts), or a version change that restarts a single member whose data is in an emptyDir —
 * it would start empty and take the business cluster's every object with it. (With three or more
 * members, each one restarted empty is re-added from the others.) `members`: as observed.
 */
export function etcdVersionChangeProblems(spec: ClusterSpec, running: string, members?: number): string[] {
  const problems = etcdUpgradeProblems(running, spec.etcd.version);
  const count = members ?? spec.etcd.replicas ?? MODE_REPLICAS[spec.mode]?.etcd;
  if (spec.etcd.version !== running && count === 1 && !etcdDataOutlivesPods(spec.etcd.storage)) {
    problems.push(
      `etcd ${running} → ${spec.etcd.version} restarts the only etcd member, whose data is in an emptyDir (spec.etcd.storage): it would start empty, and the business cluster would lose every object. Keep etcd ${running}, or take a backup (kubeonkube.io/backup-now) and restore it into a new Cluster with claimTemplate storage`,
    );
  }
  return problems;
}

/** The etcdBackup args a spec with backups or a restore needs. */
export function etcdBackupArgProblems(args: Pick<ControlPlaneArgs, "spec" | "etcdBackup"> | undefined): Problem[] {
  const problems: Problem[] = [];
  const backup = args?.etcdBackup;
  const etcd = args?.spec?.etcd as Partial<ClusterSpec["etcd"]> | undefined;
  if (etcd && typeof etcd === "object" && (etcd.backup || etcd.restore) && !backup?.credentials) {
    problems.push({ path: "etcdBackup.credentials", message: "spec.etcd.backup needs the store's credentials (accessKeyId, secretAccessKey of its credentialsSecretRef)" });
  }
  if (backup?.image !== undefined && !new RegExp(IMAGE_PATTERN).test(backup.image)) {
    problems.push({ path: "etcdBackup.image", message: `"${backup.image}" is not an image reference like docker.io/kube-on-kube/operator:0.1.0` });
  }
  if (backup?.clusterRef !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(backup.clusterRef)) {
    problems.push({ path: "etcdBackup.clusterRef", message: `"${backup.clusterRef}" must be <namespace>/<name>` });
  }
  return problems;
}

/** Annotation that makes pulumi-kubernetes' server-side apply take over conflicting fields. */
export const PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce";

/**
 * Every Kubernetes object of a ControlPlane is owned by its stack alone, so the stack may take
 * over fields another field manager holds. Server-side apply otherwise refuses with a "field
 * conflict": a hand edit (`kubectl edit`) makes its manager co-own the fields, so drift could
 * never be corrected, and a create that a killed update had already sent (its pending operation
 * cleared on recovery) could never be adopted. One transformation, so no object can miss it.
 */
function adoptOwnObjects(args: pulumi.ResourceTransformationArgs): pulumi.ResourceTransformationResult | undefined {
  if (!args.type.startsWith("kubernetes:") || args.type.startsWith("kubernetes:index")) return undefined;
  const props = args.props as { metadata?: pulumi.Input<k8s.types.input.meta.v1.ObjectMeta> };
  const metadata = pulumi.output(props.metadata ?? {}).apply((m) => ({ ...m, annotations: { ...(m.annotations ?? {}), [PATCH_FORCE_ANNOTATION]: "true" } }));
  return { props: { ...props, metadata }, opts: args.opts };
}

/** The outputs are ControlPlaneOutputs (control-plane-outputs.ts), where each is described. */
export class ControlPlane extends pulumi.ComponentResource implements Outputs<ControlPlaneOutputs> {
  readonly namespace: pulumi.Output<string>;
  readonly endpoint: pulumi.Output<string>;
  readonly internalEndpoint: pulumi.Output<string>;
  readonly caCertificate: pulumi.Output<string>;
  readonly caSecret: pulumi.Output<CaSecretReference>;
  readonly adminKubeconfig: pulumi.Output<string>;
  readonly adminKubeconfigSecret: pulumi.Output<string>;
  readonly version: pulumi.Output<string>;
  readonly certificatesExpireAt: pulumi.Output<string>;
  readonly certificateAuthorities: pulumi.Output<CertificateAuthorityPems>;
  /** PEM key of the cluster CA; a secret, not an output. Workers' kubelet certificates are signed with it. */
  readonly caPrivateKey: pulumi.Output<string>;
  /**
   * Each spec.kubeconfigs entry's kubeconfig (by entry name), for `endpoint`; secrets, not outputs.
   * The Cluster program copies them next to the Cluster, for their users.
   */
  readonly userKubeconfigs: Readonly<Record<string, pulumi.Output<string>>>;
  readonly pki: ClusterPki;

  constructor(name: string, args: ControlPlaneArgs, opts?: pulumi.ComponentResourceOptions) {
    // Validate before registering anything: a bad spec must leave no trace in the stack.
    const problems = controlPlaneProblems(name, args);
    if (problems.length) throw new SpecValidationError(`ControlPlane "${name}"`, problems);
    super(componentType("ControlPlane"), name, {}, { ...opts, transformations: [...(opts?.transformations ?? []), adoptOwnObjects] });

    const spec = resolveClusterSpec(args.spec);
    const namespace = args.namespace ?? name;
    const ctx: ClusterContext = { name, namespace, spec, metaClusterDomain: args.metaClusterDomain ?? "cluster.local" };
    const names = objectNames(name);

    const ns =
      args.createNamespace === false
        ? undefined
        : new k8s.core.v1.Namespace(
            `${name}-namespace`,
            {
              metadata: {
                name: namespace,
                // Pod Security admission holds every Pod here to what the masters need, no more.
                labels: { ...args.namespaceLabels, "kubeonkube.io/cluster": name, "app.kubernetes.io/part-of": "kube-on-kube", ...podSecurityLabels(spec) },
              },
            },
            { parent: this },
          );
    const inNamespace: pulumi.CustomResourceOptions = { parent: this, dependsOn: ns ? [ns] : [] };
    new MastersNetworkPolicies(`${name}-network-policies`, { cluster: ctx, operatorNamespace: args.operatorNamespace }, { parent: this, dependsOn: ns ? [ns] : [] });

    const drill = args.rotationDrill;
    const leafHours = drill ? { validity: drill.validityHours, renewBefore: drill.renewBeforeHours } : undefined;
    const pki = new ClusterPki(`${name}-pki`, { cluster: ctx, leafHours, rotation: args.caRotation }, { parent: this });
    this.pki = pki;
    const internalUrl = internalApiServerUrl(ctx);
    const externalUrl = externalApiServerUrl(ctx);
    const kubeconfigFor = (userName: string, pair: PemPair, server: string) =>
      kubeconfigOutput({ clusterName: name, server, caCertPem: pki.clusterTrustBundle, userName, clientCertPem: pair.certPem, clientKeyPem: pair.keyPem });

    // Read only for a cluster with backups: the default names this package's version.
    const backupImage = spec.etcd.backup ? (args.etcdBackup?.image ?? defaultBackupImage()) : "";
    const backup =
      spec.etcd.backup && pki.etcdBackupClient && args.etcdBackup?.credentials
        ? new EtcdBackup(
            `${name}-etcd-backup`,
            {
              cluster: ctx,
              backup: spec.etcd.backup,
              image: backupImage,
              clusterRef: args.etcdBackup.clusterRef ?? `${namespace}/${name}`,
              client: { caCertPem: pki.etcdTrustBundle, cert: pki.etcdBackupClient },
              credentials: args.etcdBackup.credentials,
            },
            inNamespace,
          )
        : undefined;
    // A restoring member reads the store's credentials from the backup's Secret.
    const restore = spec.etcd.restore && backup ? { image: backupImage, dependsOn: [backup.storeSecret] } : undefined;
    const membership = args.etcdMembership;
    const { controllerManager, apiServer } = createMasters({ name, ctx, pki, parent: this, namespace: ns, metaKubeconfig: args.metaKubeconfig, encryptionKeyGeneration: args.encryptionKeyGeneration, kubeconfigFor, internalUrl, restore, membership });
    new EtcdMembership(`${name}-etcd-membership`, { cluster: ctx, etcdCa: pki.etcdCa, etcdTrustBundle: pki.etcdTrustBundle, leafHours }, inNamespace);

    // Kubeconfigs reach their users only once every apiserver trusts the CA of their certificate
    // (a rotation's phase 1 re-issues the admin's from the new CA in the same update; a new user
    // entry's CA joins the apiserver's client CA bundle in the same update).
    const afterApiServer: pulumi.CustomResourceOptions = { ...inNamespace, dependsOn: [...(ns ? [ns] : []), apiServer.rollout] };
    const adminKubeconfig = kubeconfigFor("kubernetes-admin", pki.admin, externalUrl);
    masterSecret(
      `${name}-admin-kubeconfig`,
      ctx,
      names.adminKubeconfig,
      "kube-apiserver",
      { kubeconfig: adminKubeconfig, "kubeconfig-internal": kubeconfigFor("kubernetes-admin", pki.admin, internalUrl) },
      afterApiServer,
    );
    const userKubeconfigs: Record<string, pulumi.Output<string>> = {};
    for (const user of spec.kubeconfigs) {
      const kubeconfig = kubeconfigFor(user.user, pki.users[user.name], externalUrl);
      masterSecret(`${name}-kubeconfig-${user.name}`, ctx, names.userKubeconfig(user.name), "kube-apiserver", { kubeconfig }, afterApiServer);
      userKubeconfigs[user.name] = pulumi.secret(kubeconfig);
    }
    this.userKubeconfigs = userKubeconfigs;

    this.namespace = ns ? ns.metadata.name : pulumi.output(namespace);
    this.endpoint = pulumi.output(externalUrl);
    this.internalEndpoint = pulumi.output(internalUrl);
    this.caCertificate = pki.clusterCa.certPem;
    this.caPrivateKey = pulumi.secret(pki.clusterCa.keyPem);
    // The operator finds the CA through this output (recorded in the Cluster's status), not by
    // the name of the component's Secret.
    this.caSecret = controllerManager.caSecret;
    this.adminKubeconfig = pulumi.secret(adminKubeconfig);
    this.adminKubeconfigSecret = pulumi.output(names.adminKubeconfig);
    this.version = pulumi.output(spec.kubernetesVersion);
    this.certificatesExpireAt = pki.certificatesExpireAt;
    this.certificateAuthorities = pulumi
      .all([pki.clusterCa.certPem, pki.clusterTrustBundle, pki.etcdCa.certPem, pki.frontProxyCa.certPem, pki.serviceAccount.signingPublicKeyPem])
      .apply(([cluster, clusterBundle, etcd, frontProxy, serviceAccount]) => ({ cluster, clusterBundle, etcd, frontProxy, serviceAccount }));
    this.registerOutputs(controlPlaneOutputs(this));
  }
}

interface MastersArgs {
  readonly name: string;
  readonly ctx: ClusterContext;
  readonly pki: ClusterPki;
  readonly parent: pulumi.Resource;
  /** The namespace the ControlPlane created, if it did: the masters wait for it. */
  readonly namespace: k8s.core.v1.Namespace | undefined;
  readonly metaKubeconfig: ControlPlaneArgs["metaKubeconfig"];
  readonly encryptionKeyGeneration: ControlPlaneArgs["encryptionKeyGeneration"];
  readonly kubeconfigFor: (userName: string, pair: PemPair, server: string) => pulumi.Output<string>;
  readonly internalUrl: string;
  /** With spec.etcd.restore: the restore container's image and what the members wait for. */
  readonly restore?: { readonly image: string; readonly dependsOn: pulumi.Resource[] };
  readonly membership?: EtcdMembershipRender;
}

/** The masters in their upgrade order: etcd, then the apiservers, then the controller-manager and the scheduler. */
function createMasters({ name, ctx, pki, parent, namespace, metaKubeconfig, encryptionKeyGeneration, kubeconfigFor, internalUrl, restore, membership }: MastersArgs): { controllerManager: ControllerManager; apiServer: ApiServer } {
  const etcd = new Etcd(
    `${name}-etcd`,
    { cluster: ctx, certificates: { ca: pki.etcdCa, trustBundle: pki.etcdTrustBundle, server: pki.etcdServer, peer: pki.etcdPeer }, metaKubeconfig, restoreImage: restore?.image, membership },
    { parent, dependsOn: [...(namespace ? [namespace] : []), ...(restore?.dependsOn ?? [])] },
  );
  const apiServer = new ApiServer(
    `${name}-apiserver`,
    {
      cluster: ctx,
      certificates: {
        trustBundle: pki.clusterTrustBundle,
        clientCaBundle: pki.clientCaBundle,
        serving: pki.apiServer,
        kubeletClient: pki.apiServerKubeletClient,
        etcdCa: pki.etcdTrustBundle,
        etcdClient: pki.apiServerEtcdClient,
        frontProxyCa: pki.frontProxyTrustBundle,
        frontProxyClient: pki.frontProxyClient,
        serviceAccountPublicKey: pki.serviceAccount.publicKeyPem,
        serviceAccountPrivateKey: pki.serviceAccount.privateKeyPem,
      },
      metaKubeconfig,
      encryptionKeyGeneration,
    },
    // The gates, not the workloads: pulumi-kubernetes may call an update done before the old Pods
    // are gone (docs/architecture.md, "Upgrade order").
    { parent, dependsOn: [etcd.rollout] },
  );
  const controllerManager = new ControllerManager(
    `${name}-controller-manager`,
    {
      cluster: ctx,
      clusterCa: pki.clusterCa,
      clusterTrustBundle: pki.clusterTrustBundle,
      frontProxyCa: pki.frontProxyTrustBundle,
      serviceAccountPrivateKey: pki.serviceAccount.privateKeyPem,
      kubeconfig: kubeconfigFor("system:kube-controller-manager", pki.controllerManager, internalUrl),
    },
    { parent, dependsOn: [apiServer.rollout] },
  );
  new Scheduler(
    `${name}-scheduler`,
    { cluster: ctx, kubeconfig: kubeconfigFor("system:kube-scheduler", pki.scheduler, internalUrl) },
    { parent, dependsOn: [apiServer.rollout] },
  );
  return { controllerManager, apiServer };
}
