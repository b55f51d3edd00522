/**
 * KubeProxy: Service routing on every node (ClusterIPs, NodePorts), iptables or nftables mode, as
 * kubeadm deploys it: a DaemonSet on the host network with a ConfigMap holding its
 * KubeProxyConfiguration and a kubeconfig.
 *
 * The kubeconfig points at the cluster's endpoint with the Pod's ServiceAccount token, as
 * kubeadm's does, not at the `kubernetes` Service: that Service is what kube-proxy itself routes.
 * It embeds the cluster's trust bundle when given one (addonKubeconfig says why).
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { stringify } from "yaml";
import type { ResolvedAddons } from "../../api/v1alpha1";
import { componentType } from "../type-tokens";
import { addonKubeconfig, addonMetadata, fieldEnv, nodeAgentDaemonSetSpec, trustBundleAnnotations, XTABLES_LOCK_VOLUME } from "./common";

export const KUBE_PROXY_NAME = "kube-proxy";
const SELECTOR = { "k8s-app": KUBE_PROXY_NAME };
const CONFIG_DIR = "/var/lib/kube-proxy";

export interface KubeProxyArgs {
  readonly kubeProxy: ResolvedAddons["kubeProxy"];
  /** The cluster's Pod range: traffic to a Service from outside it is masqueraded. */
  readonly podCIDR: string;
  /** `https://host:port` of the business apiserver as nodes reach it. */
  readonly apiServerEndpoint: pulumi.Input<string>;
  /**
   * PEM of every cluster CA trusted now, embedded in the kubeconfig; a change rolls the Pods.
   * Without it the kubeconfig names the ServiceAccount volume's `ca.crt`.
   */
  readonly trustBundle?: pulumi.Input<string>;
}

/** The KubeProxyConfiguration (config.conf). */
export function kubeProxyConfiguration(mode: ResolvedAddons["kubeProxy"]["mode"], podCIDR: string): Record<string, unknown> {
  return {
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    clientConnection: { kubeconfig: `${CONFIG_DIR}/kubeconfig.conf` },
    mode,
    clusterCIDR: podCIDR,
    // Zero: leave the conntrack table size and timeouts as the host has them. The table size is
    // machine-wide and cannot be set from a network namespace other than the machine's (a test
    // host's, a container's), where kube-proxy would otherwise fail to start; the meta-cluster's
    // own node runs it the same way (src/dev/node/addons.ts).
    conntrack: { maxPerCore: 0, tcpEstablishedTimeout: "0s", tcpCloseWaitTimeout: "0s" },
  };
}

export class KubeProxy extends pulumi.ComponentResource {
  readonly daemonSet: k8s.apps.v1.DaemonSet;

  constructor(name: string, args: KubeProxyArgs, opts?: pulumi.ComponentResourceOptions) {
    super(componentType("KubeProxy"), name, {}, opts);
    const child = { parent: this };
    const labels = { ...SELECTOR };

    const sa = new k8s.core.v1.ServiceAccount(`${name}-service-account`, { metadata: addonMetadata(KUBE_PROXY_NAME, { labels }) }, child);
    // system:node-proxier is a bootstrap role of every apiserver: exactly what kube-proxy reads.
    const binding = new k8s.rbac.v1.ClusterRoleBinding(
      `${name}-cluster-role-binding`,
      {
        metadata: addonMetadata("kube-on-kube:node-proxier", { labels, namespaced: false }),
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:node-proxier" },
        subjects: [{ kind: "ServiceAccount", name: sa.metadata.name, namespace: sa.metadata.namespace }],
      },
      child,
    );
    const config = new k8s.core.v1.ConfigMap(
      `${name}-config`,
      {
        metadata: addonMetadata(KUBE_PROXY_NAME, { labels }),
        data: {
          "config.conf": stringify(kubeProxyConfiguration(args.kubeProxy.mode, args.podCIDR)),
          "kubeconfig.conf": pulumi.all([args.apiServerEndpoint, args.trustBundle]).apply(([server, bundle]) => stringify(addonKubeconfig(server, bundle))),
        },
      },
      child,
    );
    this.daemonSet = new k8s.apps.v1.DaemonSet(
      `${name}-daemonset`,
      {
        metadata: addonMetadata(KUBE_PROXY_NAME, { labels, skipAwait: true }),
        spec: nodeAgentDaemonSetSpec(SELECTOR, {
          serviceAccountName: sa.metadata.name,
          annotations: pulumi.output(args.trustBundle).apply(trustBundleAnnotations),
          containers: [
            {
              name: "kube-proxy",
              image: args.kubeProxy.image,
              command: ["/usr/local/bin/kube-proxy", `--config=${CONFIG_DIR}/config.conf`, "--hostname-override=$(NODE_NAME)"],
              env: [fieldEnv("NODE_NAME", "spec.nodeName")],
              resources: { requests: { cpu: "50m", memory: "50Mi" } },
              // The host's netfilter tables and sysctls, as kubeadm's kube-proxy.
              securityContext: { privileged: true },
              volumeMounts: [
                { name: "kube-proxy", mountPath: CONFIG_DIR, readOnly: true },
                { name: "xtables-lock", mountPath: "/run/xtables.lock" },
                { name: "lib-modules", mountPath: "/lib/modules", readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: "kube-proxy", configMap: { name: config.metadata.name } },
            XTABLES_LOCK_VOLUME,
            { name: "lib-modules", hostPath: { path: "/lib/modules" } },
          ],
        }),
      },
      { ...child, dependsOn: [binding] },
    );
    this.registerOutputs({});
  }
}
