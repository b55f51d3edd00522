/**
 * What every add-on object shares: the namespace, the labels, the annotations that make the stack
 * own its objects without waiting for Pods, and the small pieces of Pod specs they all use.
 */
import type * as k8s from "@pulumi/kubernetes";
import { PATCH_FORCE_ANNOTATION } from "../control-plane";

/** Every add-on lives in kube-system, where kubeadm and the upstream manifests put them. */
export const ADDON_NAMESPACE = "kube-system";

export const PART_OF_LABEL = { "app.kubernetes.io/part-of": "kube-on-kube" } as const;

/**
 * pulumi-kubernetes waits up to 10 minutes for a workload's Pods (and a selector Service's
 * endpoints) to be ready. A business cluster with no Machines yet has no node to run them, and its
 * Cluster must not sit in its update for that: the stack applies the add-ons and moves on. Their
 * readiness shows where it matters: a worker's Node turns Ready only once the pod network wrote
 * its CNI configuration there (the Machine's Ready gate waits for that), and `kubectl -n
 * kube-system get ds,deploy` in the business cluster shows kube-proxy and CoreDNS.
 */
export const SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait";

export type ObjectMeta = k8s.types.input.meta.v1.ObjectMeta;

/**
 * Metadata of an add-on object. `patchForce`: the stack owns these objects alone, so it takes back
 * fields a hand edit (`kubectl edit`) made another manager's, as ControlPlane does for the masters;
 * otherwise drift of an add-on could never be corrected. `skipAwait` for workloads and Services
 * (SKIP_AWAIT_ANNOTATION).
 */
export function addonMetadata(name: string, opts: { labels?: Record<string, string>; namespaced?: boolean; skipAwait?: boolean; annotations?: Record<string, string> } = {}): ObjectMeta {
  return {
    name,
    ...(opts.namespaced === false ? {} : { namespace: ADDON_NAMESPACE }),
    labels: { ...opts.labels, ...PART_OF_LABEL },
    annotations: { ...opts.annotations, [PATCH_FORCE_ANNOTATION]: "true", ...(opts.skipAwait ? { [SKIP_AWAIT_ANNOTATION]: "true" } : {}) },
  };
}

/** Node agents (network, Service routing) run on every node whatever its taints, as upstream's do. */
export const TOLERATE_ALL = [{ operator: "Exists" }];

type PodSpec = k8s.types.input.core.v1.PodSpec;

/**
 * The DaemonSet spec of a node agent (flannel, kube-proxy): on every Linux node whatever its
 * taints, in the host's network namespace, node-critical, rolled one node at a time.
 */
export function nodeAgentDaemonSetSpec(
  labels: Record<string, string>,
  pod: { serviceAccountName: PodSpec["serviceAccountName"]; containers: PodSpec["containers"]; volumes: PodSpec["volumes"] },
): k8s.types.input.apps.v1.DaemonSetSpec {
  return {
    selector: { matchLabels: labels },
    updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
    template: {
      metadata: { labels: { ...labels, ...PART_OF_LABEL } },
      spec: {
        serviceAccountName: pod.serviceAccountName,
        hostNetwork: true,
        priorityClassName: "system-node-critical",
        tolerations: TOLERATE_ALL,
        nodeSelector: { "kubernetes.io/os": "linux" },
        containers: pod.containers,
        volumes: pod.volumes,
      },
    },
  };
}

/** An environment variable from the Pod's own fields (downward API). */
export const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });

/** The host's iptables lock, shared with every other netfilter user on the node. */
export const XTABLES_LOCK_VOLUME = { name: "xtables-lock", hostPath: { path: "/run/xtables.lock", type: "FileOrCreate" } };

/**
 * host and port of an `https://host:port` URL, as in-cluster clients want them in
 * KUBERNETES_SERVICE_HOST/PORT (an IPv6 host without its brackets).
 */
export function hostAndPort(url: string): { host: string; port: string } {
  const parsed = new URL(url);
  if (parsed.protocol !== "https:") throw new Error(`apiServerEndpoint "${url}" is not an https:// URL`);
  return { host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"), port: parsed.port || "443" };
}
