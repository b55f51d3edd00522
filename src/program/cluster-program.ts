/**
 * The Pulumi program of one business cluster: a meta-cluster provider and a ControlPlane, then a
 * provider for the business cluster's own apiserver and the ClusterAddons it runs. The root
 * `Pulumi.yaml` runs it from stack config; the operator runs the same function as an inline
 * Automation API program, so both front doors deploy exactly the same thing.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { resolveClusterSpec, SpecValidationError, userKubeconfigCopyOf, validateClusterSpec, type ClusterSpec } from "../api/v1alpha1";
import { ClusterAddons, clusterAddonsProblems } from "../components/addons/cluster-addons";
import { ControlPlane, etcdBackupArgProblems, PATCH_FORCE_ANNOTATION, type ControlPlaneArgs } from "../components/control-plane";
import { controlPlaneOutputs, type ControlPlaneOutputs, type Outputs } from "../components/control-plane-outputs";

export interface ClusterProgramArgs {
  /** The business cluster's name (the ControlPlane's name). */
  readonly name: string;
  readonly spec: ClusterSpec;
  /** Meta-cluster namespace of the masters; default the cluster's name. */
  readonly namespace?: string;
  /** More labels on that namespace: the operator's ownership labels (ControlPlaneArgs.namespaceLabels). */
  readonly namespaceLabels?: ControlPlaneArgs["namespaceLabels"];
  /** Kubeconfig of the meta-cluster; default the ambient KUBECONFIG of the engine. */
  readonly metaKubeconfig?: pulumi.Input<string>;
  /** What runs now, for the upgrade guard (ControlPlaneArgs.running). */
  readonly running?: ControlPlaneArgs["running"];
  /** See ControlPlaneArgs.rotationDrill. */
  readonly rotationDrill?: ControlPlaneArgs["rotationDrill"];
  /** See ControlPlaneArgs.operatorNamespace. */
  readonly operatorNamespace?: string;
  /**
   * Also write the admin kubeconfig to this Secret (the operator puts it next to the Cluster
   * resource, where its users look for it). Part of the stack, so a destroy removes it.
   */
  readonly adminKubeconfigCopy?: { readonly namespace: string; readonly name: string };
  /**
   * The backup store's credentials (secrets), the backup image and the Cluster's `<namespace>/<name>`,
   * for a spec with `etcd.backup` or `etcd.restore` (ControlPlaneArgs.etcdBackup).
   */
  readonly etcdBackup?: ControlPlaneArgs["etcdBackup"];
  /** The step of a CA rotation, from the Cluster's status (ControlPlaneArgs.caRotation). */
  readonly caRotation?: ControlPlaneArgs["caRotation"];
  /** See ControlPlaneArgs.etcdMembership. */
  readonly etcdMembership?: ControlPlaneArgs["etcdMembership"];
}

/** ControlPlane's outputs (ControlPlaneOutputs), and what the program adds to them. */
export type ClusterProgramOutputs = Outputs<ControlPlaneOutputs> & {
  readonly etcdVersion: pulumi.Output<string>;
  /** Name of the copy of the admin kubeconfig Secret, when one was asked for. */
  readonly adminKubeconfigCopy?: pulumi.Output<string>;
};

/** A Cluster stack's outputs once applied, as plain values (what the operator reads back). */
export type ClusterProgramValues = ControlPlaneOutputs & { readonly etcdVersion: string; readonly adminKubeconfigCopy?: string };

/** Logical names of the program's two Kubernetes providers (their state is read before a destroy). */
export const META_CLUSTER_PROVIDER = "meta-cluster";
export const BUSINESS_CLUSTER_PROVIDER = "business-cluster";

/**
 * The meta-cluster provider's inputs. `deleteUnreachable: false` is pinned: an explicit input
 * overrides PULUMI_K8S_DELETE_UNREACHABLE, which a destroy sets for the business cluster's sake
 * (docs/architecture.md, "Destroying with the business apiserver down"), so an unreachable
 * meta-cluster fails the destroy instead of dropping the masters' objects from the state.
 */
export function metaClusterProviderArgs(metaKubeconfig?: pulumi.Input<string>): k8s.ProviderArgs {
  return {
    // pulumi-kubernetes does not mark its kubeconfig input secret by itself.
    kubeconfig: metaKubeconfig === undefined ? undefined : pulumi.secret(metaKubeconfig),
    // Moving to another kubeconfig file or context must not replace every object.
    clusterIdentifier: META_CLUSTER_PROVIDER,
    // Renewed certificates update their Secrets in place instead of delete-and-recreate.
    enableSecretMutable: true,
    // ConfigMaps too: by default a change of data replaces a ConfigMap, and with a fixed name
    // that is delete-then-create, so the etcd membership ConfigMap (read at each member's start)
    // and the audit policy (mounted by the apiservers) were briefly missing on each change. A
    // changed option is an update of the provider, not a replacement (only another cluster is).
    enableConfigMapMutable: true,
    deleteUnreachable: false,
  };
}

/**
 * The business-cluster provider's inputs. `deleteUnreachable` is left unset on purpose: the
 * provider then follows PULUMI_K8S_DELETE_UNREACHABLE, which only a destroy sets (an input here
 * would be in force on every refresh too, and a refresh with it drops the add-ons from the state
 * whenever the apiserver is briefly down; a destroy without `--run-program` uses the inputs in the
 * state, not the program's, so a destroy-only input could not reach it anyway).
 */
export function businessClusterProviderArgs(adminKubeconfig: pulumi.Input<string>): k8s.ProviderArgs {
  return {
    // The endpoint kubeconfig (the operator runs outside the meta-cluster's Pod network); a secret.
    kubeconfig: adminKubeconfig,
    // Renewed admin certificates change the kubeconfig; that must not replace every add-on.
    clusterIdentifier: BUSINESS_CLUSTER_PROVIDER,
    // A refresh while the business apiserver is down (the masters being what drifted) keeps the
    // add-ons' last state instead of failing, so the `up` that repairs the masters can run.
    skipUpdateUnreachable: true,
    // The add-ons' ConfigMaps (Corefile, kube-proxy and flannel configuration) change in place,
    // never missing between a delete and a create (see metaClusterProviderArgs).
    enableConfigMapMutable: true,
  };
}

/**
 * PULUMI_K8S_DELETE_UNREACHABLE is for a destroy's engine only, which does not run the program.
 * A program that sees it runs for an `up`, preview or refresh, where @pulumi/kubernetes would
 * record it as the business-cluster provider's `deleteUnreachable` input (its SDK reads the
 * variable for a missing input), and every later refresh with that apiserver down would drop the
 * add-ons from the state.
 */
export function assertNoDeleteUnreachable(env: NodeJS.ProcessEnv = process.env): void {
  if (env.PULUMI_K8S_DELETE_UNREACHABLE !== undefined) {
    throw new Error(
      "PULUMI_K8S_DELETE_UNREACHABLE is set: it is meant for `pulumi destroy` only (docs/operations.md, deleting a Cluster); " +
        "an update with it would record it in the business-cluster provider's state. Unset it and run again.",
    );
  }
}

export function clusterProgram(args: ClusterProgramArgs): ClusterProgramOutputs {
  assertNoDeleteUnreachable();
  // Before anything registers, as ControlPlane validates its own args: a spec the add-ons cannot
  // serve must not leave half an update behind (an invalid spec is ControlPlane's to report).
  if (validateClusterSpec(args.spec, "spec").length === 0) {
    const resolved = resolveClusterSpec(args.spec);
    const problems = [...(resolved.apiServer.service.externalHost ? clusterAddonsProblems(resolved.addons, resolved.network) : []), ...etcdBackupArgProblems(args)];
    if (problems.length) throw new SpecValidationError(`Cluster "${args.name}"`, problems);
  }
  const metaCluster = new k8s.Provider(META_CLUSTER_PROVIDER, metaClusterProviderArgs(args.metaKubeconfig));
  const cp = new ControlPlane(
    args.name,
    {
      spec: args.spec,
      namespace: args.namespace,
      namespaceLabels: args.namespaceLabels,
      running: args.running,
      rotationDrill: args.rotationDrill,
      operatorNamespace: args.operatorNamespace,
      etcdBackup: args.etcdBackup,
      caRotation: args.caRotation,
      etcdMembership: args.etcdMembership,
      // The rollout gates read the meta-cluster through the same kubeconfig as the provider.
      metaKubeconfig: args.metaKubeconfig,
    },
    { providers: [metaCluster] },
  );
  const copy = args.adminKubeconfigCopy
    ? new k8s.core.v1.Secret(
        `${args.name}-admin-kubeconfig-copy`,
        {
          metadata: {
            name: args.adminKubeconfigCopy.name,
            namespace: args.adminKubeconfigCopy.namespace,
            labels: { "kubeonkube.io/cluster": args.name, "app.kubernetes.io/part-of": "kube-on-kube" },
            // The tenant can edit this copy; the stack takes its fields back at the next drift
            // check instead of failing on the field conflict (as ControlPlane's own objects do).
            annotations: { [PATCH_FORCE_ANNOTATION]: "true" },
          },
          type: "Opaque",
          stringData: pulumi.secret(cp.adminKubeconfig.apply((kubeconfig) => ({ kubeconfig }))),
        },
        { provider: metaCluster, dependsOn: [cp] },
      )
    : undefined;
  // Each user kubeconfig next to its Cluster too, one Secret per entry, so RBAC of the tenant's
  // namespace can give each user their own (resourceNames); an entry removed from the spec takes
  // its copy with it. Like the admin copy, the tenant's to edit and never read back.
  if (args.adminKubeconfigCopy) {
    const tenant = args.adminKubeconfigCopy.namespace;
    for (const [entry, kubeconfig] of Object.entries(cp.userKubeconfigs)) {
      const at = userKubeconfigCopyOf({ metadata: { namespace: tenant, name: args.name } }, entry);
      new k8s.core.v1.Secret(
        `${args.name}-kubeconfig-${entry}-copy`,
        {
          metadata: {
            name: at.name,
            namespace: at.namespace,
            labels: { "kubeonkube.io/cluster": args.name, "kubeonkube.io/kubeconfig": entry, "app.kubernetes.io/part-of": "kube-on-kube" },
            annotations: { [PATCH_FORCE_ANNOTATION]: "true" },
          },
          type: "Opaque",
          stringData: pulumi.secret(kubeconfig.apply((k) => ({ kubeconfig: k }))),
        },
        { provider: metaCluster, dependsOn: [cp] },
      );
    }
  }
  deployAddons(args.name, args.spec, cp);
  return {
    ...controlPlaneOutputs(cp),
    adminKubeconfigCopy: copy?.metadata.name,
    etcdVersion: pulumi.output(args.spec.etcd.version),
  };
}

/**
 * Whether the program puts add-on objects into the business cluster (deployAddons): the cluster has
 * an external endpoint and at least one add-on is enabled. The drift check reads them then
 * (live-fingerprint.ts). False for a spec that does not validate: the program deploys nothing of it.
 */
export function deploysAddons(spec: ClusterSpec): boolean {
  if (validateClusterSpec(spec, "spec").length) return false;
  const resolved = resolveClusterSpec(spec);
  const { network, kubeProxy, coreDNS } = resolved.addons;
  return Boolean(resolved.apiServer.service.externalHost) && (network.enabled || kubeProxy.enabled || coreDNS.enabled);
}

/**
 * The add-ons, in the business cluster, after the masters (docs/architecture.md, "Add-ons in the
 * Cluster's stack"). The provider waits for the whole ControlPlane, rollout gates included, and
 * not only for its kubeconfig: pulumi-kubernetes contacts the apiserver once, when the provider is
 * configured, and a provider that found no apiserver then fails every create of that run. The
 * kubeconfig is known early (it needs only the PKI), so without `dependsOn` the provider would be
 * configured before the first apiserver Pod exists. In a preview of the first `up` the kubeconfig
 * is unknown and pulumi-kubernetes previews the add-ons without a cluster.
 *
 * Only for a cluster with an external endpoint (`apiServer.service.externalHost`): without one its
 * endpoint is the apiserver Service's name inside the meta-cluster, which neither workers nor an
 * engine outside the meta-cluster (the root program on a laptop, the operator run outside) can
 * reach, so the add-ons could not serve a node and their first create would fail the update.
 */
function deployAddons(name: string, spec: ClusterSpec, cp: ControlPlane): ClusterAddons | undefined {
  const resolved = resolveClusterSpec(spec);
  if (!resolved.apiServer.service.externalHost) {
    const { network, kubeProxy, coreDNS } = resolved.addons;
    if (network.enabled || kubeProxy.enabled || coreDNS.enabled) {
      void pulumi.log.warn(`Cluster "${name}": no add-ons deployed (spec.addons): spec.apiServer.service.externalHost is not set, so no node could reach the apiserver`);
    }
    return undefined;
  }
  const businessCluster = new k8s.Provider(BUSINESS_CLUSTER_PROVIDER, businessClusterProviderArgs(cp.adminKubeconfig), { dependsOn: [cp] });
  return new ClusterAddons(
    `${name}-addons`,
    { apiServerEndpoint: cp.endpoint, addons: resolved.addons, network: resolved.network, trustBundle: cp.pki.clusterTrustBundle },
    { providers: [businessCluster], dependsOn: [cp] },
  );
}
