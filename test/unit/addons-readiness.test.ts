/**
 * The AddonsReady condition from the add-on workloads' status objects (addons-readiness.ts):
 * ready, partial, stale, missing, empty and malformed statuses, and what a spec deploys.
 */
import type * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  ADDONS_READY,
  daemonSetProblem,
  deploymentProblem,
  evaluateAddons,
  expectedAddons,
  isTransition,
  notDeployedCondition,
  transitionEvent,
  unreachableCondition,
  type AddonWorkloads,
  type ExpectedAddons,
} from "../../src/controllers/cluster/addons-readiness";
import type { ClusterSpec } from "../../src/api/v1alpha1";
import { minimalSpec } from "../support/specs";

const ds = (name: string, status: k8s.V1DaemonSetStatus | undefined, generation = 1): k8s.V1DaemonSet => ({ metadata: { name, generation }, ...(status ? { status } : {}) });
const dsStatus = (desired: number, available: number, updated = desired, observedGeneration = 1): k8s.V1DaemonSetStatus => ({
  desiredNumberScheduled: desired,
  currentNumberScheduled: desired,
  numberMisscheduled: 0,
  numberReady: available,
  numberAvailable: available,
  updatedNumberScheduled: updated,
  observedGeneration,
});
const deploy = (name: string, replicas: number, status: k8s.V1DeploymentStatus | undefined, generation = 1): k8s.V1Deployment => ({
  metadata: { name, generation },
  spec: { replicas, selector: {}, template: {} },
  ...(status ? { status } : {}),
});
const deployStatus = (available: number, updated: number, total = updated, observedGeneration = 1): k8s.V1DeploymentStatus => ({ availableReplicas: available, updatedReplicas: updated, replicas: total, observedGeneration });

const ALL: Extract<ExpectedAddons, { deployed: true }> = { deployed: true, daemonSets: ["flannel", "kube-proxy"], deployments: ["coredns"] };
const healthy = (): AddonWorkloads => ({
  daemonSets: [ds("flannel", dsStatus(2, 2)), ds("kube-proxy", dsStatus(2, 2))],
  deployments: [deploy("coredns", 2, deployStatus(2, 2))],
  hasNodes: true,
});
const withExternalHost = (addons?: ClusterSpec["addons"]) => minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "dev.k8s.example.com" } }, ...(addons ? { addons } : {}) });

describe("evaluateAddons", () => {
  it("is True when both DaemonSets have every scheduled Pod available and updated and CoreDNS its replicas", () => {
    expect(evaluateAddons(ALL, healthy())).toEqual({ type: ADDONS_READY, status: "True", reason: "Ready", message: "available: flannel 2/2, kube-proxy 2/2, coredns 2/2" });
  });

  it("names each workload that is not ready, with its counts", () => {
    const live = healthy();
    const c = evaluateAddons(ALL, { ...live, daemonSets: [ds("flannel", dsStatus(2, 2)), ds("kube-proxy", dsStatus(2, 1))], deployments: [deploy("coredns", 2, deployStatus(0, 2))] });
    expect(c).toEqual({ type: ADDONS_READY, status: "False", reason: "NotReady", message: "kube-proxy 1/2 available; coredns 0/2 available" });
  });

  it("says to add Machines when no Node is registered", () => {
    const c = evaluateAddons(ALL, { ...healthy(), daemonSets: [ds("flannel", dsStatus(0, 0)), ds("kube-proxy", dsStatus(0, 0))], hasNodes: false });
    expect(c).toMatchObject({ status: "False", reason: "NoNodes", message: "no Nodes yet: add Machines" });
  });

  it("names a missing workload before anything else", () => {
    const c = evaluateAddons(ALL, { daemonSets: [ds("flannel", dsStatus(2, 2))], deployments: [], hasNodes: false });
    expect(c).toMatchObject({ status: "False", reason: "Missing" });
    expect(c.message).toContain("DaemonSet kube-proxy, Deployment coredns");
  });

  it("checks only the workloads the spec deploys", () => {
    const networkOnly = { deployed: true as const, daemonSets: ["flannel"], deployments: [] };
    expect(evaluateAddons(networkOnly, { daemonSets: [ds("flannel", dsStatus(1, 1))], deployments: [], hasNodes: true })).toMatchObject({ status: "True", message: "available: flannel 1/1" });
  });

  it("is not ready while a rolling update is under way", () => {
    const live = healthy();
    const rolling = { ...live, daemonSets: [ds("flannel", dsStatus(2, 2)), ds("kube-proxy", dsStatus(2, 2, 1))], deployments: [deploy("coredns", 2, deployStatus(2, 2, 3))] };
    expect(evaluateAddons(ALL, rolling)).toMatchObject({ status: "False", reason: "NotReady", message: "kube-proxy 1/2 updated; coredns 1 old replica(s) still running" });
  });
});

describe("bad and partial statuses", () => {
  it("treats a workload without status as not ready", () => {
    expect(daemonSetProblem("flannel", ds("flannel", undefined))).toBe("flannel has no status yet");
    expect(deploymentProblem("coredns", deploy("coredns", 2, undefined))).toBe("coredns has no status yet");
  });

  it("does not trust counts of a generation the controller has not observed", () => {
    expect(daemonSetProblem("kube-proxy", ds("kube-proxy", dsStatus(2, 2, 2, 1), 2))).toBe("kube-proxy rollout of generation 2 not observed yet");
    expect(deploymentProblem("coredns", deploy("coredns", 2, { availableReplicas: 2, updatedReplicas: 2, replicas: 2 }, 3))).toBe("coredns rollout of generation 3 not observed yet");
  });

  it("counts absent or nonsensical numbers as zero", () => {
    expect(daemonSetProblem("flannel", ds("flannel", { observedGeneration: 1 } as k8s.V1DaemonSetStatus))).toBe("flannel is scheduled on no node");
    const garbage = { desiredNumberScheduled: 2, numberAvailable: -3, updatedNumberScheduled: Number.NaN, observedGeneration: 1 } as k8s.V1DaemonSetStatus;
    expect(daemonSetProblem("flannel", ds("flannel", garbage))).toBe("flannel 0/2 available");
    expect(deploymentProblem("coredns", deploy("coredns", 2, { observedGeneration: 1 }))).toBe("coredns 0/2 available");
  });

  it("takes one replica when a Deployment's spec leaves it out, as the apiserver defaults it", () => {
    const d: k8s.V1Deployment = { metadata: { name: "coredns", generation: 1 }, status: deployStatus(1, 1) };
    expect(deploymentProblem("coredns", d)).toBeUndefined();
  });

  it("is ready with more Pods available than desired (a surge Pod still terminating)", () => {
    expect(daemonSetProblem("flannel", ds("flannel", dsStatus(2, 3)))).toBeUndefined();
  });
});

describe("expectedAddons", () => {
  it("expects flannel, kube-proxy and CoreDNS by default with an external host", () => {
    expect(expectedAddons(withExternalHost())).toEqual(ALL);
  });

  it("leaves out what the spec disables", () => {
    expect(expectedAddons(withExternalHost({ kubeProxy: { enabled: false }, coreDNS: { enabled: false } }))).toEqual({ deployed: true, daemonSets: ["flannel"], deployments: [] });
  });

  it("says Disabled (True: nothing to wait for) when every add-on is off", () => {
    const e = expectedAddons(withExternalHost({ network: { enabled: false }, kubeProxy: { enabled: false }, coreDNS: { enabled: false } }));
    expect(e).toMatchObject({ deployed: false, reason: "Disabled" });
    if (e.deployed) throw new Error("unreachable");
    expect(notDeployedCondition(e)).toMatchObject({ type: ADDONS_READY, status: "True", reason: "Disabled" });
  });

  it("says NoExternalHost (False) when add-ons are enabled but the stack does not deploy them", () => {
    const e = expectedAddons(minimalSpec());
    expect(e).toMatchObject({ deployed: false, reason: "NoExternalHost" });
    if (e.deployed) throw new Error("unreachable");
    expect(notDeployedCondition(e)).toMatchObject({ status: "False", reason: "NoExternalHost" });
  });
});

describe("transitions", () => {
  it("is Unknown with the reader's error when the business apiserver does not answer", () => {
    expect(unreachableCondition(new Error("This operation was aborted"))).toEqual({
      type: ADDONS_READY,
      status: "Unknown",
      reason: "Unreachable",
      message: "the business cluster's apiserver could not be read: This operation was aborted",
    });
  });

  it("calls a change of status or reason a transition, a new count alone not", () => {
    const notReady = { type: ADDONS_READY, status: "False" as const, reason: "NotReady", message: "kube-proxy 1/2 available" };
    expect(isTransition(undefined, notReady)).toBe(true);
    expect(isTransition({ status: "False", reason: "NotReady" }, { ...notReady, message: "kube-proxy 0/2 available" })).toBe(false);
    expect(isTransition({ status: "False", reason: "NoNodes" }, notReady)).toBe(true);
    expect(transitionEvent(notReady)).toEqual({ type: "Warning", reason: "AddonsNotReady" });
    expect(transitionEvent(evaluateAddons(ALL, healthy()))).toEqual({ type: "Normal", reason: "AddonsReady" });
    expect(transitionEvent(unreachableCondition("x"))).toEqual({ type: "Warning", reason: "AddonsUnknown" });
  });
});
