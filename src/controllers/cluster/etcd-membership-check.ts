/**
 * The etcd membership check of a reconciled Cluster (etcd-membership.ts decides; docs/operations.md,
 * "Scaling etcd"), on every reconcile of it and, while a step is under way, every few seconds:
 *
 *   1. a membership Job still running → look again soon;
 *   2. the newest finished Job not read yet → its result (parsed strictly) becomes
 *      status.etcd.memberList / members, one Event for what it did; a member removed because its
 *      data volume was lost has its Pod (and PVC) deleted, so it comes back empty and joins as new;
 *   3. the next step from what is observed now: a Job (list, add, promote, remove), an `up` of the
 *      stack (the StatefulSet's replicas and the membership ConfigMap follow the members), or nothing;
 *   4. the EtcdMembership condition, and an Event when its reason changes.
 */
import type * as k8s from "@kubernetes/client-node";
import { ETCD_MEMBERSHIP_CONDITION, resolveClusterSpec, type ClusterObject, type ClusterStatus, type EtcdStatus } from "../../api/v1alpha1";
import { objectNames } from "../../components/cluster-context";
import type { EtcdMembershipRender } from "../../components/etcd";
import { setCondition, type ConditionInput } from "../../runtime/conditions";
import { jobState, terminationMessage } from "./etcd-backups";
import { memberOrdinal, nextMembershipStep, recordMembers, renderOf, type MembershipStep } from "./etcd-membership";
import { ACTION_LABEL, memberJob, memberJobName, membershipJobSelector, parseMemberResult, type MemberJobAction } from "./etcd-membership-job";
import type { ClusterStore, EventSink } from "./reconciler";

/** What the check reads and writes in a masters' namespace (etcd-membership-api.ts is the real one). */
export interface EtcdMembershipApi {
  statefulSet(namespace: string, name: string): Promise<k8s.V1StatefulSet | undefined>;
  configMap(namespace: string, name: string): Promise<k8s.V1ConfigMap | undefined>;
  /** The Pods and PVCs of the etcd members (their data volumes' uids). */
  memberPods(namespace: string, cluster: string): Promise<k8s.V1Pod[]>;
  memberClaims(namespace: string, cluster: string): Promise<k8s.V1PersistentVolumeClaim[]>;
  jobs(namespace: string, selector: string): Promise<k8s.V1Job[]>;
  jobPods(namespace: string, selector: string): Promise<k8s.V1Pod[]>;
  createJob(job: k8s.V1Job): Promise<"created" | "exists">;
  /** Deletes a member's Pod and, with claimTemplate storage, its PVC: the data of a removed member. */
  wipeMember(namespace: string, pod: string, claim: string | undefined): Promise<void>;
}

export interface EtcdMembershipCheckOptions {
  readonly api: EtcdMembershipApi;
  readonly store: ClusterStore;
  readonly events: EventSink;
  readonly now: () => Date;
  /** The image of the membership Jobs (`kok`, etcdctl): the operator's. */
  readonly image: string;
  /** How soon to look again while a step is under way. Default 3 s. */
  readonly activeCheckMs?: number;
}

/** The data volume name of the etcd StatefulSet's claim template (src/components/etcd.ts). */
const DATA_VOLUME = "data";

/** How long a reading waits after a failed membership Job. */
const FAILED_JOB_BACKOFF_MS = 60_000;

export class EtcdMembershipCheck {
  constructor(private readonly o: EtcdMembershipCheckOptions) {}

  /**
   * What the stack renders for this Cluster (ClusterProgramArgs.etcdMembership): the observed
   * members; before any observation, the live StatefulSet's count (an `up` must never add members
   * that were never added to etcd), and for a new cluster the spec's (undefined).
   */
  async renderFor(cluster: ClusterObject, mastersNamespace: string): Promise<EtcdMembershipRender | undefined> {
    const list = cluster.status?.etcd?.memberList;
    if (list?.length) return renderOf(cluster.metadata.name, list);
    const sts = await this.o.api.statefulSet(mastersNamespace, objectNames(cluster.metadata.name).etcd);
    return sts?.spec?.replicas !== undefined ? { members: sts.spec.replicas, state: "new" } : undefined;
  }

  /**
   * One pass; `apply` runs the stack's `up` (the reconciler's). `busy`: a step is under way (a Job
   * runs or was just started, an `up` was just run, a member's Pod is going away): the reconciler
   * starts no other update now — an `up` for something else would wait on the member that is
   * changing. Errors go to the condition, never to the reconcile.
   */
  async check(cluster: ClusterObject, mastersNamespace: string, apply: () => Promise<unknown>): Promise<{ requeueAfter?: number; busy: boolean }> {
    const soon = { requeueAfter: this.o.activeCheckMs ?? 3000, busy: true };
    try {
      const { step, lastFailure } = await this.run(cluster, mastersNamespace);
      if (step === "busy") return soon;
      // Only reading the members (a list Job runs): nothing changes, other updates go on.
      if (step === "reading") return { requeueAfter: this.o.activeCheckMs ?? 3000, busy: false };
      await this.condition(cluster, step);
      if (step.kind === "apply") {
        await apply();
        return soon;
      }
      if (step.kind === "stable" || step.kind === "incident") return { busy: false };
      // The last Job failed (an image that cannot be pulled, an etcd that does not answer): only a
      // reading waits a while before the next try, so a broken path does not fill the namespace.
      if (step.kind === "observe" && lastFailure !== undefined && this.o.now().getTime() - lastFailure < FAILED_JOB_BACKOFF_MS) {
        return { requeueAfter: FAILED_JOB_BACKOFF_MS, busy: step.reason !== "Observing" };
      }
      await this.startJob(cluster, mastersNamespace, step.kind === "observe" ? "list" : step.kind, "member" in step ? step.member : undefined);
      // Reading the members holds nothing else up: the first reading of a cluster, or a member
      // that may stay unhealthy for long (or a Job image that cannot be pulled).
      return step.kind === "observe" && step.reason === "Observing" ? { requeueAfter: cluster.status?.etcd?.memberList ? 30_000 : soon.requeueAfter, busy: false } : soon;
    } catch (error) {
      const message = `the membership could not be checked: ${(error instanceof Error ? error.message : String(error)).slice(0, 300)}`;
      await this.write(cluster, {}, { type: ETCD_MEMBERSHIP_CONDITION, status: "Unknown", reason: "CheckFailed", message }).catch(() => undefined);
      return { requeueAfter: 30_000, busy: false };
    }
  }

  /** The next step, and when the newest membership Job failed (if it did). */
  private async run(cluster: ClusterObject, ns: string): Promise<{ step: MembershipStep | "busy" | "reading"; lastFailure?: number }> {
    const name = cluster.metadata.name;
    const names = objectNames(name);
    const jobs = (await this.o.api.jobs(ns, membershipJobSelector(name))).map((job) => ({ job, ...jobState(job) }));
    const active = jobs.filter((j) => j.state === "active");
    if (active.length) return { step: active.every((j) => j.job.metadata?.labels?.[ACTION_LABEL] === "list") ? "reading" : "busy" };
    const [pods, claims] = await Promise.all([this.o.api.memberPods(ns, name), this.o.api.memberClaims(ns, name)]);
    // A member's Pod going away may take its data with it (an emptyDir): decide once it is back.
    if (pods.some((p) => p.metadata?.deletionTimestamp && memberOrdinal(name, p.metadata.name ?? "") !== undefined)) return { step: "busy" };
    const volumes = volumesOf(name, pods, claims);
    const newest = jobs.sort((a, b) => b.at - a.at)[0];
    const etcd = cluster.status?.etcd ?? {};
    if (newest && newest.job.metadata?.name !== etcd.membershipJob) await this.consume(cluster, ns, newest, volumes, claims);

    const [sts, config] = await Promise.all([this.o.api.statefulSet(ns, names.etcd), this.o.api.configMap(ns, names.etcdMembership)]);
    const initial = config?.data?.ETCD_INITIAL_CLUSTER;
    const lastFailure = newest?.state === "failed" ? newest.at : undefined;
    const step = nextMembershipStep({
      cluster: name,
      desired: resolveClusterSpec(cluster.spec).etcd.replicas,
      members: cluster.status?.etcd?.memberList,
      rendered: sts?.spec?.replicas !== undefined && initial !== undefined ? { replicas: sts.spec.replicas, configMembers: initial.split(",").length, state: config?.data?.ETCD_INITIAL_CLUSTER_STATE ?? "" } : undefined,
      volumes,
    });
    return { step, lastFailure };
  }

  /** Reads a finished Job's result into the status, with its Event (told once: the Job's name is recorded). */
  private async consume(cluster: ClusterObject, ns: string, j: { job: k8s.V1Job; state: string; jobMessage?: string }, volumes: Record<string, string | undefined>, claims: k8s.V1PersistentVolumeClaim[]): Promise<void> {
    const jobName = j.job.metadata!.name!;
    const pods = await this.o.api.jobPods(ns, `batch.kubernetes.io/job-name=${jobName}`);
    const message = terminationMessage(pods, jobName, j.state === "succeeded" ? "succeeded" : "failed");
    const parsed = j.state === "succeeded" ? parseMemberResult(message, cluster.metadata.name) : undefined;
    if (!parsed?.ok) {
      const why = parsed ? `its result was refused: ${parsed.why}` : (message ?? j.jobMessage ?? "no message").replace(/\s+/g, " ").slice(0, 300);
      await this.write(cluster, { membershipJob: jobName }, undefined);
      await this.o.events.record(cluster, "Warning", "MembershipJobFailed", `membership Job ${jobName} failed: ${why}`);
      return;
    }
    const r = parsed.result;
    const previous = cluster.status?.etcd?.memberList;
    // A member removed because its volume was lost: its data goes too, or it would start again as
    // the removed member. Before the status is written, so a crash here repeats it (harmless: the
    // Pod is new and empty by then).
    const wasLost = r.action === "remove" && r.done && previous?.some((m) => m.name === r.member && m.volumeUid !== undefined && volumes[m.name] !== undefined && volumes[m.name] !== m.volumeUid);
    if (wasLost) {
      const claim = claims.find((c) => c.metadata?.name === `${DATA_VOLUME}-${r.member}`)?.metadata?.name;
      await this.o.api.wipeMember(ns, r.member, claim);
    }
    const memberList = recordMembers(r.members, previous, volumes);
    await this.write(cluster, { memberList, members: memberList.filter((m) => !m.learner).length, membershipJob: jobName }, undefined);
    const event = memberEvent(r.action, r.done);
    if (event) await this.o.events.record(cluster, event.type, event.reason, `${r.message}${wasLost ? `; Pod ${r.member} deleted so it starts empty` : ""} (Job ${jobName})`);
  }

  private async startJob(cluster: ClusterObject, ns: string, action: MemberJobAction, member: string | undefined): Promise<void> {
    const name = memberJobName(cluster.metadata.name, cluster.status?.etcd?.membershipJob, action, member);
    const spec = resolveClusterSpec(cluster.spec);
    await this.o.api.createJob(memberJob({ cluster: cluster.metadata.name, mastersNamespace: ns, spec, image: this.o.image, action, member, name }));
  }

  /** The condition for this step, with an Event when its reason changes. */
  private async condition(cluster: ClusterObject, step: MembershipStep): Promise<void> {
    const condition: ConditionInput = { type: ETCD_MEMBERSHIP_CONDITION, status: step.kind === "stable" ? "True" : "False", reason: step.reason, message: step.message };
    const before = cluster.status?.conditions?.find((c) => c.type === ETCD_MEMBERSHIP_CONDITION);
    if (before?.status === condition.status && before.reason === condition.reason && before.message === condition.message) return;
    await this.write(cluster, {}, condition);
    if (before?.reason === condition.reason) return;
    const type = step.kind === "incident" ? "Warning" : "Normal";
    const reason = step.kind === "stable" ? "MembershipStable" : step.kind === "incident" ? "QuorumAtRisk" : `Membership${step.reason}`;
    await this.o.events.record(cluster, type, reason, step.message);
  }

  private async write(cluster: ClusterObject, fields: Partial<EtcdStatus>, condition: ConditionInput | undefined): Promise<void> {
    const now = this.o.now().getTime();
    const apply = (fresh: ClusterStatus | undefined): ClusterStatus => {
      const etcd: EtcdStatus = { ...(fresh?.etcd ?? {}), ...fields };
      const conditions = condition ? setCondition(fresh?.conditions, { ...condition, observedGeneration: cluster.metadata.generation }, now) : (fresh?.conditions ?? []);
      return { ...(fresh ?? {}), etcd, conditions } as ClusterStatus;
    };
    const next = apply(cluster.status);
    await this.o.store.writeStatus(cluster, apply);
    cluster.status = next;
  }
}

/** The Event of a step's result (a list tells nothing). */
function memberEvent(action: MemberJobAction, done: boolean): { type: "Normal" | "Warning"; reason: string } | undefined {
  if (!done) return { type: "Warning", reason: "MembershipStepRefused" };
  return { add: { type: "Normal" as const, reason: "MemberAdded" }, promote: { type: "Normal" as const, reason: "MemberPromoted" }, remove: { type: "Normal" as const, reason: "MemberRemoved" }, list: undefined }[action];
}

/**
 * Each member's data volume now: its PVC's uid (claimTemplate: `data-<pod>`), else with an emptyDir
 * its Pod's uid (the volume lives and dies with the Pod). A member with neither is not known.
 */
export function volumesOf(cluster: string, pods: readonly k8s.V1Pod[], claims: readonly k8s.V1PersistentVolumeClaim[]): Record<string, string | undefined> {
  const volumes: Record<string, string | undefined> = {};
  for (const pod of pods) {
    const name = pod.metadata?.name ?? "";
    if (memberOrdinal(cluster, name) === undefined || pod.metadata?.deletionTimestamp) continue;
    const data = pod.spec?.volumes?.find((v) => v.name === DATA_VOLUME);
    const claim = data?.persistentVolumeClaim ? claims.find((c) => c.metadata?.name === data.persistentVolumeClaim!.claimName && !c.metadata?.deletionTimestamp) : undefined;
    volumes[name] = data?.persistentVolumeClaim ? claim?.metadata?.uid : data?.emptyDir ? pod.metadata?.uid : undefined;
  }
  return volumes;
}
