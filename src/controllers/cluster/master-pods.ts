/**
 * Why a Cluster's update is not finishing, read from its masters' Pods. pulumi-kubernetes waits
 * for a StatefulSet or Deployment quietly ("Waiting for StatefulSet to create Pods") and only
 * fails at its 10-minute timeout; the reason — a Pod the meta-cluster cannot schedule, an image
 * it cannot pull, a container that keeps crashing — is on the Pods. While an update runs, the
 * Cluster reconciler reads them every few seconds and names what is stuck in `Progressing`.
 */
import * as k8s from "@kubernetes/client-node";

/** Container waiting reasons that do not clear on their own. */
const STUCK_WAITING = new Set([
  "CrashLoopBackOff",
  "ImagePullBackOff",
  "ErrImagePull",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);

const MAX_TROUBLES = 3;
const MAX_MESSAGE = 200;

/** The shape read here (a subset of V1Pod, so tests can write pods as plain objects). */
export interface PodLike {
  readonly metadata?: { readonly name?: string; readonly deletionTimestamp?: unknown };
  readonly status?: {
    readonly phase?: string;
    readonly conditions?: readonly { readonly type?: string; readonly status?: string; readonly reason?: string; readonly message?: string }[];
    readonly initContainerStatuses?: readonly ContainerStatusLike[];
    readonly containerStatuses?: readonly ContainerStatusLike[];
  };
}

interface ContainerStatusLike {
  readonly name?: string;
  /** The image the kubelet is pulling or ran, as the Pod spec names it. */
  readonly image?: string;
  readonly state?: { readonly waiting?: { readonly reason?: string; readonly message?: string } };
}

/** Reasons that mean the node could not get the image: the message then names image and registry. */
const IMAGE_TROUBLE = new Set(["ImagePullBackOff", "ErrImagePull", "InvalidImageName"]);

/**
 * The registry an image reference is pulled from, as container runtimes read it: the first path
 * part when it looks like a host (has a dot or a port, or is localhost), else Docker Hub. A node
 * may pull it through a mirror; the name is still what the platform configures the mirror for.
 */
export function registryOf(image: string): string {
  const slash = image.indexOf("/");
  const first = slash < 0 ? "" : image.slice(0, slash);
  return first && (first.includes(".") || first.includes(":") || first === "localhost") ? first : "docker.io";
}

const short = (text: string) => {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > MAX_MESSAGE ? `${line.slice(0, MAX_MESSAGE - 1)}…` : line;
};

/**
 * "big-etcd-0 unschedulable: 0/1 nodes are available: 1 Insufficient cpu." and the like: at most
 * three, then how many more. Pods being deleted and Pods merely starting are not trouble.
 */
export function podTroubles(pods: readonly PodLike[]): string[] {
  const troubles: string[] = [];
  for (const pod of pods) {
    if (pod.metadata?.deletionTimestamp) continue;
    const name = pod.metadata?.name ?? "?";
    const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
    if (pod.status?.phase === "Pending" && scheduled?.status === "False") {
      troubles.push(`${name} unschedulable${scheduled.message ? `: ${short(scheduled.message)}` : scheduled.reason ? ` (${scheduled.reason})` : ""}`);
      continue;
    }
    for (const c of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
      const waiting = c.state?.waiting;
      if (!waiting?.reason || !STUCK_WAITING.has(waiting.reason)) continue;
      // The image first: the kubelet's own message is long and may be cut short.
      const image = IMAGE_TROUBLE.has(waiting.reason) && c.image ? ` (image ${c.image} from registry ${registryOf(c.image)})` : "";
      troubles.push(`${name}/${c.name ?? "?"} ${waiting.reason}${image}${waiting.message ? `: ${short(waiting.message)}` : ""}`);
    }
  }
  if (troubles.length <= MAX_TROUBLES) return troubles;
  return [...troubles.slice(0, MAX_TROUBLES), `${troubles.length - MAX_TROUBLES} more`];
}

/** Reads the Pods of a masters' namespace (one list call). */
export class MasterPods {
  private readonly core: k8s.CoreV1Api;

  constructor(kubeConfig: k8s.KubeConfig) {
    this.core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  }

  async troubles(mastersNamespace: string): Promise<string[]> {
    return podTroubles((await this.core.listNamespacedPod({ namespace: mastersNamespace })).items as PodLike[]);
  }
}
