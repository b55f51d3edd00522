import { describe, expect, it } from "vitest";
import {
  deploymentRollout,
  labelSelectorQuery,
  statefulSetRollout,
  type PodObject,
  type ReplicaSetObject,
  type WorkloadObject,
} from "../../src/components/rollout-status";

// Shapes as the meta-cluster returns them during a one-replica apiserver upgrade (maxSurge 1,
// maxUnavailable 0): revision 1 (hash "old") is being replaced by revision 2 (hash "new").
const DEPLOYMENT_UID = "0b6c-deploy";

function deployment(status: WorkloadObject["status"], overrides: { generation?: number; revision?: string; replicas?: number } = {}): WorkloadObject {
  return {
    metadata: {
      name: "e2e-apiserver",
      namespace: "e2e",
      uid: DEPLOYMENT_UID,
      generation: overrides.generation ?? 2,
      annotations: { "deployment.kubernetes.io/revision": overrides.revision ?? "2" },
    },
    spec: { replicas: overrides.replicas ?? 1, selector: { matchLabels: { "kubeonkube.io/cluster": "e2e", "kubeonkube.io/component": "kube-apiserver" } } },
    status,
  };
}

function replicaSet(hash: string, revision: string, ownerUid = DEPLOYMENT_UID): ReplicaSetObject {
  return {
    metadata: {
      name: `e2e-apiserver-${hash}`,
      labels: { "pod-template-hash": hash },
      annotations: { "deployment.kubernetes.io/revision": revision },
      ownerReferences: [{ uid: ownerUid, controller: true }],
    },
  };
}

const pod = (name: string, labels: Record<string, string>, terminating = false): PodObject => ({
  metadata: { name, labels, ...(terminating ? { deletionTimestamp: "2025-01-01T00:00:00Z" } : {}) },
});
const apiPod = (hash: string, suffix: string, terminating = false) => pod(`e2e-apiserver-${hash}-${suffix}`, { "pod-template-hash": hash }, terminating);

const replicaSets = [replicaSet("old", "1"), replicaSet("new", "2")];
const rolledOut = { observedGeneration: 2, replicas: 1, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1 };

describe("deploymentRollout", () => {
  it("is done when every Pod belongs to the current ReplicaSet and is available", () => {
    expect(deploymentRollout(deployment(rolledOut), replicaSets, [apiPod("new", "a")])).toEqual({ done: true, waitingFor: "" });
  });

  it("waits while the controller has not observed the new generation, whatever the stale status says", () => {
    // What pulumi-kubernetes can read right after its update: the status of the previous spec.
    const stale = deployment({ ...rolledOut, observedGeneration: 1 });
    expect(deploymentRollout(stale, [replicaSet("old", "1")], [apiPod("old", "a")])).toEqual({
      done: false,
      waitingFor: "the controller to observe generation 2 (observed 1)",
    });
  });

  it("waits while the new Pod is not available and the old one still serves", () => {
    const surging = deployment({ observedGeneration: 2, replicas: 2, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1 });
    const verdict = deploymentRollout(surging, replicaSets, [apiPod("old", "a"), apiPod("new", "b")]);
    expect(verdict.done).toBe(false);
    expect(verdict.waitingFor).toBe("2/1 counted in total, 1 Pod of an older revision to go (e2e-apiserver-old-a)");
  });

  it("waits for an old Pod that is only terminating, though every count already says done", () => {
    // The case of pulumi-kubernetes#2941: the status counts no terminating Pod.
    const verdict = deploymentRollout(deployment(rolledOut), replicaSets, [apiPod("old", "a", true), apiPod("new", "b")]);
    expect(verdict).toEqual({ done: false, waitingFor: "1 Pod of an older revision to go (e2e-apiserver-old-a Terminating)" });
  });

  it("names a few old Pods and counts the rest", () => {
    const old = ["a", "b", "c", "d", "e"].map((s) => apiPod("old", s, s === "a"));
    const verdict = deploymentRollout(deployment({ ...rolledOut, replicas: 3, updatedReplicas: 3, availableReplicas: 3 }, { replicas: 3 }), replicaSets, old);
    expect(verdict.waitingFor).toBe("5 Pods of an older revision to go (e2e-apiserver-old-a Terminating, e2e-apiserver-old-b, e2e-apiserver-old-c, 2 more)");
  });

  it("waits until the ReplicaSet of the Deployment's revision exists, and ignores another owner's", () => {
    const noRevisionYet = deploymentRollout(deployment(rolledOut, { revision: "3" }), replicaSets, [apiPod("new", "a")]);
    expect(noRevisionYet).toEqual({ done: false, waitingFor: "its ReplicaSet of revision 3" });
    const foreign = deploymentRollout(deployment(rolledOut), [replicaSet("old", "1"), replicaSet("new", "2", "someone-else")], [apiPod("new", "a")]);
    expect(foreign.waitingFor).toBe("its ReplicaSet of revision 2");
  });

  it("lists every shortfall at once, and a stalled rollout's reason", () => {
    const stalled = deployment({
      observedGeneration: 2,
      replicas: 2,
      updatedReplicas: 1,
      availableReplicas: 1,
      conditions: [{ type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded" }],
    }, { replicas: 3 });
    expect(deploymentRollout(stalled, replicaSets, [apiPod("new", "a")]).waitingFor).toBe(
      "1/3 updated, 1/3 available, 2/3 counted in total, progress (Progressing=False: ProgressDeadlineExceeded)",
    );
  });

  it("is done for a Deployment scaled to zero; a terminating Pod of the current revision is not an old one", () => {
    const zero = deployment({ observedGeneration: 2 }, { replicas: 0 });
    expect(deploymentRollout(zero, replicaSets, [])).toEqual({ done: true, waitingFor: "" });
    expect(deploymentRollout(zero, replicaSets, [apiPod("new", "a", true)]).done).toBe(true);
  });
});

function statefulSet(status: WorkloadObject["status"], replicas = 3): WorkloadObject {
  return { metadata: { name: "e2e-etcd", namespace: "e2e", generation: 4 }, spec: { replicas, selector: { matchLabels: { "kubeonkube.io/component": "etcd" } } }, status };
}
const member = (i: number, revision: string, terminating = false) => pod(`e2e-etcd-${i}`, { "controller-revision-hash": revision }, terminating);
const members = (revision: string) => [0, 1, 2].map((i) => member(i, revision));
const stsDone = { observedGeneration: 4, replicas: 3, readyReplicas: 3, availableReplicas: 3, updatedReplicas: 3, currentRevision: "e2e-etcd-v2", updateRevision: "e2e-etcd-v2" };

describe("statefulSetRollout", () => {
  it("is done when every member runs the update revision and the current revision caught up", () => {
    expect(statefulSetRollout(statefulSet(stsDone), members("e2e-etcd-v2"))).toEqual({ done: true, waitingFor: "" });
  });

  it("waits on a status of the previous spec (pulumi-kubernetes#3329)", () => {
    const stale = statefulSet({ ...stsDone, observedGeneration: 3, currentRevision: "e2e-etcd-v1", updateRevision: "e2e-etcd-v1" });
    expect(statefulSetRollout(stale, members("e2e-etcd-v1"))).toEqual({ done: false, waitingFor: "the controller to observe generation 4 (observed 3)" });
  });

  it("waits while a member is being replaced, naming the old member that still terminates", () => {
    const rolling = statefulSet({ ...stsDone, readyReplicas: 2, availableReplicas: 2, updatedReplicas: 2, currentRevision: "e2e-etcd-v1" });
    const verdict = statefulSetRollout(rolling, [member(0, "e2e-etcd-v1", true), member(1, "e2e-etcd-v2"), member(2, "e2e-etcd-v2")]);
    expect(verdict.waitingFor).toBe(
      "2/3 updated, 2/3 ready, 2/3 available, current revision e2e-etcd-v1 to become e2e-etcd-v2, 1 Pod of an older revision to go (e2e-etcd-0 Terminating)",
    );
  });

  it("falls back on ready replicas where availableReplicas is not reported", () => {
    const older = { ...stsDone, availableReplicas: undefined };
    expect(statefulSetRollout(statefulSet(older), members("e2e-etcd-v2")).done).toBe(true);
    expect(statefulSetRollout(statefulSet({ ...older, readyReplicas: 2 }), members("e2e-etcd-v2")).waitingFor).toBe("2/3 ready, 2/3 available");
  });

  it("waits for the controller to compute an update revision", () => {
    expect(statefulSetRollout(statefulSet({ ...stsDone, updateRevision: undefined }), members("e2e-etcd-v2")).waitingFor).toBe(
      "the controller to compute its update revision",
    );
  });
});

describe("labelSelectorQuery", () => {
  it("renders labels and every expression operator", () => {
    expect(
      labelSelectorQuery({
        matchLabels: { "kubeonkube.io/cluster": "e2e", "kubeonkube.io/component": "etcd" },
        matchExpressions: [
          { key: "tier", operator: "In", values: ["a", "b"] },
          { key: "zone", operator: "NotIn", values: ["x"] },
          { key: "canary", operator: "Exists" },
          { key: "legacy", operator: "DoesNotExist" },
        ],
      }),
    ).toBe("kubeonkube.io/cluster=e2e,kubeonkube.io/component=etcd,tier in (a,b),zone notin (x),canary,!legacy");
    expect(labelSelectorQuery(undefined)).toBe("");
  });

  it("refuses an operator it does not know rather than select too much", () => {
    expect(() => labelSelectorQuery({ matchExpressions: [{ key: "k", operator: "Gt" }] })).toThrow(/operator "Gt" of key "k"/);
  });
});
