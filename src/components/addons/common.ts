/**
 * What every add-on object shares: the namespace, the labels, the annotations that make the stack
 * own its objects without waiting for Pods, and the small pieces of Pod specs they all use.
 */
import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
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
  pod: { serviceAccountName: PodSpec["serviceAccountName"]; containers: PodSpec["containers"]; volumes: PodSpec["volumes"]; annotations?: pulumi.Input<Record<string, string>> },
): k8s.types.input.apps.v1.DaemonSetSpec {
  return {
    selector: { matchLabels: labels },
    updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
    template: {
      metadata: { labels: { ...labels, ...PART_OF_LABEL }, ...(pod.annotations ? { annotations: pod.annotations } : {}) },
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

/** Where a Pod's ServiceAccount volume puts its token and the cluster's CA file. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * On an add-on's Pod template: the trust bundle its kubeconfig embeds, by fingerprint, so that a
 * new bundle (each phase of a CA rotation) rolls its Pods onto it.
 */
export const TRUST_BUNDLE_ANNOTATION = "kubeonkube.io/trust-bundle";

/**
 * The kubeconfig an add-on talks to the business apiserver with: `server`, the Pod's ServiceAccount
 * token (a file client-go reads again as the kubelet refreshes it) and, given `trustBundle`, the
 * cluster's trust bundle embedded. Why embedded rather than the ServiceAccount volume's `ca.crt`:
 * that file comes from the `kube-root-ca.crt` ConfigMap, which the controller-manager rewrites only
 * once it leads again after a rotation phase rolled it, and the kubelet copies into Pods later
 * still; clients before client-go 1.36 (flannel) read it only when they start. A Pod started
 * after the stack wrote this ConfigMap trusts exactly the bundle of the phase that started it.
 */
export function addonKubeconfig(server: string, trustBundle: string | undefined): Record<string, unknown> {
  if (!server.startsWith("https://")) throw new Error(`apiServerEndpoint "${server}" is not an https:// URL`);
  const authority = trustBundle === undefined ? { "certificate-authority": `${SERVICE_ACCOUNT_DIR}/ca.crt` } : { "certificate-authority-data": Buffer.from(trustBundle).toString("base64") };
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "default", cluster: { server, ...authority } }],
    users: [{ name: "default", user: { tokenFile: `${SERVICE_ACCOUNT_DIR}/token` } }],
    contexts: [{ name: "default", context: { cluster: "default", user: "default", namespace: "default" } }],
    "current-context": "default",
  };
}

/** The Pod template annotations for a trust bundle (none without one): its sha256. */
export function trustBundleAnnotations(trustBundle: string | undefined): Record<string, string> {
  return trustBundle === undefined ? {} : { [TRUST_BUNDLE_ANNOTATION]: `sha256:${createHash("sha256").update(trustBundle).digest("hex")}` };
}

