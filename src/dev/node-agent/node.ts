/**
 * The dev node's Node object: registered with the master-role label a Cluster's
 * masterNodeSelector may ask for (there is no default selector), its capacity read from this machine, and kept Ready by a heartbeat (the
 * Lease in kube-node-lease plus the Ready condition), so the node lifecycle controller never
 * taints it while the agent runs.
 */
import { cpus, totalmem } from "node:os";
import * as k8s from "@kubernetes/client-node";
import { statusCode, type Clients } from "./kube";

export const MASTER_NODE_LABEL = "node-role.kubeonkube.io/master";
const AGENT_VERSION = "v0.1.0-kok-dev-node";
const HEARTBEAT_MS = 10_000;

function nodeStatus(hostIP: string, nodeName: string, now: Date): k8s.V1NodeStatus {
  const capacity = {
    cpu: String(cpus().length),
    memory: `${Math.floor(totalmem() / 1024)}Ki`,
    pods: "110",
    "ephemeral-storage": "100Gi",
  };
  const condition = (type: string, status: string, reason: string, message: string): k8s.V1NodeCondition => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: now,
    lastTransitionTime: now,
  });
  return {
    capacity,
    allocatable: capacity,
    addresses: [
      { type: "InternalIP", address: hostIP },
      { type: "Hostname", address: nodeName },
    ],
    conditions: [
      condition("Ready", "True", "KubeletReady", "kok dev node agent is running"),
      condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "not measured by the dev node"),
      condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "not measured by the dev node"),
      condition("PIDPressure", "False", "KubeletHasSufficientPID", "not measured by the dev node"),
    ],
    nodeInfo: {
      architecture: process.arch === "x64" ? "amd64" : process.arch,
      operatingSystem: "linux",
      kubeletVersion: AGENT_VERSION,
      kubeProxyVersion: "",
      containerRuntimeVersion: "kok-dev-processes://0.1.0",
      kernelVersion: "",
      osImage: "",
      machineID: "",
      systemUUID: "",
      bootID: "",
    },
  };
}

function keepTransitionTimes(previous: k8s.V1Node, next: k8s.V1NodeStatus): void {
  for (const c of next.conditions ?? []) {
    const old = previous.status?.conditions?.find((p) => p.type === c.type);
    if (old?.status === c.status && old.lastTransitionTime) c.lastTransitionTime = old.lastTransitionTime;
  }
}

export class NodeHeartbeat {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly clients: Clients,
    private readonly nodeName: string,
    private readonly hostIP: string,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Creates the Node if missing, marks it Ready, and starts the heartbeat. Retries while the
   * apiserver is still bootstrapping (kube-node-lease may not exist yet right after it started).
   */
  async register(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.registerOnce();
      } catch (error) {
        const delay = Math.min(5000, 250 * 2 ** attempt);
        this.log(`registering node ${this.nodeName} failed (${(error as Error).message}); retrying in ${delay} ms`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private async registerOnce(): Promise<void> {
    const { core } = this.clients;
    try {
      await core.readNode({ name: this.nodeName });
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
      await core.createNode({
        body: {
          metadata: {
            name: this.nodeName,
            labels: {
              "kubernetes.io/hostname": this.nodeName,
              "kubernetes.io/os": "linux",
              "kubernetes.io/arch": process.arch === "x64" ? "amd64" : process.arch,
              [MASTER_NODE_LABEL]: "true",
            },
          },
        },
      });
      this.log(`registered node ${this.nodeName}`);
    }
    await this.beat();
    this.timer = setInterval(() => void this.beat().catch((error: unknown) => this.log(`heartbeat failed: ${(error as Error).message}`)), HEARTBEAT_MS);
  }

  private async beat(): Promise<void> {
    const now = new Date();
    const node = await this.clients.core.readNode({ name: this.nodeName });
    const status = nodeStatus(this.hostIP, this.nodeName, now);
    keepTransitionTimes(node, status);
    node.status = { ...node.status, ...status };
    await this.clients.core.replaceNodeStatus({ name: this.nodeName, body: node });
    await this.renewLease(now);
  }

  private async renewLease(at: Date): Promise<void> {
    const { coordination } = this.clients;
    // MicroTime: the apiserver wants six fractional digits, which a plain Date does not print.
    const now = new k8s.V1MicroTime(at.getTime());
    const namespace = "kube-node-lease";
    try {
      const lease = await coordination.readNamespacedLease({ name: this.nodeName, namespace });
      lease.spec = { ...lease.spec, holderIdentity: this.nodeName, leaseDurationSeconds: 40, renewTime: now };
      await coordination.replaceNamespacedLease({ name: this.nodeName, namespace, body: lease });
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
      await coordination.createNamespacedLease({
        namespace,
        body: { metadata: { name: this.nodeName, namespace }, spec: { holderIdentity: this.nodeName, leaseDurationSeconds: 40, renewTime: now } },
      });
    }
  }

  /** Ends the heartbeat and says so at once, instead of leaving a Ready node that runs nothing. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const node = await this.clients.core.readNode({ name: this.nodeName });
    const now = new Date();
    node.status = {
      ...node.status,
      conditions: (node.status?.conditions ?? []).map((c) =>
        c.type === "Ready" ? { ...c, status: "False", reason: "KokDevAgentStopped", message: "the kok dev node agent stopped", lastHeartbeatTime: now, lastTransitionTime: now } : c,
      ),
    };
    await this.clients.core.replaceNodeStatus({ name: this.nodeName, body: node });
  }
}
