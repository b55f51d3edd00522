/**
 * MastersNetworkPolicies: who may connect to the masters of one business cluster. The masters'
 * namespaces of many tenants share the meta-cluster's Pod network; without policies any Pod there
 * reaches any tenant's etcd. The policies select this cluster's Pods only (a namespace given with
 * `createNamespace: false` may hold other workloads, which they leave alone):
 *
 * - deny all ingress by default;
 * - admit ingress from Pods of the same namespace (the masters talk to each other: apiserver →
 *   etcd, etcd ↔ etcd, controller-manager and scheduler → apiserver);
 * - admit the apiserver port from anywhere: it is the business cluster's entry point (workers,
 *   users, a load balancer, the operator);
 * - with an operator namespace, admit that namespace to the apiserver by name as well, so the
 *   operator keeps its way in if the entry-point rule is ever narrowed.
 *
 * etcd, the controller-manager and the scheduler are therefore reachable from their own namespace
 * only. Policies are additive: an admin may add rules (a monitoring namespace, say) beside these.
 *
 * The workers' side of the business cluster needs two paths, both left open here on purpose:
 * - workers → apiserver: the kubelets, and flannel, kube-proxy and CoreDNS through the `kubernetes`
 *   Service, whose endpoints are the apiservers' Pod IPs (advertise-address = POD_IP) on port 6443:
 *   the entry-point rule admits that port from every source, in or outside the meta-cluster.
 * - apiserver → kubelets on TCP 10250 (logs, exec, port-forward, metrics): egress. No policy here
 *   isolates the masters' egress: one that did would have to list every destination (etcd, DNS,
 *   every worker's kubelet, webhooks, OIDC issuers), since any Egress policy selecting a Pod denies
 *   the rest. A platform that adds a default-deny egress policy to masters' namespaces must allow
 *   the apiservers TCP 10250 to the workers' addresses (docs/operations.md, Network requirements).
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { objectNames, selectorLabels, type ClusterContext } from "./cluster-context";
import { APISERVER_PORT } from "./apiserver";
import { componentType, withLegacyAlias } from "./type-tokens";

type NetworkPolicySpec = k8s.types.input.networking.v1.NetworkPolicySpec;

export interface MastersNetworkPolicy {
  /** What it admits; names the object (`<cluster>-<role>`) and the Pulumi resource. */
  readonly role: string;
  readonly name: string;
  readonly spec: NetworkPolicySpec;
}

/** The label a namespace carries from the apiserver itself (Kubernetes ≥ 1.22): unforgeable by its users. */
const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/** The policies of one cluster's masters, as plain objects (so they can be checked without Pulumi). */
export function mastersNetworkPolicies(ctx: Pick<ClusterContext, "name">, operatorNamespace?: string): MastersNetworkPolicy[] {
  const names = objectNames(ctx.name);
  const masters = { matchLabels: { "kubeonkube.io/cluster": ctx.name } };
  const apiServer = { matchLabels: selectorLabels(ctx.name, "kube-apiserver") };
  const apiServerPort = [{ protocol: "TCP", port: APISERVER_PORT }];
  const policy = (role: string, spec: NetworkPolicySpec): MastersNetworkPolicy => ({ role, name: names.networkPolicy(role), spec });
  const policies = [
    policy("default-deny-ingress", { podSelector: masters, policyTypes: ["Ingress"] }),
    policy("same-namespace", { podSelector: masters, policyTypes: ["Ingress"], ingress: [{ from: [{ podSelector: {} }] }] }),
    policy("apiserver-entry", { podSelector: apiServer, policyTypes: ["Ingress"], ingress: [{ ports: apiServerPort }] }),
  ];
  if (operatorNamespace !== undefined) {
    policies.push(
      policy("operator", {
        podSelector: apiServer,
        policyTypes: ["Ingress"],
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: operatorNamespace } } }], ports: apiServerPort }],
      }),
    );
  }
  return policies;
}

export interface MastersNetworkPoliciesArgs {
  readonly cluster: ClusterContext;
  /** Namespace of the operator, admitted to the apiserver by name. Default: none (no such rule). */
  readonly operatorNamespace?: string;
}

export class MastersNetworkPolicies extends pulumi.ComponentResource {
  readonly policies: k8s.networking.v1.NetworkPolicy[];

  constructor(name: string, args: MastersNetworkPoliciesArgs, opts?: pulumi.ComponentResourceOptions) {
    super(componentType("NetworkPolicies"), name, {}, withLegacyAlias("NetworkPolicies", opts));
    const ctx = args.cluster;
    this.policies = mastersNetworkPolicies(ctx, args.operatorNamespace).map(
      (p) =>
        new k8s.networking.v1.NetworkPolicy(
          `${name}-${p.role}`,
          { metadata: { name: p.name, namespace: ctx.namespace, labels: { "kubeonkube.io/cluster": ctx.name, "app.kubernetes.io/part-of": "kube-on-kube" } }, spec: p.spec },
          { parent: this },
        ),
    );
    this.registerOutputs({});
  }
}
