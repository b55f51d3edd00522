/**
 * The drift check of a reconciled Cluster, every `resyncMs`: a fingerprint of the live objects
 * first (live-fingerprint.ts), the full preview with refresh only when the fingerprint changed,
 * on the first check after a start or an update, inside the certificate renewal window, and at
 * least every `fullDriftCheckMs`. Drift is told as an Event naming what differs, then corrected
 * by an `up` (the reconciler's `apply`). Each check also refreshes the AddonsReady condition
 * (addons-readiness.ts): the add-ons become ready when Machines join, with no change to the Cluster.
 */
import type { PulumiFn } from "@pulumi/pulumi/automation";
import type { ClusterStatus, Condition } from "../../api/v1alpha1";
import type { PlannedChange } from "../../runtime/stack-runner";
import type { Placement } from "./masters-namespace";
import type { ClusterObjectsLocation } from "./live-fingerprint";
import type { ClusterReconcilerHooks, ClusterReconcilerOptions } from "./reconciler";
import type { ClusterObject } from "../../api/v1alpha1";
import { unreadableStateConditions } from "../stack-state";

export const DEFAULT_FULL_DRIFT_CHECK_MS = 24 * 3_600_000;

export const IN_SYNC = { type: "Drifted", status: "False", reason: "InSync", message: "the live objects match the stack" } as const;

/** The fingerprint taken just before a full check proved a Cluster's stack in sync. */
interface VerifiedState {
  readonly fingerprint: string;
  readonly generation: number;
  readonly at: number;
}

/** What the drift check uses of the reconciler. */
export interface DriftCheckSteps {
  readonly o: ClusterReconcilerOptions;
  readonly hooks: ClusterReconcilerHooks;
  readonly now: () => Date;
  program(cluster: ClusterObject, mastersNamespace: string): PulumiFn;
  /** Where the objects of the Cluster's stack live (objectsLocationOf). */
  objectsLocation(cluster: ClusterObject, mastersNamespace: string): ClusterObjectsLocation;
  status(cluster: ClusterObject, fields: Partial<ClusterStatus>, conditions: Omit<Condition, "lastTransitionTime" | "observedGeneration">[]): Promise<void>;
  /** The `up` that puts the live objects back. */
  correct(key: string, cluster: ClusterObject, placement: Placement): Promise<{ requeueAfter: number }>;
  /** Reads the add-ons' readiness in the business cluster again (AddonsReady), on this cadence. */
  refreshAddons(cluster: ClusterObject, placement: Placement): Promise<void>;
}

export class ClusterDriftCheck {
  private readonly lastDriftCheck = new Map<string, number>();
  private readonly verified = new Map<string, VerifiedState>();

  constructor(private readonly s: DriftCheckSteps) {}

  /** The Cluster is gone: nothing is remembered about it. */
  forget(key: string): void {
    this.lastDriftCheck.delete(key);
    this.verified.delete(key);
  }

  /** An update starts: it moves every resourceVersion it touches, so the next check is a full one again. */
  updating(key: string): void {
    this.verified.delete(key);
  }

  /** An update succeeded: it counts as a check, the next one is due a period later. */
  updated(key: string): void {
    this.lastDriftCheck.set(key, this.s.now().getTime());
  }

  async check(key: string, cluster: ClusterObject, placement: Placement): Promise<{ requeueAfter: number }> {
    const { o, hooks } = this.s;
    const since = this.s.now().getTime() - (this.lastDriftCheck.get(key) ?? 0);
    if (since < o.resyncMs) return { requeueAfter: o.resyncMs - since };
    // Workloads become ready without any change to the Cluster (Machines join): looked at every period.
    await this.s.refreshAddons(cluster, placement);
    // Taken before the preview: a change after this read moves it, so the next check sees it.
    const fingerprint = await this.readFingerprint(cluster, placement);
    if (fingerprint !== undefined && !this.needsFullCheck(key, cluster, fingerprint)) {
      this.lastDriftCheck.set(key, this.s.now().getTime());
      hooks.driftChecked?.("in-sync", "fingerprint");
      const drifted = cluster.status?.conditions?.find((c) => c.type === "Drifted");
      if (drifted?.status !== "False") await this.s.status(cluster, {}, [IN_SYNC]);
      return { requeueAfter: o.resyncMs };
    }
    let changes: Record<string, number>;
    const planned: PlannedChange[] = [];
    try {
      changes = await o.stacks.preview(placement.stack, this.s.program(cluster, placement.mastersNamespace), { refresh: true, onChange: (c) => planned.push(c) });
    } catch (error) {
      hooks.driftChecked?.("error", "preview");
      // Said where users look: a drift check that cannot run means drift goes uncorrected.
      const message = `the drift check failed: ${error instanceof Error ? error.message : String(error)}`;
      // A state that cannot be read stops every update too: Ready says so (controllers/stack-state.ts).
      const unreadable = unreadableStateConditions(error, { degraded: true });
      await this.s.status(cluster, unreadable ? { phase: "Degraded" } : {}, [{ type: "Drifted", status: "Unknown", reason: "DriftCheckFailed", message }, ...(unreadable ?? [])]);
      await o.events.record(cluster, "Warning", "DriftCheckFailed", message);
      throw error;
    }
    this.lastDriftCheck.set(key, this.s.now().getTime());
    const drift = Object.entries(changes).filter(([op, n]) => op !== "same" && n > 0);
    hooks.driftChecked?.(drift.length === 0 ? "in-sync" : "drifted", "preview");
    if (drift.length === 0) {
      if (fingerprint !== undefined) this.verified.set(key, { fingerprint, generation: cluster.metadata.generation ?? 0, at: this.s.now().getTime() });
      await this.s.status(cluster, {}, [IN_SYNC]);
      return { requeueAfter: o.resyncMs };
    }
    this.verified.delete(key);
    const summary = drift.map(([op, n]) => `${n} to ${op}`).join(", ");
    const which = describeChanges(planned);
    await o.events.record(cluster, "Warning", "Drifted", `live objects differ from the stack (${summary}${which ? `: ${which}` : ""}); correcting`);
    await this.s.status(cluster, { phase: "Degraded" }, [{ type: "Drifted", status: "True", reason: "LiveObjectsChanged", message: summary }]);
    return this.s.correct(key, cluster, placement);
  }

  /** The live objects' fingerprint, or undefined (no reader, or it failed: the preview decides and reports). */
  private async readFingerprint(cluster: ClusterObject, placement: Placement): Promise<string | undefined> {
    if (!this.s.o.liveFingerprint) return undefined;
    try {
      return await this.s.o.liveFingerprint(this.s.objectsLocation(cluster, placement.mastersNamespace));
    } catch {
      return undefined;
    }
  }

  /** Whether an unchanged-looking Cluster still needs the full preview. */
  private needsFullCheck(key: string, cluster: ClusterObject, fingerprint: string): boolean {
    const known = this.verified.get(key);
    // Never verified by this process (start, leader change, after an update): nothing to compare with.
    if (!known || known.fingerprint !== fingerprint || known.generation !== (cluster.metadata.generation ?? 0)) return true;
    const now = this.s.now().getTime();
    if (now - known.at >= (this.s.o.fullDriftCheckMs ?? DEFAULT_FULL_DRIFT_CHECK_MS)) return true;
    // Inside the renewal window the preview is what re-issues certificates: no object changes for that.
    const expiresAt = cluster.status?.certificatesExpireAt;
    const renewBeforeMs = (cluster.spec.certificates?.renewBeforeDays ?? 30) * 86_400_000;
    return expiresAt !== undefined && new Date(expiresAt).getTime() - now < renewBeforeMs;
  }
}

/** "create Deployment ops-scheduler; update Secret ops-etcd-certs (data)": at most five, names only. */
export function describeChanges(changes: readonly PlannedChange[], limit = 5): string {
  const shown = changes.slice(0, limit).map((c) => {
    const kind = c.type.slice(c.type.lastIndexOf(":") + 1);
    return `${c.op} ${kind} ${c.name}${c.properties.length ? ` (${c.properties.join(", ")})` : ""}`;
  });
  if (changes.length > limit) shown.push(`and ${changes.length - limit} more`);
  return shown.join("; ");
}
