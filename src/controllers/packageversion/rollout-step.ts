/**
 * One reconcile of a ClusterPackageVersion's gray release (`rolloutStep`), as a pure function
 * of the CPV and its Machines, in named steps: assess the machines, decide the phase (halt,
 * advance or pause, settle), then the status, the transition Events and the next look.
 */
import type { ClusterPackageVersionStatus, RolloutPhase, RolloutSpec, WorkerPackages } from "../../api/v1alpha1";
import { planRollout, resolveMaxUnavailable, type RolloutBatch } from "../../components/rollout-plan";
import { isTrue, setCondition, type ConditionUpdate } from "../../runtime/conditions";
import { PACKAGES_ADMITTED_AT_ANNOTATION, PACKAGES_REVISION_ANNOTATION, packagesRevision } from "./revision";
import {
  DEFAULT_READY_TIMEOUT_SECONDS,
  MAX_REQUEUE_MS,
  RESUME_ANNOTATION,
  ROLLED_BACK_FROM_ANNOTATION,
  type MachineAnnotationWrite,
  type RolloutDecision,
  type RolloutEvent,
  type RolloutInput,
  type RolloutMachine,
  type RolloutPackageVersion,
} from "./rollout";

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
  const c = assessRollout(cpv, machines, now);
  const { phase, progressing, writes, events } = decidePhase(c);
  const status = rolloutStatus(c, phase, progressing);
  const requeueAfterMs = gateRequeue(c, writes);
  return { status, writes, events: withTransitions(c, phase, events), ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
}

/** What one step knows of a rollout once its machines are assessed. */
interface Assessment {
  readonly cpv: RolloutPackageVersion;
  readonly rollout: RolloutSpec;
  readonly prev: ClusterPackageVersionStatus;
  /** The revision being rolled out: spec.packages'. */
  readonly rev: string;
  /** The catalog a rollback returns to: none on the first catalog, or when the spec is reverted. */
  readonly rollbackRevision: string | undefined;
  readonly currentRevision: string | undefined;
  readonly currentPackages: WorkerPackages | undefined;
  readonly haltOnFailure: boolean;
  readonly timeoutMs: number;
  readonly nowMs: number;
  readonly at: string;
  /** Machines not being deleted (paused ones included). */
  readonly active: readonly RolloutMachine[];
  readonly assessed: readonly Assessed[];
  readonly planned: readonly Assessed[];
  readonly byPlannedName: ReadonlyMap<string, Assessed>;
  /** Outside a rollout, a machine that goes NotReady is the Machine reconciler's to remediate. */
  readonly rollingOut: boolean;
  readonly batches: readonly RolloutBatch[];
  /** The first batch with an unsettled machine, or -1. */
  readonly pendingIndex: number;
  readonly failed: readonly Assessed[];
  readonly plannedFailed: readonly Assessed[];
  /** The failed machines are not those the status lists. */
  readonly failedChanged: boolean;
}

/** A phase with its Progressing condition, the Machine annotation writes and the Events that go with it. */
interface PhaseDecision {
  readonly phase: RolloutPhase;
  readonly progressing: ConditionUpdate;
  readonly writes: readonly MachineAnnotationWrite[];
  readonly events: readonly RolloutEvent[];
}

function assessRollout(cpv: RolloutPackageVersion, machines: readonly RolloutMachine[], now: Date): Assessment {
  const nowMs = now.getTime();
  const rollout = cpv.spec.rollout ?? {};
  const haltOnFailure = rollout.haltOnFailure ?? true;
  const timeoutMs = (rollout.healthGate?.readyTimeoutSeconds ?? DEFAULT_READY_TIMEOUT_SECONDS) * 1000;
  const rev = packagesRevision(cpv.spec.packages);
  const prev = cpv.status ?? {};
  const rollbackRevision = prev.currentRevision !== undefined && prev.currentRevision !== rev ? prev.currentRevision : undefined;

  // Deleting machines are leaving; paused ones accept no change. Neither takes part, and a paused
  // one is picked up by the rollout (or held) once unpaused.
  const active = machines.filter((m) => !m.metadata.deletionTimestamp);
  const assessed = active
    .filter((m) => !m.spec.paused)
    .map((m) => assessMachine(m, rev, prev, timeoutMs))
    .sort((a, b) => byName(a.name, b.name));
  const planned = assessed.filter((a) => a.planned);
  // The rollout is over once every planned machine is done; only then do the machines outside
  // it (and a rollback) move to the new catalog. A first catalog with nothing planned is over at once.
  const currentRevision = planned.every((a) => a.done) ? rev : prev.currentRevision;
  const currentPackages = currentRevision === rev ? cpv.spec.packages : prev.currentPackages;
  const rollingOut = currentRevision !== rev || planned.some((a) => !a.onRev);
  markFailures(assessed, { rev, rollingOut, nowMs, timeoutMs });

  const batches = planRollout(planned.map((a) => ({ name: a.name, labels: a.machine.spec.labels })), rollout);
  const byPlannedName = new Map(planned.map((a) => [a.name, a]));
  const pendingIndex = batches.findIndex((b) => b.machines.some((n) => !isSettled(byPlannedName.get(n)!, haltOnFailure)));
  const failed = assessed.filter((a) => a.failure !== undefined);
  return {
    cpv,
    rollout,
    prev,
    rev,
    rollbackRevision,
    currentRevision,
    currentPackages,
    haltOnFailure,
    timeoutMs,
    nowMs,
    at: now.toISOString(),
    active,
    assessed,
    planned,
    byPlannedName,
    rollingOut,
    batches,
    pendingIndex,
    failed,
    plannedFailed: failed.filter((a) => a.planned),
    failedChanged: (prev.failedMachines ?? []).join(",") !== failed.map((a) => a.name).join(","),
  };
}

function assessMachine(m: RolloutMachine, rev: string, prev: ClusterPackageVersionStatus, timeoutMs: number): Assessed {
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
}

/** A failed install of `rev`, or (while rolling out) a health gate that ran out, marks a machine failed. */
function markFailures(assessed: readonly Assessed[], o: { rev: string; rollingOut: boolean; nowMs: number; timeoutMs: number }): void {
  const { rev, nowMs, timeoutMs } = o;
  for (const a of assessed) {
    if (a.failure || a.done) continue;
    const s = a.machine.status;
    if (s?.targetRevision === rev && s.phase === "Failed") {
      a.failure = `install of ${rev} failed${s.lastOperation?.message ? `: ${s.lastOperation.message.slice(0, 200)}` : ""}`;
    } else if (o.rollingOut && a.planned && a.deadline !== undefined && nowMs >= a.deadline) {
      const waited = Math.round((nowMs - a.deadline + timeoutMs) / 1000);
      const state = a.onRev ? `runs ${rev} but is not Ready` : `does not run ${rev}`;
      a.failure = `${state} ${waited}s after admission (phase ${s?.phase ?? "unknown"}; health gate ${timeoutMs / 1000}s)`;
    }
  }
}

/** With haltOnFailure false a failed machine no longer holds its batch back. */
const isSettled = (a: Assessed, haltOnFailure: boolean) => a.done || (a.failure !== undefined && !haltOnFailure);

const batchLabel = (c: Assessment, i: number) => `batch ${i + 1}/${c.batches.length}${c.batches[i]?.kind === "canary" ? " (canary)" : ""}`;

function decidePhase(c: Assessment): PhaseDecision {
  if (c.rollingOut && c.haltOnFailure && c.plannedFailed.length > 0) return halt(c);
  if (c.rollingOut && c.pendingIndex >= 0) return advance(c);
  if (c.rollingOut) {
    const message = `every batch is admitted; ${listed(c.plannedFailed.map((a) => a.name))} failed on ${c.rev} and keep the rollout from completing`;
    return { phase: "RollingOut", progressing: { type: "Progressing", status: "True", reason: "WaitingForFailedMachines", message }, writes: [], events: [] };
  }
  return settle(c);
}

/** Halted on failed machines; with rollbackOnFailure the admitted ones go back to the previous catalog, once. */
function halt(c: Assessment): PhaseDecision {
  const { rollout, rev, prev, rollbackRevision } = c;
  const writes: MachineAnnotationWrite[] = [];
  const why = c.plannedFailed.map((a) => `${a.name}: ${a.failure}`).join("; ");
  const toRollBack = c.plannedFailed.filter((a) => a.admitted);
  if (rollout.rollbackOnFailure && rollbackRevision && prev.currentPackages) {
    for (const a of toRollBack) writes.push({ kind: "rollback", machine: a.name, revision: rollbackRevision, from: rev, at: c.at });
  }
  const rollback = !rollout.rollbackOnFailure || toRollBack.length === 0
    ? ""
    : writes.length > 0
      ? ` Rolling back ${listed(writes.map((w) => w.machine))} to ${rollbackRevision}.`
      : " No previous catalog to roll back to.";
  const message = `rollout of ${rev} halted at ${batchLabel(c, c.pendingIndex)}: ${why}.${rollback} It resumes when these machines are Ready on ${rev} or spec.packages changes${rollout.rollbackOnFailure ? ` (remove the ${ROLLED_BACK_FROM_ANNOTATION} annotation of a rolled-back machine to retry it)` : ""}.`;
  const sameHalt = prev.phase === "Halted" && prev.revision === rev && !c.failedChanged;
  const events: RolloutEvent[] = !sameHalt || writes.length > 0 ? [{ type: "Warning", reason: "RolloutHalted", message }] : [];
  return { phase: "Halted", progressing: { type: "Progressing", status: "False", reason: "RolloutHalted", message }, writes, events };
}

/** A batch is pending: paused after the canary or for a canary that matches nothing, else admit it. */
function advance(c: Assessment): PhaseDecision {
  const { rollout, rev, batches } = c;
  const resume = c.cpv.metadata.annotations?.[RESUME_ANNOTATION];
  const resumed = resume === rev || resume === "true";
  const canary = rollout.canary;
  const started = c.planned.some((a) => a.admitted || a.onRev);
  const lostCanary = !started && canary?.selector !== undefined && (canary.count ?? 1) > 0 && batches[0]?.kind !== "canary";
  if (!resumed && rollout.pauseAfterCanary && batches[c.pendingIndex - 1]?.kind === "canary") {
    return paused(c, "PausedAfterCanary", `the canary (${listed(batches[0].machines)}) runs ${rev} and is Ready; annotate the ClusterPackageVersion ${RESUME_ANNOTATION}=${rev} to continue`);
  }
  if (!resumed && lostCanary) {
    // A typo in the selector must not silently turn a canary rollout into a plain one.
    return paused(c, "CanaryNotFound", `rollout.canary.selector matches none of the ${c.planned.length} machines to update; label the canaries, or annotate ${RESUME_ANNOTATION}=${rev} to roll out without a canary`);
  }
  return admitBatch(c);
}

function paused(c: Assessment, reason: string, message: string): PhaseDecision {
  const events: RolloutEvent[] = c.prev.phase !== "Paused" || c.prev.revision !== c.rev ? [{ type: "Normal", reason: "RolloutPaused", message }] : [];
  return { phase: "Paused", progressing: { type: "Progressing", status: "False", reason, message }, writes: [], events };
}

/** Admits the pending batch's machines, never more than maxUnavailable non-canary ones out at once. */
function admitBatch(c: Assessment): PhaseDecision {
  const { rev, batches, pendingIndex, planned, byPlannedName: get } = c;
  const writes: MachineAnnotationWrite[] = [];
  const current = batches[pendingIndex];
  const canaryNames = new Set(batches[0]?.kind === "canary" ? batches[0].machines : []);
  // Batches are re-planned on every look, so a deleted machine can shift names across batch
  // boundaries; the budget, not the boundary, is what bounds the machines out at once.
  const inFlight = planned.filter((a) => !canaryNames.has(a.name) && a.admitted && !a.done && a.failure === undefined).length;
  let budget = current.kind === "canary" ? Infinity : resolveMaxUnavailable(c.rollout.maxUnavailable, planned.length) - inFlight;
  for (const name of current.machines) {
    const a = get.get(name)!;
    if (a.done || a.admitted || a.failure !== undefined || budget <= 0) continue;
    writes.push({ kind: "admit", machine: name, revision: rev, admittedAt: c.at });
    budget--;
  }
  // An admission without a readable time would never time out: restart its gate.
  for (const a of planned) {
    if (a.admitted && a.deadline === undefined && !a.done) writes.push({ kind: "admit", machine: a.name, revision: rev, admittedAt: c.at });
  }
  const waiting = current.machines.filter((n) => !isSettled(get.get(n)!, c.haltOnFailure));
  const progressing: ConditionUpdate = { type: "Progressing", status: "True", reason: "RollingOut", message: `${batchLabel(c, pendingIndex)}: waiting for ${listed(waiting)} to run ${rev} and be Ready` };
  const admitted = writes.filter((w) => !get.get(w.machine)!.admitted).map((w) => w.machine);
  const events: RolloutEvent[] = admitted.length > 0 ? [{ type: "Normal", reason: "BatchAdmitted", message: `${batchLabel(c, pendingIndex)} of catalog ${rev}: admitted ${listed(admitted)}` }] : [];
  return { phase: "RollingOut", progressing, writes, events };
}

/** No rollout: Complete once every machine runs `rev` and was Ready, Pending while new hosts install. */
function settle(c: Assessment): PhaseDecision {
  const { assessed, rev, prev } = c;
  const allOnRev = assessed.every((a) => a.onRev);
  const complete = assessed.every((a) => a.done) || (allOnRev && prev.phase === "Complete" && prev.revision === rev);
  const progressing: ConditionUpdate = complete
    ? { type: "Progressing", status: "False", reason: "RolloutComplete", message: `every machine runs catalog ${rev}` }
    : { type: "Progressing", status: "True", reason: "InstallingNewMachines", message: `waiting for ${listed(assessed.filter((a) => !a.done).map((a) => a.name))} to be installed with ${rev} and Ready` };
  return { phase: complete ? "Complete" : "Pending", progressing, writes: [], events: [] };
}

/** The phase's Events with those of a transition: started, complete, machines failed, resumed. */
function withTransitions(c: Assessment, phase: RolloutPhase, phaseEvents: readonly RolloutEvent[]): RolloutEvent[] {
  const { prev, rev, planned, failed } = c;
  const events = [...phaseEvents];
  if (prev.revision !== undefined && prev.revision !== rev && c.rollbackRevision) {
    events.unshift({ type: "Normal", reason: "RolloutStarted", message: `catalog ${c.rollbackRevision} → ${rev} over ${planned.length} machines in ${c.batches.length} batches` });
  }
  if (prev.currentRevision !== rev && c.currentRevision === rev && planned.length > 0) {
    events.push({ type: "Normal", reason: "RolloutComplete", message: `catalog ${rev} rolled out to ${planned.length} machines` });
  }
  if (phase !== "Halted" && failed.length > 0 && c.failedChanged) {
    events.push({ type: "Warning", reason: "MachinesFailed", message: `the rollout goes on without them: ${failed.map((a) => `${a.name}: ${a.failure}`).join("; ")}` });
  }
  if ((prev.phase === "Halted" || prev.phase === "Paused") && prev.revision === rev && phase === "RollingOut") {
    events.push({ type: "Normal", reason: "RolloutResumed", message: `rollout of ${rev} resumed` });
  }
  return events;
}

/** The whole new status, its Ready, Progressing and Degraded conditions merged into the previous ones. */
function rolloutStatus(c: Assessment, phase: RolloutPhase, progressing: ConditionUpdate): ClusterPackageVersionStatus {
  const { active, rev, failed, cpv } = c;
  const updated = active.filter((m) => m.status?.packagesRevision === rev);
  const notReady = active.filter((m) => !(m.status?.packagesRevision === rev && isReady(m))).map((m) => m.metadata.name).sort(byName);
  const degraded: ConditionUpdate = failed.length > 0
    ? { type: "Degraded", status: "True", reason: "MachinesFailed", message: failed.map((a) => `${a.name}: ${a.failure}`).join("; ") }
    : { type: "Degraded", status: "False", reason: "NoFailures", message: "no machine failed on this catalog" };
  const ready: ConditionUpdate = notReady.length === 0
    ? { type: "Ready", status: "True", reason: "AllMachinesReady", message: `all ${active.length} machines run catalog ${rev} and are Ready` }
    : { type: "Ready", status: "False", reason: "MachinesNotReady", message: `${notReady.length} of ${active.length} machines do not run ${rev} or are not Ready: ${listed(notReady)}` };
  let conditions = c.prev.conditions ?? [];
  for (const u of [ready, progressing, degraded]) conditions = setCondition(conditions, { ...u, observedGeneration: cpv.metadata.generation }, c.nowMs);
  return {
    phase,
    ...(cpv.metadata.generation !== undefined ? { observedGeneration: cpv.metadata.generation } : {}),
    updated: updated.length,
    ready: updated.filter(isReady).length,
    total: active.length,
    ...(c.rollingOut && c.pendingIndex >= 0 ? { currentBatch: c.pendingIndex } : {}),
    revision: rev,
    ...(c.currentRevision !== undefined ? { currentRevision: c.currentRevision } : {}),
    ...(c.currentPackages !== undefined ? { currentPackages: c.currentPackages } : {}),
    ...(failed.length > 0 ? { failedMachines: failed.map((a) => a.name) } : {}),
    conditions,
  };
}

/** While rolling out, the next look is when the first open health gate closes (capped). */
function gateRequeue(c: Assessment, writes: readonly MachineAnnotationWrite[]): number | undefined {
  const gates = c.planned.filter((a) => a.admitted && !a.done && a.failure === undefined && a.deadline !== undefined).map((a) => a.deadline! - c.nowMs);
  // The gates this step opens count too: nothing else may wake us before they close.
  if (writes.some((w) => w.kind === "admit")) gates.push(c.timeoutMs);
  return c.rollingOut && gates.length > 0 ? Math.min(MAX_REQUEUE_MS, Math.max(1000, Math.min(...gates))) : undefined;
}
