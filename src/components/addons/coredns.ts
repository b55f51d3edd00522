/**
 * CoreDns: the cluster DNS. A Deployment of `replicas` CoreDNS Pods spread over nodes, a
 * PodDisruptionBudget, and the Service `kube-dns` at the cluster DNS address (the tenth of
 * `serviceCIDR`, as kubeadm derives it) that every kubelet's `clusterDNS` names. CoreDNS reaches
 * the apiserver through the `kubernetes` Service with a kubeconfig that embeds the cluster's
 * trust bundle when given one (addonKubeconfig says why).
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { stringify } from "yaml";
import { clusterDnsAddress, httpsUrl, kubernetesServiceAddress, type ResolvedAddons } from "../../api/v1alpha1";
import { componentType } from "../type-tokens";
import { addonKubeconfig, addonMetadata, trustBundleAnnotations } from "./common";

export const COREDNS_NAME = "coredns";
const SELECTOR = { "k8s-app": "kube-dns" };
/** The distroless CoreDNS image's `nonroot` user, by number: runAsNonRoot cannot check a user name. */
const NONROOT = 65532;

export interface CoreDnsArgs {
  readonly coreDNS: ResolvedAddons["coreDNS"];
  readonly serviceCIDR: string;
  readonly clusterDomain: string;
  /**
   * PEM of every cluster CA trusted now, embedded in CoreDNS's kubeconfig; a change rolls the
   * Pods. Without it CoreDNS uses its in-cluster configuration (the ServiceAccount's `ca.crt`).
   */
  readonly trustBundle?: pulumi.Input<string>;
}

const CONFIG_DIR = "/etc/coredns";

/**
 * The Corefile: the cluster's names, everything else forwarded to the node's resolvers. With
 * `kubeconfig`, the kubernetes plugin connects with that file (CONFIG_DIR) instead of in-cluster.
 */
export function corefile(clusterDomain: string, kubeconfig = false): string {
  return `.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes ${clusterDomain} in-addr.arpa ip6.arpa {
${kubeconfig ? `        kubeconfig ${CONFIG_DIR}/kubeconfig\n` : ""}        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
        max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
`;
}

export class CoreDns extends pulumi.ComponentResource {
  readonly deployment: k8s.apps.v1.Deployment;
  readonly service: k8s.core.v1.Service;
  /** The `kube-dns` Service's address: the kubelets' clusterDNS. */
  readonly address: string;

  constructor(name: string, args: CoreDnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super(componentType("CoreDns"), name, {}, opts);
    const child = { parent: this };
    const labels = { ...SELECTOR };
    this.address = clusterDnsAddress(args.serviceCIDR);

    const sa = new k8s.core.v1.ServiceAccount(`${name}-service-account`, { metadata: addonMetadata(COREDNS_NAME, { labels }) }, child);
    const role = new k8s.rbac.v1.ClusterRole(
      `${name}-cluster-role`,
      {
        metadata: addonMetadata("system:coredns", { labels, namespaced: false }),
        rules: [
          { apiGroups: [""], resources: ["endpoints", "services", "pods", "namespaces"], verbs: ["list", "watch"] },
          { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
        ],
      },
      child,
    );
    const binding = new k8s.rbac.v1.ClusterRoleBinding(
      `${name}-cluster-role-binding`,
      {
        metadata: addonMetadata("system:coredns", { labels, namespaced: false }),
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role.metadata.name },
        subjects: [{ kind: "ServiceAccount", name: sa.metadata.name, namespace: sa.metadata.namespace }],
      },
      child,
    );
    const withKubeconfig = args.trustBundle !== undefined;
    const server = httpsUrl(kubernetesServiceAddress(args.serviceCIDR), 443);
    const config = new k8s.core.v1.ConfigMap(
      `${name}-config`,
      {
        metadata: addonMetadata(COREDNS_NAME, { labels }),
        data: {
          Corefile: corefile(args.clusterDomain, withKubeconfig),
          ...(withKubeconfig ? { kubeconfig: pulumi.output(args.trustBundle).apply((bundle) => stringify(addonKubeconfig(server, bundle))) } : {}),
        },
      },
      child,
    );

    this.deployment = new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata: addonMetadata(COREDNS_NAME, { labels, skipAwait: true }),
        spec: {
          replicas: args.coreDNS.replicas,
          selector: { matchLabels: SELECTOR },
          strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
          template: {
            metadata: { labels: { ...labels, "app.kubernetes.io/part-of": "kube-on-kube" }, annotations: pulumi.output(args.trustBundle).apply(trustBundleAnnotations) },
            spec: {
              serviceAccountName: sa.metadata.name,
              priorityClassName: "system-cluster-critical",
              // The node's resolvers (`forward . /etc/resolv.conf`), not itself.
              dnsPolicy: "Default",
              nodeSelector: { "kubernetes.io/os": "linux" },
              tolerations: [{ key: "CriticalAddonsOnly", operator: "Exists" }],
              // One replica per node where there are enough nodes, so a node's loss keeps DNS up.
              affinity: {
                podAntiAffinity: {
                  preferredDuringSchedulingIgnoredDuringExecution: [
                    { weight: 100, podAffinityTerm: { labelSelector: { matchLabels: SELECTOR }, topologyKey: "kubernetes.io/hostname" } },
                  ],
                },
              },
              securityContext: { seccompProfile: { type: "RuntimeDefault" } },
              containers: [
                {
                  name: "coredns",
                  image: args.coreDNS.image,
                  args: ["-conf", "/etc/coredns/Corefile"],
                  ports: [
                    { name: "dns", containerPort: 53, protocol: "UDP" },
                    { name: "dns-tcp", containerPort: 53, protocol: "TCP" },
                    { name: "metrics", containerPort: 9153, protocol: "TCP" },
                  ],
                  resources: { requests: { cpu: "100m", memory: "70Mi" }, limits: { memory: "170Mi" } },
                  // Port 53 as a non-root user: NET_BIND_SERVICE and nothing else.
                  securityContext: {
                    allowPrivilegeEscalation: false,
                    capabilities: { add: ["NET_BIND_SERVICE"], drop: ["ALL"] },
                    readOnlyRootFilesystem: true,
                    runAsNonRoot: true,
                    runAsUser: NONROOT,
                    runAsGroup: NONROOT,
                  },
                  livenessProbe: { httpGet: { path: "/health", port: 8080 }, initialDelaySeconds: 60, timeoutSeconds: 5, failureThreshold: 5 },
                  readinessProbe: { httpGet: { path: "/ready", port: 8181 }, periodSeconds: 2 },
                  volumeMounts: [{ name: "config", mountPath: CONFIG_DIR, readOnly: true }],
                },
              ],
              volumes: [
                {
                  name: "config",
                  configMap: { name: config.metadata.name, items: [{ key: "Corefile", path: "Corefile" }, ...(withKubeconfig ? [{ key: "kubeconfig", path: "kubeconfig" }] : [])] },
                },
              ],
            },
          },
        },
      },
      { ...child, dependsOn: [binding] },
    );
    new k8s.policy.v1.PodDisruptionBudget(
      `${name}-pdb`,
      { metadata: addonMetadata(COREDNS_NAME, { labels }), spec: { maxUnavailable: 1, selector: { matchLabels: SELECTOR } } },
      child,
    );
    // skipAwait: a selector Service is awaited until it has a ready endpoint, which needs a node.
    this.service = new k8s.core.v1.Service(
      `${name}-service`,
      {
        metadata: addonMetadata("kube-dns", {
          labels: { ...labels, "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true" },
          annotations: { "prometheus.io/port": "9153", "prometheus.io/scrape": "true" },
          skipAwait: true,
        }),
        spec: {
          selector: SELECTOR,
          clusterIP: this.address,
          ports: [
            { name: "dns", port: 53, targetPort: 53, protocol: "UDP" },
            { name: "dns-tcp", port: 53, targetPort: 53, protocol: "TCP" },
            { name: "metrics", port: 9153, targetPort: 9153, protocol: "TCP" },
          ],
        },
      },
      child,
    );
    this.registerOutputs({ address: this.address });
  }
}
