/**
 * etcd membership in a Cluster's status (docs/operations.md, "Scaling etcd"): the members the
 * operator last observed through a membership Job, and the names both sides agree on.
 * `spec.etcd.replicas` may change among 1, 3, 5 and 7; the operator moves the membership there
 * one member at a time (src/controllers/cluster/etcd-membership.ts).
 */
import { Type, type Static } from "@sinclair/typebox";

/** Condition type: True Stable; False Scaling, Replacing, QuorumAtRisk, Observing, JobFailed. */
export const ETCD_MEMBERSHIP_CONDITION = "EtcdMembership";
/** The member counts `spec.etcd.replicas` may take (odd, at most 7). */
export const ETCD_MEMBER_COUNTS = [1, 3, 5, 7] as const;
/** CN of the membership Jobs' etcd client certificate (a leaf of the etcd CA). */
export const ETCD_MEMBER_CLIENT_CN = "kube-on-kube-etcd-membership";
/** app.kubernetes.io/component of the membership Jobs and their Pods. */
export const ETCD_MEMBERSHIP_COMPONENT_LABEL = { key: "app.kubernetes.io/component", value: "etcd-membership" } as const;

/** One member as a `kok etcd member` Job reports it (its result's `members`), parsed strictly by the operator. */
export interface ObservedMember {
  readonly name: string;
  readonly id: string;
  readonly learner: boolean;
  readonly started: boolean;
  readonly healthy: boolean;
}

export const EtcdMemberRecord = Type.Object(
  {
    name: Type.String({ maxLength: 63, description: "The member's name: its Pod's (`<cluster>-etcd-<ordinal>`)." }),
    id: Type.String({ pattern: "^[0-9a-f]{1,16}$", description: "etcd's member ID, hex." }),
    learner: Type.Boolean({ description: "A learner: added, not yet promoted to a voting member." }),
    started: Type.Boolean({ description: "The member has started and published its name." }),
    healthy: Type.Boolean({ description: "It answered its status with a leader when last observed." }),
    volumeUid: Type.Optional(
      Type.String({ maxLength: 64, description: "The uid of the member's data volume when it was last healthy: its PersistentVolumeClaim's, or with an emptyDir its Pod's. Another uid means the data was lost." }),
    ),
  },
  { additionalProperties: false },
);
export type EtcdMemberRecord = Static<typeof EtcdMemberRecord>;

export const EtcdMemberList = Type.Array(EtcdMemberRecord, { maxItems: 8, description: "The etcd members as the last membership Job observed them." });
export type EtcdMemberList = Static<typeof EtcdMemberList>;
