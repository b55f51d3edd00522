/**
 * The gray release of a ClusterPackageVersion (CPV), as pure functions: which catalog a Machine
 * must run now (`desiredPackages`, read by the Machine reconciler) and what one CPV reconcile
 * decides (`rolloutStep` in rollout-step.ts, applied by PackageVersionReconciler). Both are level-based: they read
 * only the objects as they are (CPV spec/status, Machine annotations/status), so an operator
 * restart resumes a rollout where it stood, and a stale read only repeats an idempotent write.
 *
 * The hand-over to the Machine reconciler is the two annotations of package-revision.ts: this
 * controller admits a machine to a revision; the Machine reconciler installs what
 * `desiredPackages` names and reports `status.packagesRevision`, `targetRevision` and `phase`.
 */
import type { ClusterPackageVersionSpec, ClusterPackageVersionStatus, MachineSpec, MachineStatus, WorkerPackages } from "../../api/v1alpha1";
import { PACKAGES_ADMITTED_AT_ANNOTATION, PACKAGES_REVISION_ANNOTATION, packagesRevision } from "./revision";

/** On a CPV: lifts a pause. Value: the revision to resume (status.revision), or "true" for any. */
export const RESUME_ANNOTATION = "kubeonkube.io/resume-rollout";
/**
 * On a Machine: the revision it was rolled back from. It keeps that machine failed (and the
 * rollout halted) after the rollback made it healthy again on the old catalog; remove it to let
 * the rollout try the machine again.
 */
export const ROLLED_BACK_FROM_ANNOTATION = "kubeonkube.io/packages-rolled-back-from";
export const DEFAULT_READY_TIMEOUT_SECONDS = 600;
/** Longest wait between two looks at a rollout whose machines are inside their health gate. */
export const MAX_REQUEUE_MS = 30_000;

/** The parts of a Machine the rollout reads; any Machine object fits. */
export interface RolloutMachine {
  readonly metadata: {
    readonly name: string;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly deletionTimestamp?: Date | string;
  };
  readonly spec: Pick<MachineSpec, "labels" | "packages" | "paused">;
  readonly status?: MachineStatus;
}

/** The parts of a ClusterPackageVersion the rollout reads. */
export interface RolloutPackageVersion {
  readonly metadata: { readonly name: string; readonly generation?: number; readonly annotations?: Readonly<Record<string, string>> };
  readonly spec: ClusterPackageVersionSpec;
  readonly status?: ClusterPackageVersionStatus;
}

export interface DesiredPackages {
  /** The catalog to install; undefined: change nothing on the host (hold) for now. */
  readonly packages: WorkerPackages | undefined;
  /** `packagesRevision(packages)`; when holding, the revision the host keeps running (if any). */
  readonly revision: string | undefined;
  /** A short phrase for logs and conditions. */
  readonly reason: string;
}

const install = (packages: WorkerPackages, reason: string): DesiredPackages => ({ packages, revision: packagesRevision(packages), reason });

/**
 * Which catalog `machine` must run now. A hold is the answer for a host that already runs a
 * catalog this CPV is not rolling out (it switched from explicit packages, or was on a
 * superseded rollout's revision): installing anything there before the rollout admits it would
 * be exactly the all-at-once upgrade a gray release exists to prevent.
 */
export function desiredPackages(machine: RolloutMachine, cpv: RolloutPackageVersion | undefined): DesiredPackages {
  if (machine.spec.packages) return install(machine.spec.packages, "explicit packages in the Machine spec");
  const installed = machine.status?.packagesRevision;
  const hold = (reason: string): DesiredPackages => ({ packages: undefined, revision: installed, reason });
  if (!cpv) return hold("its ClusterPackageVersion is not found");
  const rev = packagesRevision(cpv.spec.packages);
  const { currentRevision, currentPackages } = cpv.status ?? {};
  const admittedTo = machine.metadata.annotations?.[PACKAGES_REVISION_ANNOTATION];
  if (admittedTo === rev) return install(cpv.spec.packages, `admitted to catalog ${rev}`);
  if (admittedTo !== undefined && admittedTo === currentRevision && currentPackages) {
    return install(currentPackages, `held on (or rolled back to) catalog ${currentRevision}`);
  }
  // Nothing runs on a new host yet, so there is nothing to gray-release (sealos #4856).
  if (installed === undefined) return install(cpv.spec.packages, `never installed: newest catalog ${rev}`);
  // Without this a host installed as new during a rollout would fall back to the old catalog.
  if (installed === rev) return install(cpv.spec.packages, `runs catalog ${rev}`);
  if (installed === currentRevision && currentPackages) return install(currentPackages, `waits for its batch on catalog ${currentRevision}`);
  return hold(`runs catalog ${installed}; waits for the rollout of ${rev} to admit it`);
}

export type MachineAnnotationWrite =
  | { readonly kind: "admit"; readonly machine: string; readonly revision: string; readonly admittedAt: string }
  | { readonly kind: "rollback"; readonly machine: string; readonly revision: string; readonly from: string; readonly at: string };

/** The merge-patch `metadata.annotations` of a write (null removes a key). */
export function annotationsOf(write: MachineAnnotationWrite): Record<string, string | null> {
  if (write.kind === "admit") {
    return { [PACKAGES_REVISION_ANNOTATION]: write.revision, [PACKAGES_ADMITTED_AT_ANNOTATION]: write.admittedAt, [ROLLED_BACK_FROM_ANNOTATION]: null };
  }
  return { [PACKAGES_REVISION_ANNOTATION]: write.revision, [PACKAGES_ADMITTED_AT_ANNOTATION]: write.at, [ROLLED_BACK_FROM_ANNOTATION]: write.from };
}

export interface RolloutEvent {
  readonly type: "Normal" | "Warning";
  readonly reason: string;
  readonly message: string;
}

export interface RolloutInput {
  readonly cpv: RolloutPackageVersion;
  /** The Machines whose spec.packageVersionRef names this CPV (deleting ones included or not). */
  readonly machines: readonly RolloutMachine[];
  readonly now: Date;
}

export interface RolloutDecision {
  /** The whole new status (conditions merged): write it as is. */
  readonly status: ClusterPackageVersionStatus;
  /** Machine annotation writes, to apply before the status. */
  readonly writes: readonly MachineAnnotationWrite[];
  readonly events: readonly RolloutEvent[];
  /** Set while machines are inside their health gate, so a timeout is noticed without an event. */
  readonly requeueAfterMs?: number;
}
