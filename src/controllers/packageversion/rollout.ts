/**
 * The gray release of a ClusterPackageVersion (CPV), as pure functions: which catalog a Machine
 * must run now (`desiredPackages`, read by the Machine reconciler) and what one CPV reconcile
 * decides (`rolloutStep`, applied by PackageVersionReconciler). Both are level-based: they read
 * only the objects as they are (CPV spec/status, Machine annotations/status), so an operator
 * restart resumes a rollout where it stood, and a stale read only repeats an idempotent write.
 *
 * The hand-over to the Machine reconciler is the two annotations of package-revision.ts: this
 * controller admits a machine to a revision; the Machine reconciler installs what
 * `desiredPackages` names and reports `status.packagesRevision`, `targetRevision` and `phase`.
 */
import type {
  ClusterPackageVersionSpec,
  ClusterPackageVersionStatus,
  MachineSpec,
  MachineStatus,
  RolloutPhase,
  WorkerPackages,
} from "../../api/v1alpha1";
import { planRollout, resolveMaxUnavailable } from "../../components/rollout-plan";
import { isTrue, setCondition, type ConditionUpdate } from "../../runtime/conditions";
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

interface Assessed {
  readonly name: string;
  readonly machine: RolloutMachine;
  readonly onRev: boolean;
  readonly done: boolean;
  readonly admitted: boolean;
  /** Part of the gray release: installed, and not at rev unless the rollout put it there. */
  readonly planned: boolean;
  /** End of the health gate of an admitted machine; undefined when admittedAt is unreadable. */
  readonly deadline?: number;
  failure?: string;
}

const isReady = (m: RolloutMachine) => m.status?.phase === "Ready" && isTrue(m.status.conditions, "Ready");
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function listed(items: readonly string[], max = 10): string {
  return items.length <= max ? items.join(", ") : `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}

/**
 * One reconcile of a CPV's rollout; pure, `now` is the only clock.
 *
 * - Planned: installed machines that are not on the new revision `rev`, or that the rollout
 *   admitted (or rolled back). New hosts install `rev` directly and never enter the plan, so
 *   they neither wait for a batch nor hold one back; paused and deleting ones take no part.
 * - Batches: `planRollout` over the planned machines. A machine is done when it runs `rev` and is
 *   Ready; failed when its install of `rev` failed, when its health gate (admittedAt +
 *   readyTimeoutSeconds) ran out before it was done, or when it was rolled back from `rev`.
 * - Halted (haltOnFailure, the default): no more admissions until the failed machines are done
 *   or spec.packages changes; rollbackOnFailure puts them back on `currentRevision`, once.
 *   With haltOnFailure false a failed machine counts as settled for its batch.
 * - Paused: after the canary with pauseAfterCanary, or when a canary selector matches nothing,
 *   until RESUME_ANNOTATION is `rev` or "true".
 * - RollingOut: admits the first unsettled batch, never more than maxUnavailable non-canary
 *   machines admitted and not yet done at once.
 * - When every planned machine is done, `currentRevision` becomes `rev`; the phase is Complete
 *   once every machine runs it and was Ready (Pending while new hosts are still installing).
 */
export function rolloutStep({ cpv, machines, now }: RolloutInput): RolloutDecision {
  const nowMs = now.getTime();
  const rollout = cpv.spec.rollout ?? {};
  const haltOnFailure = rollout.haltOnFailure ?? true;
  const timeoutMs = (rollout.healthGate?.readyTimeoutSeconds ?? DEFAULT_READY_TIMEOUT_SECONDS) * 1000;
  const rev = packagesRevision(cpv.spec.packages);
  const prev = cpv.status ?? {};
  // The catalog a rollback returns to: none on the first catalog, or when the spec is reverted.
  const rollbackRevision = prev.currentRevision !== undefined && prev.currentRevision !== rev ? prev.currentRevision : undefined;

  // Deleting machines are leaving; paused ones accept no change. Neither takes part, and a paused
  // one is picked up by the rollout (or held) once unpaused.
  const active = machines.filter((m) => !m.metadata.deletionTimestamp);
  const assessed: Assessed[] = active
    .filter((m) => !m.spec.paused)
    .map((m) => {
      const annotations = m.metadata.annotations ?? {};
      const installed = m.status?.packagesRevision;
      const onRev = installed === rev;
      const admitted = annotations[PACKAGES_REVISION_ANNOTATION] === rev;
      const rolledBack = !admitted && annotations[ROLLED_BACK_FROM_ANNOTATION] === rev;
      const admittedAt = Date.parse(annotations[PACKAGES_ADMITTED_AT_ANNOTATION] ?? "");
      return {
        name: m.metadata.name,
        machine: m,
        onRev,
        done: onRev && isReady(m),
        admitted,
        planned: installed !== undefined && (!onRev || admitted || rolledBack),
        deadline: admitted && Number.isFinite(admittedAt) ? admittedAt + timeoutMs : undefined,
        failure: rolledBack ? `rolled back to ${prev.currentRevision ?? "the previous catalog"} after failing on ${rev}` : undefined,
      };
    })
    .sort((a, b) => byName(a.name, b.name));
  const planned = assessed.filter((a) => a.planned);
  // The rollout is over once every planned machine is done; only then do the machines outside
  // it (and a rollback) move to the new catalog. A first catalog with nothing planned is over at once.
  const currentRevision = planned.every((a) => a.done) ? rev : prev.currentRevision;
  const currentPackages = currentRevision === rev ? cpv.spec.packages : prev.currentPackages;
  // Outside a rollout, a machine that goes NotReady is the Machine reconciler's to remediate.
  const rollingOut = currentRevision !== rev || planned.some((a) => !a.onRev);
  for (const a of assessed) {
    if (a.failure || a.done) continue;
    const s = a.machine.status;
    if (s?.targetRevision === rev && s.phase === "Failed") {
      a.failure = `install of ${rev} failed${s.lastOperation?.message ? `: ${s.lastOperation.message.slice(0, 200)}` : ""}`;
    } else if (rollingOut && a.planned && a.deadline !== undefined && nowMs >= a.deadline) {
      const waited = Math.round((nowMs - a.deadline + timeoutMs) / 1000);
      const state = a.onRev ? `runs ${rev} but is not Ready` : `does not run ${rev}`;
      a.failure = `${state} ${waited}s after admission (phase ${s?.phase ?? "unknown"}; health gate ${timeoutMs / 1000}s)`;
    }
  }

  const batches = planRollout(planned.map((a) => ({ name: a.name, labels: a.machine.spec.labels })), rollout);
  const get = new Map(planned.map((a) => [a.name, a]));
  // With haltOnFailure false a failed machine no longer holds its batch back.
  const settled = (a: Assessed) => a.done || (a.failure !== undefined && !haltOnFailure);
  const pendingIndex = batches.findIndex((b) => b.machines.some((n) => !settled(get.get(n)!)));

  const failed = assessed.filter((a) => a.failure !== undefined);
  const failedChanged = (prev.failedMachines ?? []).join(",") !== failed.map((a) => a.name).join(",");
  const plannedFailed = failed.filter((a) => a.planned);
  const writes: MachineAnnotationWrite[] = [];
  const events: RolloutEvent[] = [];
  const at = now.toISOString();
  const batchLabel = (i: number) => `batch ${i + 1}/${batches.length}${batches[i]?.kind === "canary" ? " (canary)" : ""}`;
  let phase: RolloutPhase;
  let progressing: ConditionUpdate;

  if (rollingOut && haltOnFailure && plannedFailed.length > 0) {
    phase = "Halted";
    const why = plannedFailed.map((a) => `${a.name}: ${a.failure}`).join("; ");
    const toRollBack = plannedFailed.filter((a) => a.admitted);
    if (rollout.rollbackOnFailure && rollbackRevision && prev.currentPackages) {
      for (const a of toRollBack) writes.push({ kind: "rollback", machine: a.name, revision: rollbackRevision, from: rev, at });
    }
    const rollback = !rollout.rollbackOnFailure || toRollBack.length === 0
      ? ""
      : writes.length > 0
        ? ` Rolling back ${listed(writes.map((w) => w.machine))} to ${rollbackRevision}.`
        : " No previous catalog to roll back to.";
    const message = `rollout of ${rev} halted at ${batchLabel(pendingIndex)}: ${why}.${rollback} It resumes when these machines are Ready on ${rev} or spec.packages changes${rollout.rollbackOnFailure ? ` (remove the ${ROLLED_BACK_FROM_ANNOTATION} annotation of a rolled-back machine to retry it)` : ""}.`;
    progressing = { type: "Progressing", status: "False", reason: "RolloutHalted", message };
    const sameHalt = prev.phase === "Halted" && prev.revision === rev && !failedChanged;
    if (!sameHalt || writes.length > 0) events.push({ type: "Warning", reason: "RolloutHalted", message });
  } else if (rollingOut && pendingIndex >= 0) {
    const resume = cpv.metadata.annotations?.[RESUME_ANNOTATION];
    const resumed = resume === rev || resume === "true";
    const canary = rollout.canary;
    const started = planned.some((a) => a.admitted || a.onRev);
    const lostCanary = !started && canary?.selector !== undefined && (canary.count ?? 1) > 0 && batches[0]?.kind !== "canary";
    if (!resumed && rollout.pauseAfterCanary && batches[pendingIndex - 1]?.kind === "canary") {
      phase = "Paused";
      progressing = {
        type: "Progressing",
        status: "False",
        reason: "PausedAfterCanary",
        message: `the canary (${listed(batches[0].machines)}) runs ${rev} and is Ready; annotate the ClusterPackageVersion ${RESUME_ANNOTATION}=${rev} to continue`,
      };
    } else if (!resumed && lostCanary) {
      // A typo in the selector must not silently turn a canary rollout into a plain one.
      phase = "Paused";
      progressing = {
        type: "Progressing",
        status: "False",
        reason: "CanaryNotFound",
        message: `rollout.canary.selector matches none of the ${planned.length} machines to update; label the canaries, or annotate ${RESUME_ANNOTATION}=${rev} to roll out without a canary`,
      };
    } else {
      phase = "RollingOut";
      const current = batches[pendingIndex];
      const canaryNames = new Set(batches[0]?.kind === "canary" ? batches[0].machines : []);
      // Batches are re-planned on every look, so a deleted machine can shift names across batch
      // boundaries; the budget, not the boundary, is what bounds the machines out at once.
      const inFlight = planned.filter((a) => !canaryNames.has(a.name) && a.admitted && !a.done && a.failure === undefined).length;
      let budget = current.kind === "canary" ? Infinity : resolveMaxUnavailable(rollout.maxUnavailable, planned.length) - inFlight;
      for (const name of current.machines) {
        const a = get.get(name)!;
        if (a.done || a.admitted || a.failure !== undefined || budget <= 0) continue;
        writes.push({ kind: "admit", machine: name, revision: rev, admittedAt: at });
        budget--;
      }
      // An admission without a readable time would never time out: restart its gate.
      for (const a of planned) {
        if (a.admitted && a.deadline === undefined && !a.done) writes.push({ kind: "admit", machine: a.name, revision: rev, admittedAt: at });
      }
      const waiting = current.machines.filter((n) => !settled(get.get(n)!));
      progressing = { type: "Progressing", status: "True", reason: "RollingOut", message: `${batchLabel(pendingIndex)}: waiting for ${listed(waiting)} to run ${rev} and be Ready` };
      const admitted = writes.filter((w) => !get.get(w.machine)!.admitted).map((w) => w.machine);
      if (admitted.length > 0) events.push({ type: "Normal", reason: "BatchAdmitted", message: `${batchLabel(pendingIndex)} of catalog ${rev}: admitted ${listed(admitted)}` });
    }
    if (phase === "Paused" && (prev.phase !== "Paused" || prev.revision !== rev)) events.push({ type: "Normal", reason: "RolloutPaused", message: progressing.message });
  } else if (rollingOut) {
    phase = "RollingOut";
    progressing = { type: "Progressing", status: "True", reason: "WaitingForFailedMachines", message: `every batch is admitted; ${listed(plannedFailed.map((a) => a.name))} failed on ${rev} and keep the rollout from completing` };
  } else {
    const allOnRev = assessed.every((a) => a.onRev);
    const complete = assessed.every((a) => a.done) || (allOnRev && prev.phase === "Complete" && prev.revision === rev);
    phase = complete ? "Complete" : "Pending";
    progressing = complete
      ? { type: "Progressing", status: "False", reason: "RolloutComplete", message: `every machine runs catalog ${rev}` }
      : { type: "Progressing", status: "True", reason: "InstallingNewMachines", message: `waiting for ${listed(assessed.filter((a) => !a.done).map((a) => a.name))} to be installed with ${rev} and Ready` };
  }

  if (prev.revision !== undefined && prev.revision !== rev && rollbackRevision) {
    events.unshift({ type: "Normal", reason: "RolloutStarted", message: `catalog ${rollbackRevision} → ${rev} over ${planned.length} machines in ${batches.length} batches` });
  }
  if (prev.currentRevision !== rev && currentRevision === rev && planned.length > 0) {
    events.push({ type: "Normal", reason: "RolloutComplete", message: `catalog ${rev} rolled out to ${planned.length} machines` });
  }
  if (phase !== "Halted" && failed.length > 0 && failedChanged) {
    events.push({ type: "Warning", reason: "MachinesFailed", message: `the rollout goes on without them: ${failed.map((a) => `${a.name}: ${a.failure}`).join("; ")}` });
  }
  if ((prev.phase === "Halted" || prev.phase === "Paused") && prev.revision === rev && phase === "RollingOut") {
    events.push({ type: "Normal", reason: "RolloutResumed", message: `rollout of ${rev} resumed` });
  }

  const updated = active.filter((m) => m.status?.packagesRevision === rev);
  const notReady = active.filter((m) => !(m.status?.packagesRevision === rev && isReady(m))).map((m) => m.metadata.name).sort(byName);
  const degraded: ConditionUpdate = failed.length > 0
    ? { type: "Degraded", status: "True", reason: "MachinesFailed", message: failed.map((a) => `${a.name}: ${a.failure}`).join("; ") }
    : { type: "Degraded", status: "False", reason: "NoFailures", message: "no machine failed on this catalog" };
  const ready: ConditionUpdate = notReady.length === 0
    ? { type: "Ready", status: "True", reason: "AllMachinesReady", message: `all ${active.length} machines run catalog ${rev} and are Ready` }
    : { type: "Ready", status: "False", reason: "MachinesNotReady", message: `${notReady.length} of ${active.length} machines do not run ${rev} or are not Ready: ${listed(notReady)}` };
  let conditions = prev.conditions ?? [];
  for (const c of [ready, progressing, degraded]) conditions = setCondition(conditions, { ...c, observedGeneration: cpv.metadata.generation }, nowMs);

  const status: ClusterPackageVersionStatus = {
    phase,
    ...(cpv.metadata.generation !== undefined ? { observedGeneration: cpv.metadata.generation } : {}),
    updated: updated.length,
    ready: updated.filter(isReady).length,
    total: active.length,
    ...(rollingOut && pendingIndex >= 0 ? { currentBatch: pendingIndex } : {}),
    revision: rev,
    ...(currentRevision !== undefined ? { currentRevision } : {}),
    ...(currentPackages !== undefined ? { currentPackages } : {}),
    ...(failed.length > 0 ? { failedMachines: failed.map((a) => a.name) } : {}),
    conditions,
  };

  const gates = planned.filter((a) => a.admitted && !a.done && a.failure === undefined && a.deadline !== undefined).map((a) => a.deadline! - nowMs);
  // The gates this step opens count too: nothing else may wake us before they close.
  if (writes.some((w) => w.kind === "admit")) gates.push(timeoutMs);
  const requeueAfterMs = rollingOut && gates.length > 0 ? Math.min(MAX_REQUEUE_MS, Math.max(1000, Math.min(...gates))) : undefined;
  return { status, writes, events, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
}
