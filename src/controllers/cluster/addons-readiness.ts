/**
 * The `AddonsReady` condition of a Cluster: whether the add-ons its stack deployed into the
 * business cluster (flannel, kube-proxy, CoreDNS: src/components/addons) actually run there.
 *
 * The stack applies the add-on workloads without waiting for their Pods (SKIP_AWAIT_ANNOTATION in
 * src/components/addons/common.ts): a Cluster without Machines has no node to run them, and its
 * update must not hang on that. So `Ready` says the masters are Ready and nothing about the
 * add-ons, and this condition tells the rest, from the workloads' own status as the business
 * apiserver reports it (read by live-fingerprint.ts, through the same admin kubeconfig and bound
 * as the drift check's read), refreshed on the drift check's cadence (drift-check.ts): it turns
 * True once Machines join, without a spec change.
 *
 *   True     every enabled add-on is available and updated on every node it is scheduled to
 *            (DaemonSets) or has its replicas (CoreDNS); reason Ready. Also True, reason Disabled,
 *            when the spec disables every add-on: nothing deployed, nothing to wait for.
 *   False    NoNodes (no Node registered yet: add Machines), Missing (a workload is not in
 *            kube-system: the next drift check puts it back), NotReady (names each one not ready,
 *            e.g. `kube-proxy 1/2 available`), NoExternalHost (add-ons enabled but not deployed:
 *            the stack deploys them only with spec.apiServer.service.externalHost)
 *   Unknown  Unreachable: the business apiserver did not answer within the bound
 *
 * This file is the pure part: from the workloads' status objects to the condition.
 */
import type * as k8s from "@kubernetes/client-node";
import type { ClusterSpec } from "../../api/v1alpha1";
import { resolveClusterSpec, validateClusterSpec } from "../../api/v1alpha1";
import { COREDNS_NAME } from "../../components/addons/coredns";
import { FLANNEL_NAME } from "../../components/addons/flannel";
import { KUBE_PROXY_NAME } from "../../components/addons/kube-proxy";
import type { ConditionInput } from "../../runtime/conditions";

export const ADDONS_READY = "AddonsReady";

/** Which add-on workloads a spec deploys; `undefined` workloads when none is deployed, with why. */
export type ExpectedAddons =
  | { readonly deployed: true; readonly daemonSets: readonly string[]; readonly deployments: readonly string[] }
  | { readonly deployed: false; readonly reason: "Disabled" | "NoExternalHost" | "InvalidSpec"; readonly message: string };

/** What the business cluster says about the add-on workloads (live-fingerprint.ts reads it). */
export interface AddonWorkloads {
  /** The DaemonSets labelled app.kubernetes.io/part-of=kube-on-kube in kube-system. */
  readonly daemonSets: readonly k8s.V1DaemonSet[];
  /** The Deployments labelled app.kubernetes.io/part-of=kube-on-kube in kube-system. */
  readonly deployments: readonly k8s.V1Deployment[];
  /** Whether at least one Node is registered. */
  readonly hasNodes: boolean;
}

/** The add-on workloads `spec` deploys, by name (the same decision as the program's deploysAddons). */
export function expectedAddons(spec: ClusterSpec): ExpectedAddons {
  if (validateClusterSpec(spec, "spec").length) return { deployed: false, reason: "InvalidSpec", message: "the spec does not validate: nothing is deployed" };
  const resolved = resolveClusterSpec(spec);
  const { network, kubeProxy, coreDNS } = resolved.addons;
  if (!network.enabled && !kubeProxy.enabled && !coreDNS.enabled) {
    return { deployed: false, reason: "Disabled", message: "spec.addons disables every add-on: none is deployed" };
  }
  if (!resolved.apiServer.service.externalHost) {
    return {
      deployed: false,
      reason: "NoExternalHost",
      message: "add-ons are enabled but not deployed: the stack deploys them only with spec.apiServer.service.externalHost, the address workers reach",
    };
  }
  return {
    deployed: true,
    daemonSets: [...(network.enabled ? [FLANNEL_NAME] : []), ...(kubeProxy.enabled ? [KUBE_PROXY_NAME] : [])],
    deployments: coreDNS.enabled ? [COREDNS_NAME] : [],
  };
}

/** The condition of an add-on set that is not deployed (`expected.deployed` false). */
export function notDeployedCondition(expected: Extract<ExpectedAddons, { deployed: false }>): ConditionInput {
  // Disabled: nothing to wait for, so `kubectl wait --for=condition=AddonsReady` does not hang.
  return { type: ADDONS_READY, status: expected.reason === "Disabled" ? "True" : "False", reason: expected.reason, message: expected.message };
}

/** The condition when the business apiserver could not be read. */
export function unreachableCondition(error: unknown): ConditionInput {
  const why = error instanceof Error ? error.message : String(error);
  return { type: ADDONS_READY, status: "Unknown", reason: "Unreachable", message: `the business cluster's apiserver could not be read: ${why}` };
}

const count = (n: number | undefined) => (Number.isInteger(n) && (n as number) >= 0 ? (n as number) : 0);

/** A generation the controller has not acted on yet: its status counts describe the previous spec. */
function staleGeneration(meta: k8s.V1ObjectMeta | undefined, observed: number | undefined): boolean {
  return meta?.generation !== undefined && (observed === undefined || observed < meta.generation);
}

/** What is not ready about one DaemonSet, or undefined when it is ready. */
export function daemonSetProblem(name: string, ds: k8s.V1DaemonSet): string | undefined {
  const s = ds.status;
  if (!s) return `${name} has no status yet`;
  if (staleGeneration(ds.metadata, s.observedGeneration)) return `${name} rollout of generation ${ds.metadata?.generation} not observed yet`;
  const desired = count(s.desiredNumberScheduled);
  const available = count(s.numberAvailable);
  const updated = count(s.updatedNumberScheduled);
  if (desired === 0) return `${name} is scheduled on no node`;
  if (available < desired) return `${name} ${available}/${desired} available`;
  if (updated < desired) return `${name} ${updated}/${desired} updated`;
  return undefined;
}

/** What is not ready about one Deployment, or undefined when it is ready. */
export function deploymentProblem(name: string, d: k8s.V1Deployment): string | undefined {
  const s = d.status;
  if (!s) return `${name} has no status yet`;
  if (staleGeneration(d.metadata, s.observedGeneration)) return `${name} rollout of generation ${d.metadata?.generation} not observed yet`;
  const wanted = d.spec?.replicas ?? 1;
  const available = count(s.availableReplicas);
  const updated = count(s.updatedReplicas);
  const total = count(s.replicas);
  if (available < wanted) return `${name} ${available}/${wanted} available`;
  if (updated < wanted) return `${name} ${updated}/${wanted} updated`;
  if (total > updated) return `${name} ${total - updated} old replica(s) still running`;
  return undefined;
}

/** The condition from what the business cluster reports, for add-ons that are deployed. */
export function evaluateAddons(expected: Extract<ExpectedAddons, { deployed: true }>, live: AddonWorkloads): ConditionInput {
  const byName = <T extends { metadata?: k8s.V1ObjectMeta }>(items: readonly T[]) => new Map(items.map((o) => [o.metadata?.name ?? "", o]));
  const daemonSets = byName(live.daemonSets);
  const deployments = byName(live.deployments);
  const missing = [
    ...expected.daemonSets.filter((n) => !daemonSets.has(n)).map((n) => `DaemonSet ${n}`),
    ...expected.deployments.filter((n) => !deployments.has(n)).map((n) => `Deployment ${n}`),
  ];
  if (missing.length) {
    return { type: ADDONS_READY, status: "False", reason: "Missing", message: `not found in kube-system: ${missing.join(", ")} (the next drift check puts it back)` };
  }
  if (!live.hasNodes) return { type: ADDONS_READY, status: "False", reason: "NoNodes", message: "no Nodes yet: add Machines" };
  const problems = [
    ...expected.daemonSets.map((n) => daemonSetProblem(n, daemonSets.get(n)!)),
    ...expected.deployments.map((n) => deploymentProblem(n, deployments.get(n)!)),
  ].filter((p): p is string => p !== undefined);
  if (problems.length) return { type: ADDONS_READY, status: "False", reason: "NotReady", message: problems.join("; ") };
  const ready = [
    ...expected.daemonSets.map((n) => `${n} ${count(daemonSets.get(n)!.status?.numberAvailable)}/${count(daemonSets.get(n)!.status?.desiredNumberScheduled)}`),
    ...expected.deployments.map((n) => `${n} ${count(deployments.get(n)!.status?.availableReplicas)}/${deployments.get(n)!.spec?.replicas ?? 1}`),
  ];
  return { type: ADDONS_READY, status: "True", reason: "Ready", message: `available: ${ready.join(", ")}` };
}

/** Whether a condition change is a transition worth an Event: another status or reason. */
export function isTransition(before: { status?: string; reason?: string } | undefined, after: ConditionInput): boolean {
  return before?.status !== after.status || before?.reason !== after.reason;
}

/** The Event of a transition to `c`: type and reason. */
export function transitionEvent(c: ConditionInput): { type: "Normal" | "Warning"; reason: string } {
  if (c.status === "True") return { type: "Normal", reason: c.reason === "Disabled" ? "AddonsDisabled" : "AddonsReady" };
  return { type: "Warning", reason: c.status === "Unknown" ? "AddonsUnknown" : "AddonsNotReady" };
}
