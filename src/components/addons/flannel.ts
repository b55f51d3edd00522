/**
 * FlannelNetwork: the business cluster's pod network. flanneld on every node takes the node's Pod
 * range from its Node object (`--kube-subnet-mgr`: the controller-manager allocates them from
 * `spec.network.podCIDR` with `--allocate-node-cidrs`), routes the other nodes' ranges (host-gw:
 * a route per node over the shared L2 segment; vxlan: a tunnel) and masquerades Pod traffic that
 * leaves the Pod range (`--ip-masq`), so nothing outside the cluster needs a route to its Pods.
 * Its second container writes the node's CNI configuration (flannel-cni-script.ts says why it is
 * not upstream's flannel CNI plugin).
 *
 * flanneld talks to the apiserver through the cluster's endpoint, not through the `kubernetes`
 * Service: that ClusterIP is routed by kube-proxy, which may be disabled or not yet running, and
 * the pod network should not wait for it (a Node is NotReady until this DaemonSet has written its
 * CNI configuration). kube-proxy does the same (kube-proxy.ts). Its kubeconfig, in the same
 * ConfigMap as net-conf.json, embeds the cluster's trust bundle (addonKubeconfig says why).
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { ResolvedAddons } from "../../api/v1alpha1";
import { componentType } from "../type-tokens";
import { stringify } from "yaml";
import { addonKubeconfig, addonMetadata, fieldEnv, nodeAgentDaemonSetSpec, trustBundleAnnotations, XTABLES_LOCK_VOLUME } from "./common";
import { FLANNEL_INSTALL_CNI_SCRIPT } from "./flannel-cni-script";

export const FLANNEL_NAME = "flannel";
const SELECTOR = { "k8s-app": FLANNEL_NAME };
const FLANNEL_CONFIG_DIR = "/etc/kube-flannel";

export interface FlannelNetworkArgs {
  readonly network: ResolvedAddons["network"];
  /** The cluster's Pod range (`spec.network.podCIDR`), flannel's `Network`. */
  readonly podCIDR: string;
  /** `https://host:port` of the business apiserver as nodes reach it. */
  readonly apiServerEndpoint: pulumi.Input<string>;
  /**
   * PEM of every cluster CA trusted now, embedded in flanneld's kubeconfig; a change rolls the
   * Pods (flannel's client-go reads its CA only when it starts). Without it flanneld uses the
   * ServiceAccount volume's `ca.crt`.
   */
  readonly trustBundle?: pulumi.Input<string>;
}

/** flannel's net-conf.json: the Pod range and the backend. */
export function flannelNetConf(podCIDR: string, backend: ResolvedAddons["network"]["backend"]): string {
  return JSON.stringify({ Network: podCIDR, Backend: { Type: backend } }, null, 2);
}

export class FlannelNetwork extends pulumi.ComponentResource {
  readonly daemonSet: k8s.apps.v1.DaemonSet;

  constructor(name: string, args: FlannelNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super(componentType("FlannelNetwork"), name, {}, opts);
    const child = { parent: this };
    const labels = { ...SELECTOR };

    const sa = new k8s.core.v1.ServiceAccount(`${name}-service-account`, { metadata: addonMetadata(FLANNEL_NAME, { labels }) }, child);
    const role = new k8s.rbac.v1.ClusterRole(
      `${name}-cluster-role`,
      {
        metadata: addonMetadata(FLANNEL_NAME, { labels, namespaced: false }),
        rules: [
          // Its own Pod, to find its node when NODE_NAME is not set.
          { apiGroups: [""], resources: ["pods"], verbs: ["get"] },
          { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
          // The node's flannel annotations (public IP, backend data).
          { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
        ],
      },
      child,
    );
    const binding = new k8s.rbac.v1.ClusterRoleBinding(
      `${name}-cluster-role-binding`,
      {
        metadata: addonMetadata(FLANNEL_NAME, { labels, namespaced: false }),
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role.metadata.name },
        subjects: [{ kind: "ServiceAccount", name: sa.metadata.name, namespace: sa.metadata.namespace }],
      },
      child,
    );
    const config = new k8s.core.v1.ConfigMap(
      `${name}-config`,
      {
        metadata: addonMetadata("kube-flannel-cfg", { labels }),
        data: {
          "net-conf.json": flannelNetConf(args.podCIDR, args.network.backend),
          kubeconfig: pulumi.all([args.apiServerEndpoint, args.trustBundle]).apply(([server, bundle]) => stringify(addonKubeconfig(server, bundle))),
        },
      },
      child,
    );
    const runFlannel = { name: "run-flannel", mountPath: "/run/flannel" };
    this.daemonSet = new k8s.apps.v1.DaemonSet(
      `${name}-daemonset`,
      {
        metadata: addonMetadata(FLANNEL_NAME, { labels, skipAwait: true }),
        spec: nodeAgentDaemonSetSpec(SELECTOR, {
          serviceAccountName: sa.metadata.name,
          annotations: pulumi.output(args.trustBundle).apply(trustBundleAnnotations),
          containers: [
            {
              name: "kube-flannel",
              image: args.network.image,
              // The previous flanneld's subnet.env goes first: after the Node was deleted and
              // registered again its range is another, and install-cni must not render the old one.
              command: ["/bin/sh", "-c", 'rm -f /run/flannel/subnet.env && exec /opt/bin/flanneld "$@"', "flanneld"],
              args: ["--ip-masq", "--kube-subnet-mgr", `--kubeconfig-file=${FLANNEL_CONFIG_DIR}/kubeconfig`],
              env: [fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace"), fieldEnv("NODE_NAME", "spec.nodeName")],
              resources: { requests: { cpu: "100m", memory: "50Mi" } },
              // Routes, the VXLAN device and masquerade rules: what upstream's manifest grants, not privileged.
              securityContext: { privileged: false, capabilities: { add: ["NET_ADMIN", "NET_RAW"] } },
              volumeMounts: [runFlannel, { name: "flannel-cfg", mountPath: `${FLANNEL_CONFIG_DIR}/` }, { name: "xtables-lock", mountPath: "/run/xtables.lock" }],
            },
            {
              name: "install-cni",
              image: args.network.image,
              command: ["/bin/sh", "-c", FLANNEL_INSTALL_CNI_SCRIPT],
              resources: { requests: { cpu: "5m", memory: "8Mi" } },
              // Root, to write the node's CNI directory whoever owns it, and to clear a stale
              // address off the node's cni0 bridge (flannel-cni-script.ts); nothing else.
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"], add: ["DAC_OVERRIDE", "NET_ADMIN"] } },
              volumeMounts: [{ ...runFlannel, readOnly: true }, { name: "cni-conf", mountPath: "/etc/cni/net.d" }],
            },
          ],
          volumes: [
            { name: "run-flannel", hostPath: { path: "/run/flannel", type: "DirectoryOrCreate" } },
            { name: "cni-conf", hostPath: { path: "/etc/cni/net.d", type: "DirectoryOrCreate" } },
            { name: "flannel-cfg", configMap: { name: config.metadata.name } },
            XTABLES_LOCK_VOLUME,
          ],
        }),
      },
      { ...child, dependsOn: [binding] },
    );
    this.registerOutputs({});
  }
}
