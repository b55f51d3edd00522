/**
 * The Pods bound to the dev node, reconciled by key (`namespace/name`) as controllers do: watch
 * events only enqueue the key; one reconcile at a time per key re-reads the cached Pod and makes
 * the runners match it. A deleted Pod (deletionTimestamp set) is stopped and then removed from the
 * API with grace period 0, which is the kubelet's part of a graceful delete.
 */
import type * as k8s from "@kubernetes/client-node";
import { statusCode, type Clients } from "./kube";
import { PodRunner, type PodRunnerDeps } from "./pod-runner";
import { buildPodStatus } from "./pod-status";

export class PodManager {
  private readonly runners = new Map<string, PodRunner>();
  private readonly queued = new Set<string>();
  private readonly busy = new Set<string>();
  private readonly statusDirty = new Set<string>();
  private readonly statusBusy = new Set<string>();
  private closed = false;

  constructor(
    private readonly clients: Clients,
    private readonly getPod: (key: string) => k8s.V1Pod | undefined,
    private readonly deps: Omit<PodRunnerDeps, "onChange">,
  ) {}

  /** Reconciles the Pod `namespace/name` soon: its runners are made to match the cached Pod, or stopped if it is gone. */
  enqueue(key: string): void {
    if (this.closed) return;
    this.queued.add(key);
    void this.drain(key);
  }

  private async drain(key: string): Promise<void> {
    if (this.busy.has(key)) return;
    this.busy.add(key);
    try {
      while (this.queued.delete(key)) {
        try {
          await this.reconcile(key);
        } catch (error) {
          this.deps.log(`${key}: ${(error as Error).message}; retrying in 5s`);
          setTimeout(() => {
            this.queued.add(key);
            void this.drain(key);
          }, 5000).unref();
        }
      }
    } finally {
      this.busy.delete(key);
    }
  }

  private async reconcile(key: string): Promise<void> {
    const pod = this.getPod(key);
    const runner = this.runners.get(key);
    const uid = pod?.metadata?.uid;
    if (runner && (!pod || runner.uid !== uid || pod.metadata?.deletionTimestamp)) {
      this.runners.delete(key);
      await runner.stop();
      this.deps.log(`${key}: stopped`);
    }
    if (!pod || this.closed) return;
    if (pod.metadata?.deletionTimestamp) {
      await this.clients.core
        // With a body, the apiserver reads the options from it and ignores the query parameters.
        .deleteNamespacedPod({ name: pod.metadata.name ?? "", namespace: pod.metadata.namespace ?? "", body: { gracePeriodSeconds: 0, preconditions: { uid } } })
        .catch((error: unknown) => {
          if (statusCode(error) !== 404 && statusCode(error) !== 409) throw error;
        });
      return;
    }
    if (this.runners.has(key) || pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") return;
    const fresh = new PodRunner(pod, { ...this.deps, onChange: (r) => this.markStatus(r) });
    this.runners.set(key, fresh);
    this.deps.log(`${key}: starting`);
    try {
      await fresh.start();
    } catch (error) {
      // Undo the half-made Pod so the retry starts from scratch.
      this.runners.delete(key);
      await fresh.stop().catch(() => undefined);
      throw error;
    }
  }

  /** Status writes are coalesced per Pod: at most one in flight, the latest snapshot wins. */
  private markStatus(runner: PodRunner): void {
    this.statusDirty.add(runner.key);
    void this.flushStatus(runner);
  }

  private async flushStatus(runner: PodRunner): Promise<void> {
    const key = runner.key;
    if (this.statusBusy.has(key)) return;
    this.statusBusy.add(key);
    try {
      while (this.statusDirty.delete(key)) {
        if (this.runners.get(key) !== runner) return;
        await this.writeStatus(runner).catch((error: unknown) => {
          this.deps.log(`${key}: status update failed: ${(error as Error).message}`);
          if (statusCode(error) === 409) this.statusDirty.add(key);
        });
      }
    } finally {
      this.statusBusy.delete(key);
    }
  }

  private async writeStatus(runner: PodRunner): Promise<void> {
    const name = runner.pod.metadata?.name ?? "";
    const namespace = runner.pod.metadata?.namespace ?? "";
    const current = await this.clients.core.readNamespacedPod({ name, namespace });
    if (current.metadata?.uid !== runner.uid) return;
    current.status = buildPodStatus(current.status, runner.snapshot());
    await this.clients.core.replaceNamespacedPodStatus({ name, namespace, body: current });
  }

  /** Stops every Pod's processes and namespace (the agent is shutting down). */
  async close(): Promise<void> {
    this.closed = true;
    const runners = [...this.runners.values()];
    this.runners.clear();
    await Promise.all(runners.map((r) => r.stop().catch((error: unknown) => this.deps.log(`${r.key}: stop failed: ${(error as Error).message}`))));
  }
}
