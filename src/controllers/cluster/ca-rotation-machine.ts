/**
 * The phases of a CA and service-account key rotation as a pure function of what the operator
 * observes: the `kubeonkube.io/rotate-ca` annotation, `status.certificates` (the rotation's phase
 * and the authorities the last update wrote), the Machines' reports and the time. Level-based:
 * the status says which step the stack must be at, so an operator killed anywhere re-runs the
 * same update (idempotent) or takes the next step; nothing is remembered in memory.
 *
 *   token new, none running ─start→ Preparing ─update→ WaitingForMachines ─every Machine trusts
 *   the bundle and holds a kubelet certificate of the new CA→ Completing ─update→
 *   DroppingOldEtcdCa ─update→ KeepingOldServiceAccountKey ─retention over→
 *   DroppingOldServiceAccountKey ─update→ Completed
 *
 * A phase whose name ends in -ing (but Keeping) is "pending": its update runs on every reconcile
 * until one succeeds, and that success moves it on (`afterUpdate`). What each step deploys is
 * src/components/ca-rotation.ts (`stackInputOf`).
 */
import type { CertificatesStatus, ClusterSpec, MachineCertificateReport, RotationPhase, RotationStatus } from "../../api/v1alpha1";
import { ROTATE_CA_ANNOTATION } from "../../api/v1alpha1";
import { NO_ROTATION, type CaRotationInput, type EtcdCaStep } from "../../components/ca-rotation";

export const MAX_ROTATION_TOKEN_LENGTH = 256;
/** How often a rotation waiting for Machines looks at them again (Machine changes do not wake a Cluster). */
export const MACHINES_RECHECK_MS = 30_000;
/**
 * How long the old service-account public key keeps verifying after the new key signs, without
 * `--service-account-max-token-expiration`: the kubelet re-requests every Pod's token at 80 % of its
 * lifetime and at least every 24 hours, so by then no running Pod holds a token of the old key.
 */
export const DEFAULT_SERVICE_ACCOUNT_KEY_RETENTION_MS = 24 * 3_600_000;
/** The longest requeue of a waiting rotation (a retention of weeks would overflow a timer). */
const MAX_WAIT_MS = 3_600_000;
/** At most this many Machines are named in a message; the rest are counted. */
const NAMED = 5;

/** Why a rotation leaves the etcd CA alone, and what to do about it. */
export const ETCD_CA_KEPT =
  "The etcd CA is kept: etcd's data lives in emptyDir volumes, and each of the rotation's rolls would restart its members empty (a single member takes the business cluster's whole state with it). Move etcd to spec.etcd.storage.claimTemplate (or hostPath) to rotate its CA.";

/** The phases whose update is still to be applied. */
const PENDING: ReadonlySet<RotationPhase> = new Set(["Preparing", "Completing", "DroppingOldEtcdCa", "DroppingOldServiceAccountKey"]);

export interface RotationObservation {
  /** The annotation's value, if set. */
  readonly token?: string;
  readonly certificates?: CertificatesStatus;
  /** Whether the Cluster's stack was applied once (status.version): a rotation starts on a running cluster. */
  readonly provisioned: boolean;
  readonly machines: readonly MachineCertificateReport[];
  readonly now: Date;
  readonly serviceAccountKeyRetentionMs: number;
  /**
   * Whether etcd's data outlives its members' Pods (a PersistentVolumeClaim or a hostPath): only
   * then may a rotation roll them. An emptyDir member comes back empty from a roll; a single one
   * takes the whole business cluster's state with it. Default true.
   */
  readonly etcdDataOutlivesPods?: boolean;
}

export type RotationDecision =
  /** Nothing to rotate; `note` (a refused token) is told once by the caller. */
  | { readonly kind: "none"; readonly note?: string }
  /** Write `rotation` to status, then run the update. */
  | { readonly kind: "step"; readonly rotation: RotationStatus; readonly message: string }
  /** The status's phase is pending: run the update (again). */
  | { readonly kind: "update" }
  /** Nothing to do now; look again after `requeueAfterMs`. */
  | { readonly kind: "wait"; readonly message: string; readonly requeueAfterMs: number };

/** What the stack deploys for a rotation status (none: generation 0, never rotated). */
export function stackInputOf(rotation: RotationStatus | undefined): CaRotationInput {
  if (!rotation) return NO_ROTATION;
  const generation = rotation.generation;
  const etcd = (step: EtcdCaStep["step"]) => etcdStepOf(rotation, step);
  switch (rotation.phase) {
    case "Preparing":
    case "WaitingForMachines":
      return { generation, trusting: true, previousServiceAccountKey: false, ...etcd("trusting") };
    case "Completing":
      return { generation, trusting: false, previousServiceAccountKey: true, ...etcd("switching") };
    case "DroppingOldEtcdCa":
    case "KeepingOldServiceAccountKey":
      return { generation, trusting: false, previousServiceAccountKey: true, ...etcd("stable") };
    case "DroppingOldServiceAccountKey":
    case "Completed":
      return { generation, trusting: false, previousServiceAccountKey: false, ...etcd("stable") };
  }
}

/**
 * The etcd part of a step. A rotation begun by an operator that did not rotate etcd's CA has no
 * `etcdGeneration`: its etcd CA is still generation 0, and it stays so (no `etcd`, the stack's
 * graph as before). One that keeps the etcd CA (`etcdCaKept`) holds it stable throughout.
 */
function etcdStepOf(rotation: RotationStatus, step: EtcdCaStep["step"]): { etcd?: EtcdCaStep } {
  if (rotation.etcdGeneration === undefined) return {};
  return { etcd: { generation: rotation.etcdGeneration, step: rotation.etcdCaKept ? "stable" : step } };
}

export function isPending(rotation: RotationStatus | undefined): boolean {
  return rotation !== undefined && PENDING.has(rotation.phase);
}

export function decideRotation(o: RotationObservation): RotationDecision {
  const rotation = o.certificates?.rotation;
  if (!o.provisioned) return { kind: "none" };
  if (isPending(rotation)) return { kind: "update" };
  const now = o.now.toISOString();
  const asked = newToken(o.token, rotation);
  if (!rotation || rotation.phase === "Completed") {
    if (asked === undefined) return { kind: "none" };
    if (typeof asked !== "string") return { kind: "none", note: asked.refused };
    const generation = (rotation?.generation ?? 0) + 1;
    const etcdBefore = rotation?.etcdGeneration ?? 0;
    if (o.etcdDataOutlivesPods === false) {
      return {
        kind: "step",
        rotation: { token: asked, phase: "Preparing", generation, etcdGeneration: etcdBefore, etcdCaKept: true, startedAt: now, phaseStartedAt: now },
        message:
          `rotation to CA generation ${generation} started: phase 1 adds the new cluster and front-proxy CAs to every trust bundle and re-issues the apiserver's client certificates from them. ` +
          `${ETCD_CA_KEPT}`,
      };
    }
    const etcdGeneration = etcdBefore + 1;
    return {
      kind: "step",
      rotation: { token: asked, phase: "Preparing", generation, etcdGeneration, startedAt: now, phaseStartedAt: now },
      message: `rotation to CA generation ${generation} (etcd CA generation ${etcdGeneration}) started: phase 1 adds the new cluster, front-proxy and etcd CAs to every trust bundle and re-issues the apiserver's client certificates from the new cluster and front-proxy CAs`,
    };
  }
  const queued = typeof asked === "string" ? `; ${ROTATE_CA_ANNOTATION} asks for another rotation, which starts once this one completed` : "";
  if (rotation.phase === "WaitingForMachines") {
    const behind = machinesBehind(o.machines, o.certificates);
    if (behind.length) {
      const named = behind.slice(0, NAMED).join(", ");
      const more = behind.length > NAMED ? ` and ${behind.length - NAMED} more` : "";
      return { kind: "wait", requeueAfterMs: MACHINES_RECHECK_MS, message: `phase 1 applied; phase 2 waits for ${behind.length} Machine(s): ${named}${more}${queued}` };
    }
    return {
      kind: "step",
      rotation: { ...rotation, phase: "Completing", phaseStartedAt: now, message: undefined },
      message: `every Machine trusts the new CA: phase 2 switches the servers to CA generation ${rotation.generation}, removes the old cluster and front-proxy CAs, signs service-account tokens with the new key${rotation.etcdGeneration === undefined || rotation.etcdCaKept ? "" : " and re-issues etcd's certificates from the new etcd CA"}`,
    };
  }
  // KeepingOldServiceAccountKey
  const retiresAt = Date.parse(rotation.serviceAccountKeyRetiresAt ?? "");
  const left = Number.isNaN(retiresAt) ? 0 : retiresAt - o.now.getTime();
  if (left > 0) {
    return { kind: "wait", requeueAfterMs: Math.min(left, MAX_WAIT_MS), message: `phase 2 applied; the old service-account public key verifies tokens until ${rotation.serviceAccountKeyRetiresAt}${queued}` };
  }
  return {
    kind: "step",
    rotation: { ...rotation, phase: "DroppingOldServiceAccountKey", phaseStartedAt: now, message: undefined },
    message: "the old service-account key's tokens have expired: dropping its public key",
  };
}

/**
 * The rotation once an update with `stackInputOf(rotation)` succeeded: a pending phase moves on,
 * any other stays (an update for a spec change or drift re-applies the same step).
 */
export function afterUpdate(rotation: RotationStatus | undefined, now: Date, serviceAccountKeyRetentionMs: number): RotationStatus | undefined {
  if (!rotation || !isPending(rotation)) return rotation;
  const at = now.toISOString();
  switch (rotation.phase) {
    case "Preparing":
      return { ...rotation, phase: "WaitingForMachines", phaseStartedAt: at };
    case "Completing":
      // etcd's members all hold certificates of the new etcd CA now: the next update drops the old one.
      return { ...rotation, phase: "DroppingOldEtcdCa", phaseStartedAt: at };
    case "DroppingOldEtcdCa":
      return { ...rotation, phase: "KeepingOldServiceAccountKey", phaseStartedAt: at, serviceAccountKeyRetiresAt: new Date(now.getTime() + serviceAccountKeyRetentionMs).toISOString() };
    default:
      return { ...rotation, phase: "Completed", phaseStartedAt: at, serviceAccountKeyRetiresAt: undefined };
  }
}

/** A new token to handle: the token, `{refused}` for one that cannot be, or undefined for none. */
function newToken(token: string | undefined, rotation: RotationStatus | undefined): string | { refused: string } | undefined {
  if (token === undefined || token === rotation?.token) return undefined;
  if (token.length === 0 || token.length > MAX_ROTATION_TOKEN_LENGTH) {
    return { refused: `${ROTATE_CA_ANNOTATION} must be 1 to ${MAX_ROTATION_TOKEN_LENGTH} characters (it has ${token.length}): no rotation started` };
  }
  return token;
}

/**
 * The Machines that do not yet trust the current bundle or still hold a kubelet certificate of
 * another CA, each with why. Machines being deleted are not waited for.
 */
export function machinesBehind(machines: readonly MachineCertificateReport[], certificates: CertificatesStatus | undefined): string[] {
  const signing = certificates?.authorities?.find((a) => a.name === "cluster")?.fingerprint;
  const bundle = certificates?.trustBundle;
  if (!signing || !bundle) return machines.length ? ["the new CA's fingerprint is not in status yet"] : [];
  return machines.flatMap((m) => {
    if (m.deleting) return [];
    const c = m.certificates;
    if (!c?.trustBundle) return [`${m.name} (reports no certificates yet)`];
    if (c.trustBundle !== bundle) return [`${m.name} (trusts another bundle)`];
    if (c.kubeletClient?.issuer !== signing) return [`${m.name} (kubelet client certificate of another CA)`];
    if (c.kubeletServing?.issuer !== undefined && c.kubeletServing.issuer !== signing) return [`${m.name} (kubelet serving certificate of another CA)`];
    return [];
  });
}

/**
 * How long the old service-account public key stays: the apiserver's
 * `--service-account-max-token-expiration` when `spec.apiServer.extraArgs` sets it (a Go duration
 * of hours, minutes and seconds), else DEFAULT_SERVICE_ACCOUNT_KEY_RETENTION_MS.
 */
export function serviceAccountKeyRetentionMs(spec: Pick<ClusterSpec, "apiServer">): number {
  const value = spec.apiServer?.extraArgs?.["service-account-max-token-expiration"];
  const parsed = value === undefined ? undefined : goDurationMs(value);
  return parsed ?? DEFAULT_SERVICE_ACCOUNT_KEY_RETENTION_MS;
}

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };

/** A Go duration such as `48h` or `1h30m`; undefined when it is not one (then the default applies). */
export function goDurationMs(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(h|ms|m|s))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, amount, , unit] of text.matchAll(/(\d+(\.\d+)?)(h|ms|m|s)/g)) total += Number(amount) * UNIT_MS[unit];
  return total > 0 ? total : undefined;
}
