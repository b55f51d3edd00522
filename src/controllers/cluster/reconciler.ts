/**
 * Reconciles one `Cluster` into its Pulumi stack (`<namespace>.<name>`, src/api/v1alpha1/names.ts),
 * level-based: every call re-reads the object and decides from what it finds, never from the event
 * that woke it.
 *
 *   deleted?           → finalizer: destroy the stack, remove it, release the finalizer (deletion.ts)
 *   paused?            → no change at all; say so in a condition
 *   invalid spec?      → Failed, an Event listing every problem, a TerminalError (no retry)
 *   legacy stack?      → renamed to the new name once, masters left where they are (masters-namespace.ts)
 *   masters lost?      → the namespace its stack created is gone: MastersLost, nothing applied until
 *                        a human chooses (masters-lost.ts)
 *   foreign namespace? → before any `up`: Failed, NamespaceConflict, a TerminalError, nothing applied
 *   new generation?    → preview as an Event (upgrades), `up`, status from the outputs
 *   same generation?   → every resync: drift check (drift-check.ts); drift → Event + `up`. It compares a
 *                        fingerprint of the live objects first (live-fingerprint.ts) and runs the
 *                        full preview with refresh only when it changed, on the first check after
 *                        a start or an update, inside the certificate renewal window, and at
 *                        least every `fullDriftCheckMs`; and the add-ons' readiness in the business
 *                        cluster is read again (AddonsReady, addons-readiness.ts), also after each `up`;
 *                        and first, on every such reconcile and after each `up`, the etcd backups:
 *                        the backup-now annotation, lastBackup, EtcdBackupHealthy (etcd-backup-check.ts)
 *   CA rotation?       → before both: the rotate-ca annotation or a pending phase runs an `up` of the
 *                        rotation's step; Machines and the old key's retention are waited for
 *                        (ca-rotation.ts, ca-rotation-machine.ts)
 *
 * What it finds is also told to `hooks` (metrics), so the reconciler itself stays free of them.
 */
import type { PulumiFn } from "@pulumi/pulumi/automation";
import {
  adminKubeconfigCopyOf,
  clusterNameProblems,
  clusterPolicyProblems,
  formatPolicyProblem,
  resolveAdminPolicy,
  formatProblem,
  kubernetesUpgradeProblems,
  mastersNamespaceLabels,
  mastersNamespaceOf,
  RECREATE_MASTERS_ANNOTATION,
  validateClusterSpec,
  type ClusterObject,
  type ClusterStatus,
  type EtcdStatus,
  type LastOperation,
} from "../../api/v1alpha1";
import { checkRotation, certificatesAfterUpdate, type CaRotationDeps } from "./ca-rotation";
import { stackInputOf } from "./ca-rotation-machine";
import { KUBELET_SKEW_RECHECK_MS, upgradeHeldByKubelets } from "./kubelet-skew";
import { etcdVersionChangeProblems } from "../../components/control-plane";
import { clusterProgram, type ClusterProgramValues } from "../../program/cluster-program";
import { statusPatch, type ConditionInput } from "../../runtime/conditions";
import { trackOperation, type OperationTracker } from "../../runtime/operation-progress";
import { ADDONS_READY, evaluateAddons, expectedAddons, isTransition, notDeployedCondition, transitionEvent, unreachableCondition } from "./addons-readiness";
import { namespaceConflict, placeMasters, type Placement } from "./masters-namespace";
import { mastersVerdict } from "./masters-lost";
import { TerminalError } from "../../runtime/controller";
import type { OperationResult } from "../../runtime/stack-runner";
import { StackOperationError } from "../../runtime/stack-runner";
import { STACK_STATE_UNREADABLE, unreadableStateConditions } from "../stack-state";
import { CLUSTER_FINALIZER, finalizeCluster, type DeletionSteps } from "./deletion";
import { ClusterDriftCheck, DEFAULT_FULL_DRIFT_CHECK_MS, describeChanges, IN_SYNC } from "./drift-check";
import { etcdBackupProgramArgs } from "./backup-credentials";
import { objectsLocationOf, type ClusterReconcilerHooks, type ClusterReconcilerOptions } from "./reconciler-options";

export { CLUSTER_FINALIZER, DEFAULT_FULL_DRIFT_CHECK_MS, describeChanges };

export * from "./reconciler-options";

export class ClusterReconciler {
  private readonly drift: ClusterDriftCheck;
  private readonly deletion: DeletionSteps;
  /** Each Cluster's stack and masters' namespace, read once per process from the stack's state. */
  private readonly placements = new Map<string, { readonly uid?: string; readonly placement: Placement }>();
  private readonly now: () => Date;
  private readonly hooks: ClusterReconcilerHooks;
  private readonly rotation: CaRotationDeps;

  constructor(private readonly o: ClusterReconcilerOptions) {
    this.now = o.now ?? (() => new Date());
    this.hooks = o.hooks ?? {};
    const program = (cluster: ClusterObject, mastersNamespace: string) => this.program(cluster, mastersNamespace);
    const status: DeletionSteps["status"] = (cluster, fields, conditions) => this.status(cluster, fields, conditions);
    this.drift = new ClusterDriftCheck({
      o,
      hooks: this.hooks,
      now: this.now,
      program,
      objectsLocation: objectsLocationOf,
      status,
      correct: (key, cluster, placement) => this.apply(key, cluster, placement, "CorrectingDrift", { correctingDrift: true }),
      refreshAddons: (cluster, placement) => this.refreshAddons(cluster, placement.mastersNamespace),
    });
    this.rotation = { now: this.now, status, event: (cluster, type, reason, message) => o.events.record(cluster, type, reason, message), machines: o.machineCertificates };
    this.deletion = {
      o,
      program,
      status,
      placement: (key, cluster) => this.placement(key, cluster),
      trackProgress: (cluster, reason, namespace) => this.trackProgress(cluster, reason, namespace),
      forgetPlacement: (key) => this.placements.delete(key),
    };
  }

  /** The inline program of a Cluster: the same program as the root Pulumi.yaml. */
  program(cluster: ClusterObject, mastersNamespace = mastersNamespaceOf(cluster)): PulumiFn {
    const running = cluster.status?.version;
    // The rotation step as status says now (ca-rotation-machine.ts); apply() completes that step.
    const caRotation = stackInputOf(cluster.status?.certificates?.rotation);
    return async () =>
      clusterProgram({
        caRotation,
        // Read at each run, so new credentials in the tenant's Secret reach the next update.
        etcdBackup: await etcdBackupProgramArgs(cluster, this.o.readSecret, this.o.backupImage),
        // The members etcd has, not the spec's count: the membership check moves one at a time.
        etcdMembership: await this.o.etcdMembership?.renderFor(cluster, mastersNamespace),
        name: cluster.metadata.name,
        spec: cluster.spec,
        namespace: mastersNamespace,
        namespaceLabels: mastersNamespaceLabels(cluster),
        metaKubeconfig: this.o.metaKubeconfig,
        operatorNamespace: this.o.operatorNamespace,
        running: { kubernetesVersion: running, etcdVersion: cluster.status?.etcd?.version },
        adminKubeconfigCopy: adminKubeconfigCopyOf(cluster),
      }) as unknown as Record<string, unknown>;
  }

  async reconcile(key: string): Promise<{ requeueAfter?: number } | void> {
    const [namespace, name] = key.split("/");
    let cluster = await this.o.store.getLive(namespace, name);
    if (!cluster) {
      this.drift.forget(key);
      this.placements.delete(key);
      this.hooks.certificatesExpireAt?.(namespace, name, undefined);
      this.o.etcdBackups?.forget(namespace, name);
      return;
    }
    // A new leader learns the expiry of Clusters it will not update for a while from their status.
    this.reportCertificates(cluster);
    if (cluster.metadata.deletionTimestamp) {
      this.o.etcdBackups?.forget(namespace, name);
      return finalizeCluster(this.deletion, key, cluster);
    }
    if (!cluster.metadata.finalizers?.includes(CLUSTER_FINALIZER)) {
      cluster = await this.o.store.setFinalizers(cluster, [...(cluster.metadata.finalizers ?? []), CLUSTER_FINALIZER]);
    }
    if (cluster.spec.paused) {
      await this.status(cluster, {}, [{ type: "Progressing", status: "False", reason: "Paused", message: "spec.paused is true: no change is made" }]);
      return;
    }
    const problems = this.problems(cluster);
    if (problems.length) {
      const message = problems.join("; ");
      await this.status(cluster, { phase: "Failed" }, [
        { type: "Ready", status: "False", reason: "InvalidSpec", message },
        { type: "Progressing", status: "False", reason: "InvalidSpec", message: "fix the spec; nothing was changed" },
      ]);
      await this.o.events.record(cluster, "Warning", "InvalidSpec", message);
      throw new TerminalError(`Cluster ${key}: ${message}`);
    }
    const held = upgradeHeldByKubelets(cluster, this.o.machineKubelets?.(namespace, name) ?? []);
    if (held) {
      const told = cluster.status?.conditions?.some((c) => c.type === "Progressing" && c.reason === "VersionSkew" && c.message === held);
      await this.status(cluster, {}, [{ type: "Progressing", status: "False", reason: "VersionSkew", message: held }]);
      if (!told) await this.o.events.record(cluster, "Warning", "VersionSkew", held);
      return { requeueAfter: KUBELET_SKEW_RECHECK_MS };
    }
    const placement = await this.placement(key, cluster).catch((error: unknown) => this.unreadableState(cluster, error));
    const lost = mastersVerdict(cluster, placement, await this.presence(placement.mastersNamespace));
    if (lost.lost && !lost.recreate) return this.mastersLost(cluster, lost.message);
    if (lost.lost) {
      await this.o.events.record(cluster, "Warning", "RecreatingMasters", lost.message);
      // With a refresh: the state still lists every object the namespace took with it.
      const applied = await this.apply(key, cluster, placement, "RecreatingMasters", { refresh: true });
      await this.o.store.annotate?.(cluster, { [RECREATE_MASTERS_ANNOTATION]: null });
      return applied;
    }
    // The masters are there: an annotation left by a re-creation cut off before it was removed (or
    // written while nothing was lost) must not carry over to a later loss of the same namespace.
    if (placement.namespaceInStack && cluster.metadata.annotations?.[RECREATE_MASTERS_ANNOTATION] !== undefined) {
      await this.o.store.annotate?.(cluster, { [RECREATE_MASTERS_ANNOTATION]: null });
    }
    // A cluster that exists: its etcd membership first, before any other update (etcd-membership-check.ts).
    let membership: { requeueAfter?: number } = {};
    if (cluster.status?.version && this.o.etcdMembership) {
      const applied = cluster;
      const m = await this.o.etcdMembership.check(applied, placement.mastersNamespace, () => this.apply(key, applied, placement, "EtcdMembership"));
      if (m.busy) return { requeueAfter: m.requeueAfter ?? 3000 };
      membership = m;
    }
    const rotation = await checkRotation(this.rotation, cluster);
    if (rotation.update) return this.apply(key, cluster, placement, "RotatingCertificates");
    const generation = cluster.metadata.generation ?? 0;
    const reconciled = cluster.status?.observedGeneration === generation && cluster.status?.lastOperation?.result === "succeeded";
    if (reconciled) {
      // First: quick, and the drift check may go on to a long `up`.
      const backups = await this.checkBackups(cluster, placement.mastersNamespace);
      return soonest(soonest(soonest(await this.drift.check(key, cluster, placement), backups), rotation), membership);
    }
    return soonest(await this.apply(key, cluster, placement, "Reconciling"), membership);
  }

  /** The Cluster's stack and masters' namespace; a legacy stack is renamed on the first call. */
  private async placement(key: string, cluster: ClusterObject): Promise<Placement> {
    const known = this.placements.get(key);
    if (known && known.uid === cluster.metadata.uid) return known.placement;
    const placement = await placeMasters(this.o.stacks, cluster);
    if (placement.migratedFrom) {
      const message = `stack ${placement.migratedFrom} renamed to ${placement.stack}; the masters stay in namespace ${placement.mastersNamespace}`;
      await this.o.events.record(cluster, "Normal", "StackMigrated", message);
    }
    // Kept once the stack exists: what its state records does not change behind the operator's back.
    if (placement.resources !== undefined) this.placements.set(key, { uid: cluster.metadata.uid, placement });
    return placement;
  }

  private async presence(namespace: string): Promise<"active" | "terminating" | "absent"> {
    if (this.o.namespacePresence) return this.o.namespacePresence(namespace);
    return (await this.o.namespaceLabels(namespace)) === undefined ? "absent" : "active";
  }

  /** Stops a Cluster whose masters were lost: condition and Event (once), no stack operation. */
  private async mastersLost(cluster: ClusterObject, message: string): Promise<{ requeueAfter: number }> {
    const told = cluster.status?.conditions?.some((c) => c.type === "Ready" && c.reason === "MastersLost" && c.message === message);
    await this.status(cluster, { phase: "Failed" }, [
      { type: "Ready", status: "False", reason: "MastersLost", message },
      { type: "Degraded", status: "True", reason: "MastersLost", message: "the business cluster's etcd data is gone with its masters' namespace" },
      { type: "Progressing", status: "False", reason: "MastersLost", message: "nothing is applied until a human chooses: restore into a new Cluster, or re-create this one empty" },
    ]);
    if (!told) await this.o.events.record(cluster, "Warning", "MastersLost", message);
    return { requeueAfter: this.o.resyncMs };
  }

  /** Refuses, before the engine runs, a masters' namespace the operator did not create for this Cluster. */
  private async refuseForeignNamespace(cluster: ClusterObject, placement: Placement): Promise<void> {
    const conflict = namespaceConflict(cluster, placement, await this.o.namespaceLabels(placement.mastersNamespace));
    if (!conflict) return;
    await this.status(cluster, { phase: "Failed" }, [
      { type: "Ready", status: "False", reason: "NamespaceConflict", message: conflict },
      { type: "Progressing", status: "False", reason: "NamespaceConflict", message: "nothing was applied" },
    ]);
    await this.o.events.record(cluster, "Warning", "NamespaceConflict", conflict);
    throw new TerminalError(`Cluster ${cluster.metadata.namespace}/${cluster.metadata.name}: ${conflict}`);
  }

  private problems(cluster: ClusterObject): string[] {
    const invalid = [...clusterNameProblems(cluster.metadata.name, "metadata.name", cluster.metadata.namespace), ...validateClusterSpec(cluster.spec, "spec")];
    // The policy's checks read a well-formed spec; a malformed one is refused by the lines above.
    const policy = invalid.length ? [] : clusterPolicyProblems(cluster.spec, this.o.policy ?? resolveAdminPolicy()).map(formatPolicyProblem);
    const problems = [...invalid.map(formatProblem), ...policy];
    const running = cluster.status?.version;
    if (running) problems.push(...kubernetesUpgradeProblems(running, cluster.spec.kubernetesVersion).map((m) => `spec.kubernetesVersion: ${m}`));
    const etcdRunning = cluster.status?.etcd?.version;
    if (etcdRunning && invalid.length === 0) {
      problems.push(...etcdVersionChangeProblems(cluster.spec, etcdRunning, cluster.status?.etcd?.members).map((m) => `spec.etcd.version: ${m}`));
    }
    return problems;
  }

  private async apply(key: string, cluster: ClusterObject, placement: Placement, reason: string, opts: { correctingDrift?: boolean; refresh?: boolean } = {}): Promise<{ requeueAfter: number }> {
    await this.refuseForeignNamespace(cluster, placement);
    const { stack, mastersNamespace } = placement;
    // The rotation step this update deploys (program() reads the same status).
    const rotationApplied = cluster.status?.certificates?.rotation;
    const program = this.program(cluster, mastersNamespace);
    // The update moves every resourceVersion it touches: the next check is a full one again.
    this.drift.updating(key);
    const running = cluster.status?.version;
    const upgrading = running !== undefined && running !== cluster.spec.kubernetesVersion;
    if (upgrading) {
      const preview = await this.o.stacks.preview(stack, program);
      await this.o.events.record(cluster, "Normal", "UpgradePreview", `${running} → ${cluster.spec.kubernetesVersion}: ${formatCounts(preview)}`);
    }
    const startedAt = this.now().toISOString();
    const phase = upgrading ? "Upgrading" : cluster.status?.version ? cluster.status.phase ?? "Ready" : "Provisioning";
    await this.status(cluster, { phase, lastOperation: { kind: "up", result: "running", startedAt } }, [
      { type: "Progressing", status: "True", reason, message: `pulumi up of stack ${stack}` },
    ]);
    let result: OperationResult;
    const progress = this.trackProgress(cluster, reason, mastersNamespace);
    try {
      // Drift correction must read the live objects first: the state still lists what was deleted.
      result = await this.o.stacks.up(stack, program, progress.onProgress, { refresh: opts.correctingDrift || opts.refresh });
    } catch (error) {
      await progress.stop();
      return this.failed(cluster, startedAt, error);
    }
    await progress.stop();
    this.drift.updated(key);
    if (opts.correctingDrift) this.hooks.driftCorrected?.();
    // The outputs of clusterProgram, this operator's own program.
    const out = <K extends keyof ClusterProgramValues>(k: K) => result.outputs[k]?.value as ClusterProgramValues[K] | undefined;
    const expiresAt = out("certificatesExpireAt");
    const etcdVersion = out("etcdVersion");
    const renewBeforeMs = (cluster.spec.certificates?.renewBeforeDays ?? 30) * 86_400_000;
    const expiring = expiresAt !== undefined && new Date(expiresAt).getTime() - this.now().getTime() < renewBeforeMs;
    const certificates = certificatesAfterUpdate(cluster, rotationApplied, out("certificateAuthorities"), this.now());
    await this.o.events.record(cluster, "Normal", "Applied", `stack ${stack}: ${formatCounts(result.changes)}`);
    await this.status(
      cluster,
      {
        phase: "Ready",
        observedGeneration: cluster.metadata.generation,
        endpoint: out("endpoint"),
        version: out("version"),
        certificatesExpireAt: expiresAt,
        adminKubeconfigSecret: out("adminKubeconfigCopy"),
        // Where Machines read the cluster CA from (machine/context.ts): the stack's word, not a name we derive.
        caSecretRef: out("caSecret"),
        certificates: certificates.certificates,
        lastOperation: { kind: "up", result: "succeeded", startedAt, finishedAt: this.now().toISOString(), changes: result.changes },
      },
      [
        { type: "Ready", status: "True", reason: "Applied", message: `masters of ${cluster.spec.kubernetesVersion} are Ready` },
        { type: "Progressing", status: "False", reason: "Applied", message: formatCounts(result.changes) },
        { type: "Degraded", status: "False", reason: "Applied", message: "the last update succeeded" },
        IN_SYNC,
        expiring
          ? { type: "CertificatesExpiring", status: "True", reason: "InsideRenewalWindow", message: `the earliest certificate expires at ${expiresAt}; the next drift check re-issues it` }
          : { type: "CertificatesExpiring", status: "False", reason: "Valid", message: `the earliest certificate expires at ${expiresAt}` },
        ...(certificates.condition ? [certificates.condition] : []),
      ],
      etcdVersion ? { version: etcdVersion } : undefined,
    );
    if (certificates.event) await this.o.events.record(cluster, "Normal", certificates.event.reason, certificates.event.message);
    await this.refreshAddons(cluster, mastersNamespace);
    // A rotation that moved on looks at its next step soon, not at the next resync.
    const rotationNext = certificates.event ? { requeueAfter: 1_000 } : {};
    return soonest(soonest({ requeueAfter: this.o.resyncMs }, await this.checkBackups(cluster, mastersNamespace)), rotationNext);
  }

  /** The etcd backup check; its failure is the condition's to tell, never the reconcile's. */
  private async checkBackups(cluster: ClusterObject, mastersNamespace: string): Promise<{ requeueAfter?: number }> {
    return (await this.o.etcdBackups?.check(cluster, mastersNamespace)) ?? {};
  }

  /**
   * Writes AddonsReady from what the business cluster reports now (addons-readiness.ts), only when
   * it changed, with an Event when its status or reason changed. `Ready` stays the masters' word:
   * the add-ons need Nodes, which a Cluster does not own.
   */
  private async refreshAddons(cluster: ClusterObject, mastersNamespace: string): Promise<void> {
    const read = this.o.addonWorkloads;
    if (!read) return;
    const expected = expectedAddons(cluster.spec);
    let condition: ConditionInput;
    if (!expected.deployed) condition = notDeployedCondition(expected);
    else {
      try {
        condition = evaluateAddons(expected, await read(objectsLocationOf(cluster, mastersNamespace)));
      } catch (error) {
        condition = unreachableCondition(error);
      }
    }
    const before = cluster.status?.conditions?.find((c) => c.type === ADDONS_READY);
    if (before && before.status === condition.status && before.reason === condition.reason && before.message === condition.message) return;
    await this.status(cluster, {}, [condition]);
    if (!isTransition(before, condition)) return;
    const event = transitionEvent(condition);
    await this.o.events.record(cluster, event.type, event.reason, condition.message);
  }

  private async failed(cluster: ClusterObject, startedAt: string, error: unknown): Promise<{ requeueAfter: number }> {
    const message = error instanceof Error ? error.message : String(error);
    const lastOperation: LastOperation = { kind: "up", result: "failed", startedAt, finishedAt: this.now().toISOString(), message };
    const conditions = unreadableStateConditions(error, { degraded: true }) ?? [
      { type: "Ready", status: "False", reason: "UpdateFailed", message },
      { type: "Degraded", status: "True", reason: "UpdateFailed", message },
      { type: "Progressing", status: "False", reason: "UpdateFailed", message: "retrying with backoff" },
    ];
    await this.status(cluster, { phase: cluster.status?.version ? "Degraded" : "Failed", lastOperation }, conditions);
    await this.o.events.record(cluster, "Warning", conditions[0]!.reason, message);
    // Another update holds the stack (e.g. a previous leader's): look again later, no backoff growth.
    if (error instanceof StackOperationError && error.kind === "concurrent-update") return { requeueAfter: 30_000 };
    throw error;
  }

  /** A stack whose state cannot be read fails its Cluster only, saying so (controllers/stack-state.ts); any other error passes on. */
  private async unreadableState(cluster: ClusterObject, error: unknown): Promise<never> {
    const conditions = unreadableStateConditions(error, { degraded: true });
    if (conditions) {
      await this.status(cluster, { phase: cluster.status?.version ? "Degraded" : "Failed" }, conditions);
      await this.o.events.record(cluster, "Warning", STACK_STATE_UNREADABLE, conditions[0]!.message);
    }
    throw error;
  }

  /** Keeps `Progressing` telling what the running operation does and what is stuck on the masters' Pods. */
  private trackProgress(cluster: ClusterObject, reason: string, namespace: string): OperationTracker {
    const troublesOf = this.o.masterPodTroubles;
    return trackOperation({
      now: () => this.now().getTime(),
      write: (message) => this.status(cluster, {}, [{ type: "Progressing", status: "True", reason, message }]),
      troubles: troublesOf && (() => troublesOf(namespace)),
      troublesCheckMs: this.o.troublesCheckMs,
    });
  }

  /**
   * `etcd` fields merge into the status's etcd object as it is when written: the membership and
   * backup checks write their own fields of it.
   */
  private async status(cluster: ClusterObject, fields: Partial<ClusterStatus>, conditions: ConditionInput[], etcd?: Partial<EtcdStatus>): Promise<void> {
    const patch = statusPatch<ClusterStatus>(fields, conditions, cluster.metadata.generation, this.now().getTime());
    const apply = (base: ClusterStatus | undefined): ClusterStatus => {
      const next = patch(base);
      return etcd ? { ...next, etcd: { ...(base?.etcd ?? {}), ...etcd } } : next;
    };
    const status = apply(cluster.status);
    await this.o.store.writeStatus(cluster, apply);
    cluster.status = status;
    this.reportCertificates(cluster);
  }

  private reportCertificates(cluster: ClusterObject): void {
    const expiresAt = cluster.status?.certificatesExpireAt;
    const live = expiresAt !== undefined && !cluster.metadata.deletionTimestamp;
    this.hooks.certificatesExpireAt?.(cluster.metadata.namespace, cluster.metadata.name, live ? new Date(expiresAt) : undefined);
  }
}

/** The earlier of two requeues. */
function soonest(a: { requeueAfter: number }, b: { requeueAfter?: number }): { requeueAfter: number } {
  return b.requeueAfter !== undefined && b.requeueAfter < a.requeueAfter ? { requeueAfter: b.requeueAfter } : a;
}

function formatCounts(counts: Record<string, number>): string {
  const parts = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([op, n]) => `${n} ${op}`);
  return parts.length ? parts.join(", ") : "no changes";
}
