/**
 * ClusterAddons: what a business cluster needs besides its masters to run workloads — the pod
 * network (FlannelNetwork), Service routing (KubeProxy) and cluster DNS (CoreDns) — applied to the
 * business cluster through a Kubernetes provider for its apiserver, given in the `providers`
 * option (the cluster program makes it from the ControlPlane's admin kubeconfig, a secret, and
 * makes it wait for the masters; docs/architecture.md says why in the same stack). Without one,
 * the objects would go to the ambient cluster: the component refuses that. An add-on switched off
 * renders nothing, so the stack deletes what it deployed of it (a platform bringing its own CNI or
 * DNS).
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { parseCidr, SpecValidationError, type Problem, type ResolvedAddons } from "../../api/v1alpha1";
import { componentType } from "../type-tokens";
import { CoreDns } from "./coredns";
import { FlannelNetwork } from "./flannel";
import { KubeProxy } from "./kube-proxy";

export interface ClusterAddonsArgs {
  /** `https://host:port` of the business apiserver as its nodes reach it (kube-proxy, flanneld). */
  readonly apiServerEndpoint: pulumi.Input<string>;
  /** `spec.addons` resolved: images already follow `kubernetesVersion` and `imageRepository`. */
  readonly addons: ResolvedAddons;
  readonly network: { readonly serviceCIDR: string; readonly podCIDR: string; readonly clusterDomain: string };
  /**
   * PEM of every cluster CA trusted now (ControlPlane's `pki.clusterTrustBundle`): embedded in the
   * add-ons' kubeconfigs, and a change rolls their Pods, so that each phase of a CA rotation
   * reaches them before the apiserver's serving certificate moves to the new CA. Without it they
   * read the ServiceAccount volume's `ca.crt`, which trails a rotation (common.ts, addonKubeconfig).
   */
  readonly trustBundle?: pulumi.Input<string>;
}

/**
 * What the add-ons cannot do with this spec, with the Cluster's field paths. flannel's `Network`
 * and the install-cni script are IPv4: an IPv6 Pod range brings its own CNI.
 */
export function clusterAddonsProblems(addons: ResolvedAddons, network: ClusterAddonsArgs["network"]): Problem[] {
  if (addons.network.enabled && parseCidr(network.podCIDR)?.family !== 4) {
    return [{ path: "spec.addons.network.enabled", message: `the flannel add-on needs an IPv4 network.podCIDR (got ${network.podCIDR}); set it to false and bring your own CNI` }];
  }
  return [];
}

export class ClusterAddons extends pulumi.ComponentResource {
  readonly network?: FlannelNetwork;
  readonly kubeProxy?: KubeProxy;
  readonly coreDns?: CoreDns;
  /** The cluster DNS Service's address when CoreDNS is deployed. */
  readonly clusterDnsAddress?: string;

  constructor(name: string, args: ClusterAddonsArgs, opts?: pulumi.ComponentResourceOptions) {
    const { addons, network } = args;
    const problems = clusterAddonsProblems(addons, network);
    if (problems.length) throw new SpecValidationError(`ClusterAddons "${name}"`, problems);
    if (!hasProvider(opts)) {
      throw new Error(`ClusterAddons "${name}": pass the business cluster's Kubernetes provider in opts.providers (or opts.provider); the ambient one is the meta-cluster`);
    }
    super(componentType("ClusterAddons"), name, {}, opts);
    const child = { parent: this };
    if (addons.network.enabled) {
      this.network = new FlannelNetwork(`${name}-flannel`, { network: addons.network, podCIDR: network.podCIDR, apiServerEndpoint: args.apiServerEndpoint, trustBundle: args.trustBundle }, child);
    }
    if (addons.kubeProxy.enabled) {
      this.kubeProxy = new KubeProxy(`${name}-kube-proxy`, { kubeProxy: addons.kubeProxy, podCIDR: network.podCIDR, apiServerEndpoint: args.apiServerEndpoint, trustBundle: args.trustBundle }, child);
    }
    if (addons.coreDNS.enabled) {
      this.coreDns = new CoreDns(`${name}-coredns`, { coreDNS: addons.coreDNS, serviceCIDR: network.serviceCIDR, clusterDomain: network.clusterDomain, trustBundle: args.trustBundle }, child);
      this.clusterDnsAddress = this.coreDns.address;
    }
    this.registerOutputs({});
  }
}

function hasProvider(opts: pulumi.ComponentResourceOptions | undefined): boolean {
  if (opts?.provider) return true;
  const providers = opts?.providers;
  if (!providers) return false;
  return Array.isArray(providers) ? providers.some((p) => p instanceof k8s.Provider) : "kubernetes" in providers;
}
