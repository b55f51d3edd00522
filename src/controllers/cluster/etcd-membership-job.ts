/**
 * The membership Jobs (etcd-membership.ts decides which): one `kok etcd member <action>` in the
 * operator image, in the masters' namespace, with the membership client certificate of the stack
 * (src/components/etcd-membership.ts), and its result, read back strictly from the termination
 * message. The Pod talks to the tenant's etcd, so what it says is checked like any tenant input:
 * one line, exactly the fields, member names that are this cluster's, IDs that are hex.
 */
import { createHash } from "node:crypto";
import type * as k8s from "@kubernetes/client-node";
import { ETCD_MEMBERSHIP_COMPONENT_LABEL, type ObservedMember, type ResolvedClusterSpec } from "../../api/v1alpha1";
import { objectNames } from "../../components/cluster-context";
import { ETCD_CLIENT_PORT, ETCD_PEER_PORT } from "../../components/etcd";
import { etcdMembershipLabels, MEMBER_CLIENT_DIR } from "../../components/etcd-membership";
import { MASTER_CONTAINER_SECURITY_CONTEXT, MASTER_POD_SECURITY_CONTEXT } from "../../components/pod-security";
import { memberOrdinal } from "./etcd-membership";
import { parseTerminationJson } from "./termination-message";

export type MemberJobAction = "list" | "add" | "promote" | "remove";
/** On each membership Job: its action (a running `list` holds no other update up). */
export const ACTION_LABEL = "kubeonkube.io/etcd-member-action";

/** A label selector of a cluster's membership Jobs. */
export const membershipJobSelector = (cluster: string): string => `kubeonkube.io/cluster=${cluster},${ETCD_MEMBERSHIP_COMPONENT_LABEL.key}=${ETCD_MEMBERSHIP_COMPONENT_LABEL.value}`;

/**
 * `<cluster>-etcd-member-<10 hex>` of the last Job read, the action and the member: a step computed
 * twice from the same status (a crash between creating the Job and recording it) names the same
 * Job; the next step after a result, a new one. At most 40 + 13 + 10 = 63 characters.
 */
export function memberJobName(cluster: string, lastJob: string | undefined, action: MemberJobAction, member: string | undefined): string {
  const digest = createHash("sha256").update(`${lastJob ?? ""}/${action}/${member ?? ""}`).digest("hex").slice(0, 10);
  return `${objectNames(cluster).etcd}-member-${digest}`;
}

export interface MemberJobInput {
  readonly cluster: string;
  readonly mastersNamespace: string;
  readonly spec: Pick<ResolvedClusterSpec, "masterNodeSelector" | "masterTolerations">;
  readonly image: string;
  readonly action: MemberJobAction;
  readonly member?: string;
  readonly name: string;
  readonly metaClusterDomain?: string;
}

/** Long enough for etcdctl's retries, short enough that a hung step does not hold the membership. */
const JOB_DEADLINE_SECONDS = 120;
/** Read within seconds by the operator; kept a while for a person to look at. */
const JOB_TTL_SECONDS = 3600;

export function memberJob(i: MemberJobInput): k8s.V1Job {
  const names = objectNames(i.cluster);
  const labels = etcdMembershipLabels(i.cluster);
  const flags: [string, string][] = [
    ["endpoints", `https://${names.etcdClientService}.${i.mastersNamespace}.svc:${ETCD_CLIENT_PORT}`],
    ["cacert", `${MEMBER_CLIENT_DIR}/ca.crt`],
    ["cert", `${MEMBER_CLIENT_DIR}/tls.crt`],
    ["key", `${MEMBER_CLIENT_DIR}/tls.key`],
    ["result-file", "/dev/termination-log"],
  ];
  if (i.member) flags.push(["member", i.member]);
  if (i.action === "add" && i.member) {
    const ordinal = memberOrdinal(i.cluster, i.member);
    if (ordinal === undefined) throw new Error(`memberJob: ${i.member} is not a member name of cluster ${i.cluster}`);
    // The member's stable name through the headless peer Service, as etcdMemberHost renders it.
    flags.push(["peer-url", `https://${names.etcd}-${ordinal}.${names.etcdPeerService}.${i.mastersNamespace}.svc:${ETCD_PEER_PORT}`]);
  }
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: i.name, namespace: i.mastersNamespace, labels: { ...labels, [ACTION_LABEL]: i.action } },
    spec: {
      // The operator decides again from the result; a failed Pod is not retried here.
      backoffLimit: 0,
      activeDeadlineSeconds: JOB_DEADLINE_SECONDS,
      ttlSecondsAfterFinished: JOB_TTL_SECONDS,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: "Never",
          enableServiceLinks: false,
          automountServiceAccountToken: false,
          securityContext: MASTER_POD_SECURITY_CONTEXT,
          nodeSelector: Object.keys(i.spec.masterNodeSelector).length ? { ...i.spec.masterNodeSelector } : undefined,
          tolerations: i.spec.masterTolerations.length ? i.spec.masterTolerations.map((t) => ({ ...t })) : undefined,
          containers: [
            {
              name: "etcd-member",
              image: i.image,
              // The image's entrypoint is `kok` (src/images/operator.ts).
              args: ["etcd", "member", i.action, ...flags.map(([flag, value]) => `--${flag}=${value}`)],
              resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } },
              securityContext: MASTER_CONTAINER_SECURITY_CONTEXT as k8s.V1SecurityContext,
              terminationMessagePath: "/dev/termination-log",
              terminationMessagePolicy: "File",
              volumeMounts: [{ name: "client", mountPath: MEMBER_CLIENT_DIR, readOnly: true }],
            },
          ],
          volumes: [{ name: "client", secret: { secretName: names.etcdMemberClient, defaultMode: 0o400 } }],
        },
      },
    },
  } as k8s.V1Job;
}

export type { ObservedMember };

export interface MemberJobResult {
  readonly action: MemberJobAction;
  readonly member: string;
  readonly done: boolean;
  readonly message: string;
  readonly members: readonly ObservedMember[];
}

const RESULT_KEYS = ["action", "done", "member", "members", "message"];
const MEMBER_KEYS = ["healthy", "id", "learner", "name", "started"];
const MAX_MESSAGE = 300;

/** Parses a membership Job's termination message strictly, or says why it was refused. */
export function parseMemberResult(message: string | undefined, cluster: string): { ok: true; result: MemberJobResult } | { ok: false; why: string } {
  const parsed = parseTerminationJson(message);
  if (!parsed.ok) return parsed;
  const o = parsed.object;
  if (Object.keys(o).sort().join() !== RESULT_KEYS.join()) return { ok: false, why: `the result must have exactly the fields ${RESULT_KEYS.join(", ")}` };
  if (!["list", "add", "promote", "remove"].includes(o.action as string)) return { ok: false, why: "action is not list, add, promote or remove" };
  if (typeof o.done !== "boolean") return { ok: false, why: "done is not a boolean" };
  if (typeof o.member !== "string" || (o.member !== "" && memberOrdinal(cluster, o.member) === undefined)) return { ok: false, why: "member is not one of this cluster's member names" };
  if (typeof o.message !== "string") return { ok: false, why: "message is not a string" };
  if (!Array.isArray(o.members) || o.members.length > 8) return { ok: false, why: "members is not a list of at most 8" };
  const members: ObservedMember[] = [];
  for (const [index, m] of (o.members as unknown[]).entries()) {
    const r = m as Record<string, unknown>;
    const bad = (why: string) => ({ ok: false as const, why: `members[${index}]: ${why}` });
    if (typeof m !== "object" || m === null || Object.keys(r).sort().join() !== MEMBER_KEYS.join()) return bad(`must have exactly the fields ${MEMBER_KEYS.join(", ")}`);
    if (typeof r.name !== "string" || memberOrdinal(cluster, r.name) === undefined) return bad("name is not one of this cluster's member names");
    if (typeof r.id !== "string" || !/^[0-9a-f]{1,16}$/.test(r.id)) return bad("id is not 1 to 16 hex digits");
    if (typeof r.learner !== "boolean" || typeof r.started !== "boolean" || typeof r.healthy !== "boolean") return bad("learner, started and healthy must be booleans");
    if (members.some((x) => x.name === r.name)) return bad("a name listed twice");
    members.push({ name: r.name, id: r.id, learner: r.learner, started: r.started, healthy: r.healthy });
  }
  const clean = (o.message as string).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ").trim().slice(0, MAX_MESSAGE);
  return { ok: true, result: { action: o.action as MemberJobAction, member: o.member as string, done: o.done as boolean, message: clean, members } };
}
