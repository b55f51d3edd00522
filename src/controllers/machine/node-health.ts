/**
 * What each business cluster says about its nodes: one watch of Nodes per cluster, through that
 * cluster's admin kubeconfig, so that Machines are checked cheaply from Node Ready and the kubelet
 * version instead of a Pulumi refresh per machine (docs/architecture.md, "Machines: one stack
 * each, checked without the engine").
 *
 * Each watch is a `ResilientInformer` (restart with backoff, relist on 410): a business apiserver
 * that restarts or drops off the network comes back on its own. Kubelets rewrite their Node
 * status every few minutes even when nothing changed, so changes are reported only when what a
 * Machine reconciler looks at (`NodeView`) changed, plus every add and delete: with thousands of
 * nodes that is the difference between a queue that idles and one that never does.
 */
import { CoreV1Api, KubeConfig, type V1Node } from "@kubernetes/client-node";
import { listInPages, ResilientInformer, type ChangeListener, type InformerOptions } from "../../runtime/informer";
import { trustedKubeconfigParts } from "../../components/trusted-kubeconfig";

export interface NodeView {
  name: string;
  /** The Ready condition is True. */
  ready: boolean;
  /** lastTransitionTime of the Ready condition: since when the node is (Not)Ready. */
  readySince?: Date;
  kubeletVersion?: string;
  /** The Ready condition's reason, e.g. KubeletNotReady, NodeStatusUnknown. */
  reason?: string;
  /** The Ready condition's message (not a change on its own: it is reworded freely). */
  message?: string;
}

/** What the watches need from an informer; `ResilientInformer<V1Node>` is one. */
export interface NodeInformer {
  onChange(listener: ChangeListener): void;
  start(): void;
  stop(): Promise<void>;
  hasSynced(): boolean;
  waitForSync(signal?: AbortSignal): Promise<void>;
  list(): readonly V1Node[];
  get(key: string): V1Node | undefined;
}

export type MakeNodeInformer = (args: { clusterKey: string; kubeConfig: KubeConfig; onError: (err: unknown, restartInMs: number) => void }) => NodeInformer;

export interface BusinessNodeWatchesOptions {
  /** A node was added, deleted, or its `NodeView` changed. Must not throw (a throw is ignored). */
  readonly onChange: (clusterKey: string, nodeName: string) => void;
  /** A watch failed and restarts in `restartInMs` (logs, metrics). */
  readonly onError?: (clusterKey: string, err: unknown, restartInMs: number) => void;
  /** Builds each cluster's informer; default `nodeInformer`. Tests inject fakes and clocks here. */
  readonly makeInformer?: MakeNodeInformer;
}

/** The informer of all Nodes of the cluster `kubeConfig` reaches. `extra` overrides options (tests). */
export function nodeInformer(kubeConfig: KubeConfig, onError: (err: unknown, restartInMs: number) => void, extra: Partial<InformerOptions<V1Node>> = {}): ResilientInformer<V1Node> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return new ResilientInformer<V1Node>({ kubeConfig, path: "/api/v1/nodes", list: () => listInPages((page) => core.listNode(page)), onError, ...extra });
}

/** Lists arrive typed (dates parsed), watch events as plain JSON (dates as strings): accept both. */
function toDate(value: unknown): Date | undefined {
  const date = value instanceof Date ? value : typeof value === "string" ? new Date(value) : undefined;
  return date && Number.isFinite(date.getTime()) ? date : undefined;
}

export function nodeView(node: V1Node): NodeView {
  const ready = node.status?.conditions?.find((c) => c.type === "Ready");
  const view: NodeView = { name: node.metadata?.name ?? "", ready: ready?.status === "True" };
  const since = toDate(ready?.lastTransitionTime);
  if (since) view.readySince = since;
  if (node.status?.nodeInfo?.kubeletVersion) view.kubeletVersion = node.status.nodeInfo.kubeletVersion;
  if (ready?.reason) view.reason = ready.reason;
  if (ready?.message) view.message = ready.message;
  return view;
}

/** The parts of a view whose change is news. */
function signature(view: NodeView): string {
  return JSON.stringify([view.ready, view.readySince?.getTime(), view.kubeletVersion, view.reason]);
}

/**
 * The client of a business cluster, built from the server, CA and credentials of its admin
 * kubeconfig only (trusted-kubeconfig.ts): never `loadFromString` of the text, which would let an
 * `exec` or `auth-provider` entry run a command as the operator and path fields read its files.
 * The error names the cluster and the refused fields, and never quotes the text.
 */
export function loadKubeconfig(clusterKey: string, text: string): KubeConfig {
  const parts = trustedKubeconfigParts(text, `business cluster ${clusterKey}: its admin kubeconfig`);
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    { name: parts.clusterName, server: parts.server, caData: b64(parts.caCertPem), skipTLSVerify: false },
    {
      name: parts.userName,
      certData: parts.clientCertPem === undefined ? undefined : b64(parts.clientCertPem),
      keyData: parts.clientKeyPem === undefined ? undefined : b64(parts.clientKeyPem),
      token: parts.token,
    },
  );
  return kc;
}

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

interface ClusterWatch {
  readonly kubeconfig: string;
  readonly informer: NodeInformer;
  /** Last reported signature of each node, to report changes only. Kept across restarts. */
  readonly seen: Map<string, string>;
  readonly abort: AbortController;
}

export class BusinessNodeWatches {
  private readonly watches = new Map<string, ClusterWatch>();
  private readonly stopping = new Set<Promise<void>>();

  constructor(private readonly opts: BusinessNodeWatchesOptions) {}

  /**
   * Starts the watch of a cluster, or restarts it when the kubeconfig text changed (a rotated
   * credential, a moved endpoint); the same text again is a no-op. Throws, keeping any running
   * watch, when the text is not a usable kubeconfig.
   */
  ensure(clusterKey: string, kubeconfig: string): void {
    const current = this.watches.get(clusterKey);
    if (current?.kubeconfig === kubeconfig) return;
    const kubeConfig = loadKubeconfig(clusterKey, kubeconfig);
    if (current) this.retire(current);
    const make = this.opts.makeInformer ?? (({ kubeConfig: kc, onError }) => nodeInformer(kc, onError));
    // Filled in once the informer exists; errors of a replaced watch are not news.
    const self: { watch?: ClusterWatch } = {};
    const onError = (err: unknown, restartInMs: number) => {
      if (!self.watch || this.watches.get(clusterKey) !== self.watch) return;
      try {
        this.opts.onError?.(clusterKey, err, restartInMs);
      } catch {
        // A broken log hook must not stop the watch's restart.
      }
    };
    const informer = make({ clusterKey, kubeConfig, onError });
    const started: ClusterWatch = { kubeconfig, informer, seen: current?.seen ?? new Map(), abort: new AbortController() };
    self.watch = started;
    this.watches.set(clusterKey, started);
    informer.onChange((key, type) => this.changed(clusterKey, started, key, type === "delete"));
    informer.start();
    // A restarted watch starts from a fresh list: nodes deleted meanwhile are not reported as deletes.
    if (current) {
      informer.waitForSync(started.abort.signal).then(
        () => this.forgetVanished(clusterKey, started),
        () => undefined,
      );
    }
  }

  stop(clusterKey: string): void {
    const watch = this.watches.get(clusterKey);
    if (!watch) return;
    this.watches.delete(clusterKey);
    this.retire(watch);
  }

  async stopAll(): Promise<void> {
    for (const key of [...this.watches.keys()]) this.stop(key);
    await Promise.all(this.stopping);
  }

  /** The watch of this cluster has listed its nodes at least once. */
  synced(clusterKey: string): boolean {
    return this.watches.get(clusterKey)?.informer.hasSynced() ?? false;
  }

  node(clusterKey: string, nodeName: string): NodeView | undefined {
    const node = this.watches.get(clusterKey)?.informer.get(nodeName);
    return node ? nodeView(node) : undefined;
  }

  nodes(clusterKey: string): NodeView[] {
    const informer = this.watches.get(clusterKey)?.informer;
    return (informer?.list() ?? []).map(nodeView).sort((a, b) => a.name.localeCompare(b.name));
  }

  private changed(clusterKey: string, watch: ClusterWatch, nodeName: string, deleted: boolean): void {
    // Events of a retired informer may still arrive while it stops.
    if (this.watches.get(clusterKey) !== watch) return;
    const node = deleted ? undefined : watch.informer.get(nodeName);
    if (!node) {
      watch.seen.delete(nodeName);
    } else {
      const sig = signature(nodeView(node));
      if (watch.seen.get(nodeName) === sig) return;
      watch.seen.set(nodeName, sig);
    }
    this.report(clusterKey, nodeName);
  }

  private forgetVanished(clusterKey: string, watch: ClusterWatch): void {
    if (this.watches.get(clusterKey) !== watch) return;
    const present = new Set(watch.informer.list().map((n) => n.metadata?.name));
    for (const name of [...watch.seen.keys()]) {
      if (present.has(name)) continue;
      watch.seen.delete(name);
      this.report(clusterKey, name);
    }
  }

  private report(clusterKey: string, nodeName: string): void {
    try {
      this.opts.onChange(clusterKey, nodeName);
    } catch {
      // One failing listener must not break the watch's callback chain.
    }
  }

  private retire(watch: ClusterWatch): void {
    watch.abort.abort();
    const stopped = watch.informer.stop().catch(() => undefined);
    this.stopping.add(stopped);
    void stopped.then(() => this.stopping.delete(stopped));
  }
}
