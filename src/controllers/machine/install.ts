/**
 * The install path of a Machine: one `pulumi up` of its stack (install, upgrade, reinstall or a
 * drift correction are the same program with other inputs), the observed versions read back
 * from the outputs, and the status and Events that tell how it went.
 */
import type { PulumiFn } from "@pulumi/pulumi/automation";
import type { ObservedVersions } from "../../api/v1alpha1";
import { machineProgram } from "../../program/machine-program";
import type { OperationResult } from "../../runtime/stack-runner";
import { StackOperationError } from "../../runtime/stack-runner";
import { observedCertificates, renewAfter, type RenewalPolicy, type ReportedCertificates } from "./certificate-renewal";
import { INSTALL_ROOT_ANNOTATION, type MachineContext } from "./context";
import type { MachineCertificates, MachineObject, MachineStatus } from "../../api/v1alpha1";
import { DEFAULT_HEALTH_CHECK_MS, machineKey, type ConditionInput, type InstallAction, type MachineSteps } from "./options";
import { STACK_STATE_UNREADABLE } from "../stack-state";
import { reportUnreadableState } from "./stack-state";

export interface MachineInstallOptions extends MachineSteps {
  /** The machine's stack name (a legacy stack renamed first). */
  stackOf(machine: MachineObject): Promise<string>;
  /** Told when an install succeeded: the machine's health is judged afresh from here. */
  installed(key: string): void;
  /** When the certificates an `up` reported are renewed (status.certificates.renewAfter). */
  readonly renewal: RenewalPolicy;
}

export class MachineInstall {
  constructor(private readonly s: MachineInstallOptions) {}

  /** The inline program of a Machine with these inputs. */
  program(machine: MachineObject, ctx: MachineContext, reinstall: number, renewal = machine.status?.certificates?.renewals ?? 0): PulumiFn {
    return async () =>
      machineProgram({
        name: machine.metadata.name,
        spec: machine.spec,
        packages: ctx.packages,
        runtime: ctx.runtime,
        credentials: ctx.credentials,
        cluster: { ...ctx.cluster, ...ctx.network },
        renewal,
        defaults: this.s.o.defaults,
        installRoot: machine.metadata.annotations?.[INSTALL_ROOT_ANNOTATION],
        reinstall,
      }) as unknown as Record<string, unknown>;
  }

  /** One `up`; `renew` (a certificates action) bumps the renewal token, so both kubelet keys and certificates are new. */
  async install(machine: MachineObject, ctx: MachineContext, action: InstallAction, why?: string, renew = false): Promise<{ requeueAfter: number }> {
    const { o } = this.s;
    const startedAt = this.s.now().toISOString();
    // Finding the stack may read its state (a legacy stack's migration): a state that cannot be
    // read is told as the `up`'s failure would be; any other error passes on untold, as before.
    const stack = await this.s.stackOf(machine).catch(async (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      if (action === "certificates") await reportUnreadableState(this.s, machine, error, this.renewalFailure(startedAt, message), renewalConditions);
      else await reportUnreadableState(this.s, machine, error, this.installFailure(machine, ctx, startedAt, message));
      throw error;
    });
    const reinstalls = (machine.status?.reinstalls ?? 0) + (action === "reinstall" || action === "drift" ? 1 : 0);
    const renewals = (machine.status?.certificates?.renewals ?? 0) + (renew ? 1 : 0);
    if (action === "certificates") return this.certificates(machine, ctx, stack, why ?? "", renewals, startedAt);
    const phase = action === "install" ? "Installing" : action === "upgrade" ? "Upgrading" : "Remediating";
    const versions = `containerd ${ctx.packages.containerd.version}, kubelet ${ctx.packages.kubelet.version}, cni ${ctx.packages.cni.version}`;
    await o.events.record(machine, "Normal", phase, `${why ? `${why}; ` : ""}${versions} on ${machine.spec.ip} (${ctx.packagesReason})`);
    await this.s.status(machine, { phase, targetRevision: ctx.revision, reinstalls, lastOperation: { kind: "up", result: "running", startedAt } }, [
      { type: "Progressing", status: "True", reason: phase, message: `pulumi up of stack ${stack}: ${versions}` },
    ]);
    let result: OperationResult;
    try {
      result = await o.stacks.up(stack, this.program(machine, ctx, reinstalls, renewals));
    } catch (error) {
      o.onAction?.(action, "error");
      return this.failed(machine, ctx, startedAt, error);
    }
    o.onAction?.(action, "success");
    return this.succeeded(machine, ctx, action, startedAt, result, renewals);
  }

  /**
   * The `up` of a certificates action: the host keeps its phase (it stays Ready; the kubelet only
   * restarts on its new files) and the outcome is told by the condition CertificatesCurrent.
   */
  private async certificates(machine: MachineObject, ctx: MachineContext, stack: string, why: string, renewals: number, startedAt: string): Promise<{ requeueAfter: number }> {
    const { o } = this.s;
    await o.events.record(machine, "Normal", "RenewingCertificates", `${why}; pulumi up of stack ${stack}`);
    await this.s.status(machine, { lastOperation: { kind: "up", result: "running", startedAt } }, [
      { type: "CertificatesCurrent", status: "False", reason: "Renewing", message: why },
      { type: "Progressing", status: "True", reason: "RenewingCertificates", message: `pulumi up of stack ${stack}: ${why}` },
    ]);
    let result: OperationResult;
    try {
      result = await o.stacks.up(stack, this.program(machine, ctx, machine.status?.reinstalls ?? 0, renewals));
    } catch (error) {
      o.onAction?.("certificates", "error");
      const message = error instanceof Error ? error.message : String(error);
      const fields = this.renewalFailure(startedAt, message);
      if (!(await reportUnreadableState(this.s, machine, error, fields, renewalConditions))) {
        await this.s.status(machine, fields, [
          { type: "CertificatesCurrent", status: "False", reason: "RenewalFailed", message },
          { type: "Progressing", status: "False", reason: "RenewalFailed", message: "retrying with backoff" },
        ]);
        await o.events.record(machine, "Warning", "RenewalFailed", message);
      }
      if (error instanceof StackOperationError && error.kind === "concurrent-update") return { requeueAfter: 30_000 };
      throw error;
    }
    o.onAction?.("certificates", "success");
    const certificates = (await this.reported(machine, result, renewals)) ?? {};
    const client = certificates.kubeletClient ? `client until ${certificates.kubeletClient.notAfter}` : "no client certificate";
    const serving = certificates.kubeletServing ? `serving until ${certificates.kubeletServing.notAfter}` : "no serving certificate";
    await o.events.record(machine, "Normal", "CertificatesRenewed", `${client}, ${serving}; next renewal ${certificates.renewAfter ?? "not planned"}`);
    await this.s.status(machine, { certificates, lastOperation: { kind: "up", result: "succeeded", startedAt, finishedAt: this.s.now().toISOString(), changes: result.changes } }, [
      { type: "CertificatesCurrent", status: "True", reason: "Issued", message: `${client}, ${serving}` },
      { type: "Progressing", status: "False", reason: "CertificatesRenewed", message: formatCounts(result.changes) },
    ]);
    // Looked at again by the next renewal at the latest (a short validity renews before the next health check).
    const next = certificates.renewAfter ? Math.max(1_000, Date.parse(certificates.renewAfter) - this.s.now().getTime()) : Infinity;
    return { requeueAfter: Math.min(o.healthCheckMs ?? DEFAULT_HEALTH_CHECK_MS, next) };
  }

  /**
   * status.certificates from the stack's outputs; the previous ones when the stack reports none
   * (a program before them) or they cannot be read (said in an Event).
   */
  private async reported(machine: MachineObject, result: OperationResult, renewals: number): Promise<MachineCertificates | undefined> {
    const reported = result.outputs.certificates?.value as ReportedCertificates | undefined;
    if (!reported) return machine.status?.certificates;
    try {
      const observed = observedCertificates(reported, `Machine ${machineKey(machine)}: stack outputs`);
      const certificates = { ...observed, ...(renewals ? { renewals } : {}) };
      const at = renewAfter(certificates, this.s.renewal, machine.metadata.uid ?? machineKey(machine));
      return { ...certificates, ...(at ? { renewAfter: at } : {}) };
    } catch (error) {
      await this.s.o.events.record(machine, "Warning", "CertificatesUnreadable", (error as Error).message);
      return { ...machine.status?.certificates, ...(renewals ? { renewals } : {}) };
    }
  }

  private async succeeded(machine: MachineObject, ctx: MachineContext, action: InstallAction, startedAt: string, result: OperationResult, renewals: number): Promise<{ requeueAfter: number }> {
    const observed = (result.outputs.observedVersions?.value ?? {}) as ObservedVersions;
    const nodeName = (result.outputs.nodeName?.value as string | undefined) ?? machine.spec.hostname;
    this.s.installed(machineKey(machine));
    await this.s.o.events.record(machine, "Normal", action === "install" ? "Installed" : action === "upgrade" ? "Upgraded" : "Reinstalled", `Node ${nodeName} runs ${formatVersions(observed)}`);
    const lastRemediation = machine.status?.lastRemediation?.result === "running" ? { ...machine.status.lastRemediation, result: "succeeded" as const } : machine.status?.lastRemediation;
    await this.s.status(
      machine,
      {
        phase: "Ready",
        observedGeneration: machine.metadata.generation,
        observedVersions: observed,
        nodeName,
        packagesRevision: ctx.revision,
        lastRemediation,
        lastOperation: { kind: "up", result: "succeeded", startedAt, finishedAt: this.s.now().toISOString(), changes: result.changes },
        certificates: await this.reported(machine, result, renewals),
      },
      [
        { type: "Ready", status: "True", reason: "Installed", message: `Node ${nodeName} is Ready on ${formatVersions(observed)}` },
        { type: "Progressing", status: "False", reason: "Installed", message: formatCounts(result.changes) },
        { type: "Drifted", status: "False", reason: "InSync", message: "the host runs the catalog's versions" },
      ],
    );
    return { requeueAfter: this.s.o.healthCheckMs ?? DEFAULT_HEALTH_CHECK_MS };
  }

  /** The status fields of a failed install: rollouts read its phase, target revision and message (rollout-step.ts). */
  private installFailure(machine: MachineObject, ctx: MachineContext, startedAt: string, message: string): Partial<MachineStatus> {
    const lastRemediation = machine.status?.lastRemediation?.result === "running" ? { ...machine.status.lastRemediation, result: "failed" as const } : machine.status?.lastRemediation;
    return { phase: "Failed", targetRevision: ctx.revision, lastRemediation, lastOperation: { kind: "up", result: "failed", startedAt, finishedAt: this.s.now().toISOString(), message } };
  }

  /** The status fields of a failed renewal: the host keeps its phase (it still runs). */
  private renewalFailure(startedAt: string, message: string): Partial<MachineStatus> {
    return { lastOperation: { kind: "up", result: "failed", startedAt, finishedAt: this.s.now().toISOString(), message } };
  }

  private async failed(machine: MachineObject, ctx: MachineContext, startedAt: string, error: unknown): Promise<{ requeueAfter: number }> {
    const message = error instanceof Error ? error.message : String(error);
    const fields = this.installFailure(machine, ctx, startedAt, message);
    if (!(await reportUnreadableState(this.s, machine, error, fields))) {
      await this.s.status(machine, fields, [
        { type: "Ready", status: "False", reason: "InstallFailed", message },
        { type: "Progressing", status: "False", reason: "InstallFailed", message: "retrying with backoff" },
      ]);
      await this.s.o.events.record(machine, "Warning", "InstallFailed", message);
    }
    // Another update holds the stack (e.g. a previous leader's): look again later, no backoff growth.
    if (error instanceof StackOperationError && error.kind === "concurrent-update") return { requeueAfter: 30_000 };
    throw error;
  }
}

/** A renewal stopped by its stack's state: the certificates are not current, and say why. */
const renewalConditions = (message: string): ConditionInput[] => [{ type: "CertificatesCurrent", status: "False", reason: STACK_STATE_UNREADABLE, message }];

function formatVersions(v: ObservedVersions): string {
  return Object.entries(v).map(([k, ver]) => `${k} ${ver}`).join(", ") || "no versions reported";
}

/** "2 create, 1 update", or "no changes". */
function formatCounts(counts: Record<string, number>): string {
  const parts = Object.entries(counts).filter(([, n]) => n > 0).map(([op, n]) => `${n} ${op}`);
  return parts.length ? parts.join(", ") : "no changes";
}
