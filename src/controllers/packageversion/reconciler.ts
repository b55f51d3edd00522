/**
 * Reconciles one `ClusterPackageVersion`: the gray release of its catalog over the Machines that
 * reference it. Every decision is `rolloutStep`'s (rollout-step.ts); this class reads the
 * objects, applies the decision and reports it:
 *
 *   gone or deleting?  → nothing to do (no finalizer: Machines keep their last admission)
 *   invalid spec?      → InvalidSpec conditions, a Warning Event, a TerminalError (no retry)
 *   otherwise          → Machine annotations, then status, then Events; requeue while a health
 *                        gate is running so its timeout is noticed without a watch event
 *
 * Annotations go before the status: if a write fails half-way, the retry recomputes the same
 * step from the Machines, whereas a status written first could claim admissions never made.
 */
import {
  formatProblem,
  validateClusterPackageVersionSpec,
  type ClusterPackageVersionStatus,
  type PackageVersionObject,
  type RolloutPhase,
} from "../../api/v1alpha1";
import { setCondition } from "../../runtime/conditions";
import type { ObjectStore } from "../../runtime/object-store";
import { TerminalError, type ReconcileResult } from "../../runtime/controller";
import { splitKey } from "../../runtime/keys";
import { annotationsOf, type RolloutMachine } from "./rollout";
import { rolloutStep } from "./rollout-step";

/** A Machine as the store hands it over; any Machine object fits. */
export interface PackageVersionMachine extends RolloutMachine {
  readonly metadata: RolloutMachine["metadata"] & { readonly namespace: string };
}

export interface PackageVersionStore extends Pick<ObjectStore<PackageVersionObject, ClusterPackageVersionStatus>, "getLive" | "writeStatus"> {
  /** The Machines whose spec.packageVersionRef names this CPV, from the informer cache. */
  machinesOf(namespace: string, packageVersionName: string): readonly PackageVersionMachine[] | Promise<readonly PackageVersionMachine[]>;
  /** A merge patch of metadata.annotations (null removes a key). */
  annotateMachine(machine: PackageVersionMachine, annotations: Record<string, string | null>): Promise<void>;
}

export interface PackageVersionEventSink {
  record(cpv: PackageVersionObject, type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
}

export interface RolloutProgress {
  readonly phase: RolloutPhase;
  readonly updated: number;
  readonly ready: number;
  readonly total: number;
}

export interface PackageVersionReconcilerOptions {
  readonly store: PackageVersionStore;
  readonly events: PackageVersionEventSink;
  readonly now?: () => Date;
  /** After each reconcile, for gauges; `undefined` when the CPV is gone (drop its series). */
  readonly onRolloutProgress?: (key: string, progress: RolloutProgress | undefined) => void;
}

/**
 * The CPV key a Machine event must enqueue (namespace/name), or undefined for a Machine with
 * explicit packages. On an update that changes the reference, enqueue the old object's key too,
 * so the CPV it left stops counting it.
 */
export function packageVersionKeyOf(machine: {
  readonly metadata: { readonly namespace?: string };
  readonly spec: { readonly packageVersionRef?: { readonly name: string } };
}): string | undefined {
  const ref = machine.spec.packageVersionRef?.name;
  return ref && machine.metadata.namespace ? `${machine.metadata.namespace}/${ref}` : undefined;
}

export class PackageVersionReconciler {
  private readonly now: () => Date;

  constructor(private readonly o: PackageVersionReconcilerOptions) {
    this.now = o.now ?? (() => new Date());
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    if (!namespace) throw new TerminalError(`ClusterPackageVersion key "${key}" has no namespace; the kind is namespaced`);
    const cpv = await this.o.store.getLive(namespace, name);
    if (!cpv || cpv.metadata.deletionTimestamp) {
      this.o.onRolloutProgress?.(key, undefined);
      return {};
    }
    const problems = validateClusterPackageVersionSpec(cpv.spec, "spec").map(formatProblem);
    if (problems.length > 0) return this.invalid(key, cpv, problems.join("; "));

    const machines = await this.o.store.machinesOf(namespace, name);
    const decision = rolloutStep({ cpv, machines, now: this.now() });
    const byName = new Map(machines.map((m) => [m.metadata.name, m]));
    for (const write of decision.writes) await this.o.store.annotateMachine(byName.get(write.machine)!, annotationsOf(write));
    // Events first: whoever sees the new phase (a user, an alert, a test) finds why it changed.
    // Recording is best effort and never throws, so the status write still follows.
    for (const e of decision.events) await this.o.events.record(cpv, e.type, e.reason, e.message);
    // The status is recomputed on the stored object's status (the same spec, Machines and time),
    // so a concurrent write is built on, never overwritten with what this read saw.
    const now = this.now();
    await this.o.store.writeStatus(cpv, (fresh) => rolloutStep({ cpv: { ...cpv, status: fresh }, machines, now }).status);
    const { phase = "Pending", updated = 0, ready = 0, total = 0 } = decision.status;
    this.o.onRolloutProgress?.(key, { phase, updated, ready, total });
    return decision.requeueAfterMs !== undefined ? { requeueAfter: decision.requeueAfterMs } : {};
  }

  /**
   * The rollout stops where it stands (no admission, phase and counts kept) until the spec is
   * fixed; that edit is a watch event, so nothing is retried meanwhile.
   */
  private async invalid(key: string, cpv: PackageVersionObject, message: string): Promise<never> {
    const previous = cpv.status?.conditions?.find((c) => c.type === "Ready");
    const generation = cpv.metadata.generation;
    const now = this.now().getTime();
    const withInvalid = (status: ClusterPackageVersionStatus | undefined): ClusterPackageVersionStatus => {
      let conditions = status?.conditions ?? [];
      for (const c of [
        { type: "Ready", status: "False", reason: "InvalidSpec", message },
        { type: "Progressing", status: "False", reason: "InvalidSpec", message: "fix the spec; no machine is admitted meanwhile" },
      ] as const) {
        conditions = setCondition(conditions, { ...c, observedGeneration: generation }, now);
      }
      return { ...status, conditions };
    };
    // Machine status changes enqueue this key again; one Event per spec generation is enough.
    const told = previous?.reason === "InvalidSpec" && previous.message === message && previous.observedGeneration === generation;
    if (!told) await this.o.events.record(cpv, "Warning", "InvalidSpec", message);
    await this.o.store.writeStatus(cpv, withInvalid);
    throw new TerminalError(`ClusterPackageVersion ${key}: ${message}`);
  }
}
