/**
 * The etcd membership check of a Cluster (src/controllers/cluster/etcd-membership-check.ts) with
 * an in-memory masters' namespace (the StatefulSet, the membership ConfigMap, the member Pods and
 * PVCs, the membership Jobs and their Pods) and Cluster store: a step's Job and its result read
 * once (also by a new process), a hostile result kept out of the status, a lost member's Pod and
 * PVC deleted with its removal, nothing else started while a step is under way or a member's Pod
 * goes away, and the stack's `up` when the rendered membership is behind.
 */
import type * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { mastersNamespaceOf, type ClusterObject, type ClusterStatus, type EtcdMemberRecord } from "../../src/api/v1alpha1";
import { EtcdMembershipCheck, type EtcdMembershipApi } from "../../src/controllers/cluster/etcd-membership-check";
import { minimalSpec } from "../support/specs";

const MASTERS = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "ops" } });
const member = (i: number, o: Partial<EtcdMemberRecord> = {}): EtcdMemberRecord => ({ name: `ops-etcd-${i}`, id: `a${i}`, learner: false, started: true, healthy: true, volumeUid: `c${i}`, ...o });
const observed = (list: EtcdMemberRecord[]) => list.map(({ name, id, learner, started, healthy }) => ({ name, id, learner, started, healthy }));

function harness(replicas: number, members: EtcdMemberRecord[] | undefined, desired = replicas) {
  const jobs = new Map<string, k8s.V1Job>();
  const jobPods: k8s.V1Pod[] = [];
  let pods: k8s.V1Pod[] = [];
  let claims: k8s.V1PersistentVolumeClaim[] = [];
  const events: { type: string; reason: string; message: string }[] = [];
  const calls: string[] = [];
  const live = { replicas, config: { members: replicas, state: members ? "existing" : "new" } };
  for (let i = 0; i < replicas; i++) {
    pods.push({ metadata: { name: `ops-etcd-${i}`, uid: `p${i}` }, spec: { containers: [], volumes: [{ name: "data", persistentVolumeClaim: { claimName: `data-ops-etcd-${i}` } }] } });
    claims.push({ metadata: { name: `data-ops-etcd-${i}`, uid: `c${i}` } });
  }
  const cluster: { object: ClusterObject } = {
    object: {
      apiVersion: "kubeonkube.io/v1alpha1",
      kind: "Cluster",
      metadata: { name: "ops", namespace: "fleet", uid: "u", generation: 1 },
      spec: minimalSpec({ etcd: { ...minimalSpec().etcd, replicas: desired } }),
      status: { version: "v1.36.3", ...(members ? { etcd: { memberList: members, members: members.length, membershipJob: "ops-etcd-member-previous" } } : {}) },
    },
  };
  const api: EtcdMembershipApi = {
    statefulSet: async () => ({ spec: { replicas: live.replicas, selector: {}, serviceName: "", template: {} } }),
    configMap: async () => ({ data: { ETCD_INITIAL_CLUSTER: Array.from({ length: live.config.members }, (_, i) => `ops-etcd-${i}=https://x:2380`).join(","), ETCD_INITIAL_CLUSTER_STATE: live.config.state } }),
    memberPods: async () => structuredClone(pods),
    memberClaims: async () => structuredClone(claims),
    jobs: async () => [...jobs.values()].map((j) => structuredClone(j)),
    jobPods: async (_ns, selector) => jobPods.filter((p) => selector === `batch.kubernetes.io/job-name=${p.metadata!.labels!["batch.kubernetes.io/job-name"]}`),
    async createJob(job) {
      calls.push(`create ${job.spec!.template.spec!.containers[0].args!.slice(2, 3).join(" ")} ${job.metadata!.name}`);
      if (jobs.has(job.metadata!.name!)) return "exists";
      jobs.set(job.metadata!.name!, { ...job, metadata: { ...job.metadata, creationTimestamp: new Date(1000 + jobs.size) } });
      return "created";
    },
    async wipeMember(_ns, pod, claim) {
      calls.push(`wipe ${pod} ${claim ?? "-"}`);
    },
  };
  const options = {
    api,
    image: "registry/kube-on-kube/operator:1",
    now: () => new Date(5000),
    events: { record: async (_c: ClusterObject, type: "Normal" | "Warning", reason: string, message: string) => void events.push({ type, reason, message }) },
    store: {
      getLive: async () => structuredClone(cluster.object),
      setFinalizers: async () => structuredClone(cluster.object),
      writeStatus: async (_c: ClusterObject, compute: (fresh: ClusterStatus | undefined) => ClusterStatus | undefined) => {
        calls.push("write status");
        cluster.object = { ...cluster.object, status: structuredClone(compute(cluster.object.status)) };
      },
    },
  };
  let applies = 0;
  return {
    jobs,
    events,
    calls,
    live,
    cluster,
    applies: () => applies,
    /** One reconcile's pass, by a process that remembers nothing (the check keeps no state). */
    pass: () => new EtcdMembershipCheck(options).check(structuredClone(cluster.object), MASTERS, async () => void applies++),
    /** The only Job finishes; its Pod leaves `message`. */
    finish(message: string, state: "Complete" | "Failed" = "Complete") {
      const [name, job] = [...jobs.entries()].pop()!;
      job.status = { conditions: [{ type: state, status: "True", lastTransitionTime: new Date(2000) }] };
      jobPods.push({ metadata: { name: `${name}-x`, labels: { "batch.kubernetes.io/job-name": name }, creationTimestamp: new Date(2000) }, status: { phase: state === "Complete" ? "Succeeded" : "Failed", containerStatuses: [{ name: "c", image: "", imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode: 0, message } } }] } });
    },
    losePvc(i: number) {
      claims = claims.map((c) => (c.metadata!.name === `data-ops-etcd-${i}` ? { metadata: { ...c.metadata, uid: `new${i}` } } : c));
    },
    terminating(i: number) {
      pods = pods.map((p) => (p.metadata!.name === `ops-etcd-${i}` ? { ...p, metadata: { ...p.metadata, deletionTimestamp: new Date(3000) } } : p));
    },
  };
}

describe("EtcdMembershipCheck", () => {
  it("observes a cluster it knows nothing of, records what the Job saw with the volumes, then has the stack render it", async () => {
    const h = harness(1, undefined);
    // Reading the members holds no other update up (an image that cannot be pulled must not stop the Cluster).
    expect(await h.pass()).toMatchObject({ busy: false });
    expect(h.calls.filter((c) => c.startsWith("create"))).toEqual([expect.stringMatching(/^create list ops-etcd-member-[0-9a-f]{10}$/)]);
    // Still running: nothing new started.
    expect(await h.pass()).toMatchObject({ busy: false });
    expect(h.jobs.size).toBe(1);
    h.finish(JSON.stringify({ action: "list", member: "", done: true, message: "1 member(s)", members: observed([member(0)]) }));
    expect(await h.pass()).toMatchObject({ busy: true });
    expect(h.cluster.object.status?.etcd).toMatchObject({ members: 1, memberList: [{ name: "ops-etcd-0", volumeUid: "c0" }], membershipJob: [...h.jobs.keys()][0] });
    // The ConfigMap says `new`: the stack renders `existing` now.
    expect(h.applies()).toBe(1);
  });

  it("tells a failed Job once and waits a while before reading again, holding nothing else up", async () => {
    const h = harness(1, undefined);
    await h.pass();
    h.finish("etcd member failed: etcdctl member list: context deadline exceeded (connect: connection refused)", "Failed");
    expect(await h.pass()).toEqual({ requeueAfter: 60_000, busy: false });
    expect(h.jobs.size).toBe(1);
    expect(h.events.filter((e) => e.reason === "MembershipJobFailed")).toEqual([expect.objectContaining({ type: "Warning", message: expect.stringContaining("connection refused") })]);
    expect(h.cluster.object.status?.etcd?.memberList).toBeUndefined();
  });

  it("adds a learner for a larger spec, tells the result once, even to a new process", async () => {
    const h = harness(1, [member(0)], 3);
    expect(await h.pass()).toMatchObject({ busy: true });
    expect(h.calls.at(-1)).toMatch(/^create add /);
    // A change under way holds every other update.
    expect(await h.pass()).toMatchObject({ busy: true });
    expect(h.jobs.size).toBe(1);
    h.finish(JSON.stringify({ action: "add", member: "ops-etcd-1", done: true, message: "added ops-etcd-1 as a learner", members: observed([member(0), member(1, { learner: true, started: false, healthy: false })]) }));
    await h.pass();
    await h.pass();
    expect(h.events.filter((e) => e.reason === "MemberAdded")).toHaveLength(1);
    expect(h.cluster.object.status?.etcd?.memberList?.[1]).toEqual({ name: "ops-etcd-1", id: "a1", learner: true, started: false, healthy: false });
    expect(h.applies()).toBeGreaterThanOrEqual(1);
    expect(h.cluster.object.status?.conditions?.find((c) => c.type === "EtcdMembership")).toMatchObject({ status: "False", reason: "Scaling" });
  });

  it("keeps a hostile result out of the status, with a Warning", async () => {
    const h = harness(3, [member(0), member(1), member(2)], 1);
    await h.pass();
    h.finish(JSON.stringify({ action: "remove", member: "ops-etcd-2", done: true, message: "ok", members: [{ name: "victim-etcd-0", id: "1", learner: false, started: true, healthy: true }] }));
    await h.pass();
    expect(h.cluster.object.status?.etcd?.memberList?.map((m) => m.name)).toEqual(["ops-etcd-0", "ops-etcd-1", "ops-etcd-2"]);
    expect(h.events.find((e) => e.reason === "MembershipJobFailed")?.message).toMatch(/result was refused: members\[0\]: name/);
    expect(JSON.stringify(h.events)).not.toContain("victim");
  });

  it("replaces a member whose PVC was replaced: removes it, deletes its Pod and PVC before recording, adds it back", async () => {
    const h = harness(3, [member(0), member(1), member(2)]);
    h.losePvc(1);
    await h.pass();
    expect(h.calls.at(-1)).toMatch(/^create remove /);
    expect(h.cluster.object.status?.conditions?.find((c) => c.type === "EtcdMembership")).toMatchObject({ reason: "Replacing" });
    h.finish(JSON.stringify({ action: "remove", member: "ops-etcd-1", done: true, message: "removed ops-etcd-1", members: observed([member(0), member(2)]) }));
    h.calls.length = 0;
    await h.pass();
    expect(h.calls.slice(0, 2)).toEqual(["wipe ops-etcd-1 data-ops-etcd-1", "write status"]);
    expect(h.calls.at(-1)).toMatch(/^create add /);
  });

  it("holds every other update while a member's Pod goes away, and does nothing but tell in a quorum incident", async () => {
    const h = harness(3, [member(0), member(1), member(2)]);
    h.terminating(2);
    expect(await h.pass()).toMatchObject({ busy: true });
    expect(h.jobs.size).toBe(0);
    const incident = harness(3, [member(0), member(1, { healthy: false }), member(2, { healthy: false })]);
    expect(await incident.pass()).toEqual({ busy: false });
    expect(incident.jobs.size).toBe(0);
    expect(incident.events).toEqual([expect.objectContaining({ type: "Warning", reason: "QuorumAtRisk" })]);
  });
});
