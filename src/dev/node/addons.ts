/**
 * What the real dev node runs as Pods, applied by `kok dev up`: kube-proxy
 * (Service routing, in the node's own network namespace), CoreDNS (cluster DNS at the Service
 * range's 10th address) and local-path-provisioner as the default StorageClass (volumes under the
 * node's state directory). Images keep their upstream names; the node pulls them through the
 * registry mirror. kube-proxy reaches the apiserver as kubeadm's does, through a kubeconfig with
 * its ServiceAccount token, because the `kubernetes` Service it would otherwise use is what it
 * routes; here that is the forwarder on the machine's end of the node link.
 */
import { join } from "node:path";
import { stringify } from "yaml";
import type { DevConfig } from "../config";
import { clusterDnsAddress, type RealNodeLayout } from "./layout";

export const ADDON_IMAGES = {
  kubeProxy: "registry.k8s.io/kube-proxy:v1.36.3",
  coredns: "registry.k8s.io/coredns/coredns:v1.15.0",
  localPath: "docker.io/rancher/local-path-provisioner:v0.0.30",
  helper: "docker.io/library/busybox:1.35.0",
} as const;

type Obj = Record<string, unknown>;
const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
const tolerateAll = [{ operator: "Exists" }];
const dropAll = { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } };

const serviceAccount = (namespace: string, name: string): Obj => ({ apiVersion: "v1", kind: "ServiceAccount", metadata: { namespace, name } });
const clusterBinding = (name: string, role: string, namespace: string, sa: string): Obj => ({
  apiVersion: "rbac.authorization.k8s.io/v1",
  kind: "ClusterRoleBinding",
  metadata: { name },
  roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
  subjects: [{ kind: "ServiceAccount", namespace, name: sa }],
});
const clusterRole = (name: string, rules: Obj[]): Obj => ({ apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name }, rules });
/** One replica of `podSpec`, selected and labelled by `labels`. */
const deployment = (namespace: string, name: string, labels: Record<string, string>, podSpec: Obj): Obj => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { namespace, name, labels },
  spec: { replicas: 1, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: podSpec } },
});

function kubeProxy(config: DevConfig, layout: RealNodeLayout): Obj[] {
  const ns = "kube-system";
  const kubeconfig = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "default", cluster: { server: `https://${layout.link.host}:${config.ports.apiServer}`, "certificate-authority": `${SA_DIR}/ca.crt`, "tls-server-name": "localhost" } }],
    users: [{ name: "default", user: { tokenFile: `${SA_DIR}/token` } }],
    contexts: [{ name: "default", context: { cluster: "default", user: "default", namespace: "default" } }],
    "current-context": "default",
  };
  const proxyConfig = {
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    clientConnection: { kubeconfig: "/var/lib/kube-proxy/kubeconfig.conf" },
    mode: "iptables",
    clusterCIDR: config.podCIDR,
    // Pods reaching a Service whose endpoint shares their bridge: masquerade, so replies come back through the node.
    iptables: { masqueradeAll: true },
    // Zero: leave the conntrack table size and timeouts alone (the table size is machine-wide).
    conntrack: { maxPerCore: 0, tcpEstablishedTimeout: "0s", tcpCloseWaitTimeout: "0s" },
  };
  const labels = { "k8s-app": "kube-proxy" };
  return [
    serviceAccount(ns, "kube-proxy"),
    clusterBinding("kok-dev:node-proxier", "system:node-proxier", ns, "kube-proxy"),
    { apiVersion: "v1", kind: "ConfigMap", metadata: { namespace: ns, name: "kube-proxy" }, data: { "config.conf": stringify(proxyConfig), "kubeconfig.conf": stringify(kubeconfig) } },
    {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: { namespace: ns, name: "kube-proxy", labels },
      spec: {
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: "kube-proxy",
            hostNetwork: true,
            priorityClassName: "system-node-critical",
            tolerations: tolerateAll,
            containers: [
              {
                name: "kube-proxy",
                image: ADDON_IMAGES.kubeProxy,
                command: ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)"],
                env: [{ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }],
                securityContext: { privileged: true },
                volumeMounts: [
                  { name: "kube-proxy", mountPath: "/var/lib/kube-proxy" },
                  { name: "xtables-lock", mountPath: "/run/xtables.lock" },
                ],
              },
            ],
            volumes: [
              { name: "kube-proxy", configMap: { name: "kube-proxy" } },
              // The node's own lock file: iptables in the node's namespace never waits for the machine's.
              { name: "xtables-lock", hostPath: { path: join(layout.dir, "xtables.lock"), type: "FileOrCreate" } },
            ],
          },
        },
      },
    },
  ];
}

function coredns(config: DevConfig): Obj[] {
  const ns = "kube-system";
  const labels = { "k8s-app": "kube-dns" };
  // No `forward`: the machine's resolver is not reachable from Pods (no NAT); other names fail fast.
  const corefile = `.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes ${config.clusterDomain} in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    cache 30
    loop
    reload
    loadbalance
}
`;
  return [
    serviceAccount(ns, "coredns"),
    clusterRole("kok-dev:coredns", [
      { apiGroups: [""], resources: ["endpoints", "services", "pods", "namespaces"], verbs: ["list", "watch"] },
      { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
    ]),
    clusterBinding("kok-dev:coredns", "kok-dev:coredns", ns, "coredns"),
    { apiVersion: "v1", kind: "ConfigMap", metadata: { namespace: ns, name: "coredns" }, data: { Corefile: corefile } },
    deployment(ns, "coredns", labels, {
      serviceAccountName: "coredns",
      priorityClassName: "system-cluster-critical",
      tolerations: tolerateAll,
      dnsPolicy: "Default",
      containers: [
        {
          name: "coredns",
          image: ADDON_IMAGES.coredns,
          args: ["-conf", "/etc/coredns/Corefile"],
          ports: [
            { name: "dns", containerPort: 53, protocol: "UDP" },
            { name: "dns-tcp", containerPort: 53, protocol: "TCP" },
            { name: "metrics", containerPort: 9153, protocol: "TCP" },
          ],
          resources: { requests: { cpu: "50m", memory: "70Mi" }, limits: { memory: "170Mi" } },
          // The image runs as "nonroot" by name, which runAsNonRoot cannot check: the same user by number.
          securityContext: { ...dropAll, capabilities: { add: ["NET_BIND_SERVICE"], drop: ["ALL"] }, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 },
          readinessProbe: { httpGet: { path: "/ready", port: 8181 }, periodSeconds: 2 },
          livenessProbe: { httpGet: { path: "/health", port: 8080 }, initialDelaySeconds: 60, timeoutSeconds: 5 },
          volumeMounts: [{ name: "config", mountPath: "/etc/coredns", readOnly: true }],
        },
      ],
      volumes: [{ name: "config", configMap: { name: "coredns" } }],
    }),
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { namespace: ns, name: "kube-dns", labels: { ...labels, "kubernetes.io/name": "CoreDNS" } },
      spec: {
        selector: labels,
        clusterIP: clusterDnsAddress(config),
        ports: [
          { name: "dns", port: 53, protocol: "UDP" },
          { name: "dns-tcp", port: 53, protocol: "TCP" },
          { name: "metrics", port: 9153, protocol: "TCP" },
        ],
      },
    },
  ];
}

function localPath(layout: RealNodeLayout): Obj[] {
  const ns = "local-path-storage";
  const labels = { app: "local-path-provisioner" };
  const config = { nodePathMap: [{ node: "DEFAULT_PATH_FOR_NON_LISTED_NODES", paths: [layout.localPathDir] }] };
  const helperPod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "helper-pod" },
    spec: { priorityClassName: "system-node-critical", tolerations: tolerateAll, containers: [{ name: "helper-pod", image: ADDON_IMAGES.helper, imagePullPolicy: "IfNotPresent" }] },
  };
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
    // The provisioner's helper Pods run as this name (its --service-account-name default).
    serviceAccount(ns, "local-path-provisioner-service-account"),
    clusterRole("kok-dev:local-path-provisioner", [
      { apiGroups: [""], resources: ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"], verbs: ["get", "list", "watch"] },
      { apiGroups: [""], resources: ["persistentvolumes"], verbs: ["get", "list", "watch", "create", "patch", "update", "delete"] },
      { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["create", "delete"] },
      { apiGroups: ["storage.k8s.io"], resources: ["storageclasses"], verbs: ["get", "list", "watch"] },
    ]),
    clusterBinding("kok-dev:local-path-provisioner", "kok-dev:local-path-provisioner", ns, "local-path-provisioner-service-account"),
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { namespace: ns, name: "local-path-config" },
      data: {
        "config.json": JSON.stringify(config, null, 2),
        setup: '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
        teardown: '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
        "helperPod.yaml": stringify(helperPod),
      },
    },
    deployment(ns, "local-path-provisioner", labels, {
      serviceAccountName: "local-path-provisioner-service-account",
      tolerations: tolerateAll,
      containers: [
        {
          name: "local-path-provisioner",
          image: ADDON_IMAGES.localPath,
          command: ["local-path-provisioner", "--debug", "start", "--config", "/etc/config/config.json"],
          env: [
            { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
            { name: "CONFIG_MOUNT_PATH", value: "/etc/config/" },
          ],
          volumeMounts: [{ name: "config", mountPath: "/etc/config/" }],
        },
      ],
      volumes: [{ name: "config", configMap: { name: "local-path-config" } }],
    }),
    {
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: { name: "local-path", annotations: { "storageclass.kubernetes.io/is-default-class": "true" } },
      provisioner: "rancher.io/local-path",
      volumeBindingMode: "WaitForFirstConsumer",
      reclaimPolicy: "Delete",
    },
  ];
}

export function nodeAddons(config: DevConfig, layout: RealNodeLayout): Obj[] {
  return [...kubeProxy(config, layout), ...coredns(config), ...localPath(layout)];
}

export function nodeAddonsYaml(config: DevConfig, layout: RealNodeLayout): string {
  return nodeAddons(config, layout)
    .map((o) => stringify(o))
    .join("---\n");
}
