/**
 * The Pod status a kubelet reports, built from what the agent knows of its containers, merged
 * into the status the apiserver holds (conditions of other owners, such as PodScheduled, and
 * fields like qosClass stay as they are). Pure, so the rules are unit-tested.
 */
import type * as k8s from "@kubernetes/client-node";
import type { ContainerState } from "./container";

export interface ContainerSnapshot {
  readonly name: string;
  readonly image: string;
  readonly state: ContainerState;
  readonly lastTerminated?: Extract<ContainerState, { kind: "terminated" }>;
  readonly restartCount: number;
  readonly started: boolean;
  readonly ready: boolean;
  readonly pid?: number;
}

export interface PodSnapshot {
  readonly podIP?: string;
  readonly hostIP: string;
  readonly startTime: Date;
  readonly containers: readonly ContainerSnapshot[];
}

function stateOf(state: ContainerState): k8s.V1ContainerState {
  switch (state.kind) {
    case "waiting":
      return { waiting: { reason: state.reason, message: state.message } };
    case "running":
      return { running: { startedAt: state.startedAt } };
    case "terminated":
      return { terminated: { exitCode: state.exitCode, reason: state.reason, startedAt: state.startedAt, finishedAt: state.finishedAt } };
  }
}

function condition(existing: readonly k8s.V1PodCondition[], type: string, ok: boolean, now: Date, reason?: string): k8s.V1PodCondition {
  const status = ok ? "True" : "False";
  const previous = existing.find((c) => c.type === type);
  return {
    type,
    status,
    reason: ok ? undefined : reason,
    lastProbeTime: undefined,
    lastTransitionTime: previous?.status === status && previous.lastTransitionTime ? previous.lastTransitionTime : now,
  };
}

const OUR_CONDITIONS = ["PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"];

export function buildPodStatus(current: k8s.V1PodStatus | undefined, snapshot: PodSnapshot, now = new Date()): k8s.V1PodStatus {
  const existing = current?.conditions ?? [];
  const allReady = snapshot.containers.length > 0 && snapshot.containers.every((c) => c.ready);
  const anyRunning = snapshot.containers.some((c) => c.state.kind === "running" || c.restartCount > 0 || c.lastTerminated);
  const notReadyReason = "ContainersNotReady";
  const conditions = [
    ...existing.filter((c) => !OUR_CONDITIONS.includes(c.type)),
    condition(existing, "PodReadyToStartContainers", snapshot.podIP !== undefined, now),
    condition(existing, "Initialized", true, now),
    condition(existing, "ContainersReady", allReady, now, notReadyReason),
    condition(existing, "Ready", allReady, now, notReadyReason),
  ];
  return {
    ...current,
    phase: anyRunning ? "Running" : "Pending",
    conditions,
    hostIP: snapshot.hostIP,
    hostIPs: [{ ip: snapshot.hostIP }],
    podIP: snapshot.podIP,
    podIPs: snapshot.podIP ? [{ ip: snapshot.podIP }] : undefined,
    startTime: current?.startTime ?? snapshot.startTime,
    containerStatuses: snapshot.containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: "",
      containerID: c.pid ? `kok-dev://${c.pid}` : undefined,
      ready: c.ready,
      started: c.started,
      restartCount: c.restartCount,
      state: stateOf(c.state),
      lastState: c.lastTerminated ? stateOf(c.lastTerminated) : {},
    })),
  };
}
