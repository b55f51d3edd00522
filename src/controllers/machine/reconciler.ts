/**
 * Reconciles one `Machine` into its own Pulumi stack (`<namespace>.<name>` in project
 * `kube-on-kube-machines`; a stack under the legacy `<namespace>-<name>` is renamed before its
 * first use, legacy-stacks.ts), level-based: every call re-reads the object and decides from what it
 * finds.
 *
 *   deleted?                     → finalizer: destroy the stack (drain, remove the Node, clean the
 *                                  host), remove it, release the finalizer
 *   paused?                      → no change at all; say so
 *   invalid spec?                → Failed, an Event listing every problem, no retry
 *   Cluster/catalog/Secret away? → Pending with a condition naming what it waits for
 *   new spec or catalog?         → `up`: install or upgrade; observed versions read back (install.ts)
 *   else                         → cheap health check (health.ts): the business cluster's Node (from one
 *                                  watch per cluster), a short SSH probe on a slower period;
 *                                  drift → reinstall; NotReady too long → repair, unless too many
 *                                  machines of the cluster are unhealthy (an outage, not a node);
 *                                  Ready → the kubelet's certificates (certificate-care.ts): renewed
 *                                  at their planned point, re-issued / re-trusted on a CA change
 *   stack state unreadable?      → on any of these paths: Ready=False/StackStateUnreadable, one
 *                                  Warning Event, retried with backoff (stack-state.ts)
 *
 * No full `pulumi refresh` of machine stacks ever runs on a timer: a fleet's steady state costs
 * no engine process at all.
 */
import type { PulumiFn } from "@pulumi/pulumi/automation";
import {
  formatPolicyProblem,
  formatProblem,
  machineNameProblems,
  machinePolicyProblems,
  packageVersionPolicyProblems,
  registryMirrorsProblems,
  resolveAdminPolicy,
  stackNameOf,
  validateMachineSpec,
  validatePackages,
  type MachineObject,
  type MachineStatus,
} from "../../api/v1alpha1";
import { statusPatch } from "../../runtime/conditions";
import { TerminalError } from "../../runtime/controller";
import { kubeletSkewWait, machineCatalog, machineSecrets, type MachineCatalog, type MachineContext, type Waiting } from "./context";
import { adoptLegacyStack } from "../legacy-stacks";
import { MachineHealth } from "./health";
import { MachineInstall } from "./install";
import type { ConditionInput, MachineReconcilerOptions, MachineSteps } from "./options";
import { remediationPolicy } from "./remediation";
import { CertificateCare } from "./certificate-care";
import { renewalPolicy } from "./certificate-renewal";
import { reportUnreadableState } from "./stack-state";

export type { HostOperations, MachineEvents, MachineReconcilerOptions, MachineStacks, MachineStore, NodeSource } from "./options";
export { versionDrift } from "./health";

export const MACHINE_FINALIZER = "kubeonkube.io/machine-stack";

const WAIT_MS = 15_000;

export class MachineReconciler {
  private readonly now: () => Date;
  /** Machines whose stack this process has looked for under its legacy name already. */
  private readonly adopted = new Set<string>();
  private readonly installer: MachineInstall;
  private readonly health: MachineHealth;

  constructor(private readonly o: MachineReconcilerOptions) {
    this.now = o.now ?? (() => new Date());
    const steps: MachineSteps = {
      o,
      now: this.now,
      status: (machine, fields, conditions) => this.status(machine, fields, conditions),
      waiting: (machine, w) => this.waiting(machine, w),
    };
    // A bad override fails here, when the operator starts, naming every problem.
    const policy = remediationPolicy(o.remediation);
    const renewal = renewalPolicy(o.defaults?.certificateRenewal);
    this.installer = new MachineInstall({ ...steps, renewal, stackOf: (machine) => this.stackOf(machine), installed: (key) => this.health.installed(key) });
    const certificates = new CertificateCare({ ...steps, policy: renewal, install: (machine, ctx, why, renew) => this.installer.install(machine, ctx, "certificates", why, renew) });
    this.health = new MachineHealth({ ...steps, policy, certificates, install: (machine, ctx, action, why) => this.installer.install(machine, ctx, action, why) });
  }

  async reconcile(key: string): Promise<{ requeueAfter?: number } | void> {
    const [namespace, name] = key.split("/");
    // The steady state (installed, current, nothing to change) is decided from the informer's
    // copy: a fleet's health checks cost no read of the API server. Anything that acts reads live.
    const cached = await this.o.store.get(namespace, name);
    const steady = cached ? this.steadyCatalog(cached) : undefined;
    if (cached && steady === "paused") return this.paused(cached);
    if (cached && steady !== undefined && steady !== "paused") return this.health.check(key, cached, steady);
    let machine = await this.o.store.getLive(namespace, name);
    if (!machine) {
      this.health.forget(key);
      return;
    }
    if (machine.metadata.deletionTimestamp) return this.finalize(machine);
    if (!machine.metadata.finalizers?.includes(MACHINE_FINALIZER)) {
      machine = await this.o.store.setFinalizers(machine, [...(machine.metadata.finalizers ?? []), MACHINE_FINALIZER]);
    }
    if (machine.spec.paused) return this.paused(machine);
    const invalid = [
      ...machineNameProblems(machine.metadata.name, machine.metadata.namespace),
      ...validateMachineSpec(machine.spec, "spec", { credentials: "secretRef", allowUnknownHostKey: false }),
    ];
    const policy = invalid.length ? [] : machinePolicyProblems(machine.spec, this.o.policy ?? resolveAdminPolicy()).map(formatPolicyProblem);
    const problems = [...invalid.map(formatProblem), ...policy];
    if (problems.length) return this.invalid(key, machine, problems);
    const catalog = machineCatalog(machine, this.o.store);
    if ("waiting" in catalog) return this.waiting(machine, catalog);
    // A catalog stored before the CRD carried its patterns is checked again: its versions name
    // directories on the host.
    const catalogAt = `ClusterPackageVersion ${machine.spec.packageVersionRef?.name}: spec`;
    const catalogProblems = catalog.packages && !machine.spec.packages ? validatePackages(catalog.packages, `${catalogAt}.packages`) : [];
    // The runtime settings reach a root shell on the host: checked here again, and against the policy.
    const runtimeProblems = registryMirrorsProblems(catalog.runtime.registryMirrors, `${catalogAt}.registryMirrors`);
    const runtimePolicy = runtimeProblems.length ? [] : packageVersionPolicyProblems(catalog.runtime, this.o.policy ?? resolveAdminPolicy(), catalogAt).map(formatPolicyProblem);
    if (catalogProblems.length || runtimeProblems.length || runtimePolicy.length) {
      return this.invalid(key, machine, [...[...catalogProblems, ...runtimeProblems].map(formatProblem), ...runtimePolicy]);
    }
    const s = machine.status ?? {};
    // A rollout holding this host where it is (packages undefined): no install, only health care.
    const held = catalog.packages === undefined;
    const current = held || (s.packagesRevision === catalog.revision && s.observedGeneration === machine.metadata.generation && s.lastOperation?.result === "succeeded");
    if (!current) {
      const skew = kubeletSkewWait(catalog);
      if (skew) return this.waiting(machine, skew);
      const ctx = await machineSecrets(machine, catalog, this.o.store);
      if ("waiting" in ctx) return this.waiting(machine, ctx);
      return this.installer.install(machine, ctx, s.packagesRevision ? "upgrade" : "install");
    }
    return this.health.check(key, machine, catalog);
  }

  /** The catalog of a machine with nothing to change (so only its health is looked at), else undefined. */
  private steadyCatalog(m: MachineObject): MachineCatalog | "paused" | undefined {
    if (m.metadata.deletionTimestamp || !m.metadata.finalizers?.includes(MACHINE_FINALIZER)) return undefined;
    if (m.spec.paused) return m.status?.conditions?.some((c) => c.reason === "Paused" && c.observedGeneration === m.metadata.generation) ? "paused" : undefined;
    const catalog = machineCatalog(m, this.o.store);
    if ("waiting" in catalog) return undefined;
    const s = m.status ?? {};
    const current = catalog.packages === undefined || (s.packagesRevision === catalog.revision && s.observedGeneration === m.metadata.generation && s.lastOperation?.result === "succeeded");
    return current ? catalog : undefined;
  }

  /** Failed with every problem named in the condition and a Warning Event; no retry until the spec or policy changes. */
  private async invalid(key: string, machine: MachineObject, problems: readonly string[]): Promise<never> {
    const message = problems.join("; ");
    await this.status(machine, { phase: "Failed" }, [{ type: "Ready", status: "False", reason: "InvalidSpec", message }]);
    await this.o.events.record(machine, "Warning", "InvalidSpec", message);
    throw new TerminalError(`Machine ${key}: ${message}`);
  }

  private async paused(machine: MachineObject): Promise<void> {
    await this.status(machine, {}, [{ type: "Progressing", status: "False", reason: "Paused", message: "spec.paused is true: no change is made and no repair" }]);
  }

  private async waiting(machine: MachineObject, w: Waiting): Promise<{ requeueAfter: number }> {
    const phase = machine.status?.packagesRevision ? machine.status.phase : "Pending";
    await this.status(machine, { phase }, [{ type: "Progressing", status: "False", reason: w.reason, message: w.message }]);
    return { requeueAfter: WAIT_MS };
  }

  /** The inline program of a Machine with these inputs. */
  program(machine: MachineObject, ctx: MachineContext, reinstall: number): PulumiFn {
    return this.installer.program(machine, ctx, reinstall);
  }

  private async finalize(machine: MachineObject): Promise<void> {
    if (!machine.metadata.finalizers?.includes(MACHINE_FINALIZER)) return;
    // A state that cannot be read keeps the finalizer (the host is not cleaned), says so, and is
    // retried with backoff: the deletion goes on once a person restored the state.
    const unreadable = async (error: unknown): Promise<never> => {
      await reportUnreadableState({ o: this.o, status: (m, fields, conditions) => this.status(m, fields, conditions) }, machine, error, { phase: "Deleting" });
      throw error;
    };
    const stack = await this.stackOf(machine).catch(unreadable);
    await this.status(machine, { phase: "Deleting" }, [{ type: "Progressing", status: "True", reason: "Deleting", message: `destroying stack ${stack}: drain, remove the Node, clean the host` }]);
    // The destroy runs every step's delete from the inputs recorded in the state (encrypted): it
    // needs neither the Cluster nor the Secret to still exist.
    await this.o.stacks.destroyAndRemove(stack, async () => ({})).catch(unreadable);
    this.adopted.delete(`${machine.metadata.namespace}/${machine.metadata.name}`);
    await this.o.events.record(machine, "Normal", "Deleted", `stack ${stack} destroyed: Node removed and host cleaned`);
    this.health.reprobe(`${machine.metadata.namespace}/${machine.metadata.name}`);
    // Status writes moved the resourceVersion on: release on a fresh read, not a conflicting patch
    // that would wait for this key's (after failed installs, long) backoff.
    const fresh = await this.o.store.getLive(machine.metadata.namespace, machine.metadata.name);
    if (fresh) await this.o.store.setFinalizers(fresh, (fresh.metadata.finalizers ?? []).filter((f) => f !== MACHINE_FINALIZER));
  }

  /** The machine's stack; once per process, a stack under its legacy name is renamed to it first. */
  private async stackOf(machine: MachineObject): Promise<string> {
    const key = `${machine.metadata.namespace}/${machine.metadata.name}`;
    if (this.adopted.has(key)) return stackNameOf(machine);
    const adopted = await adoptLegacyStack(this.o.stacks, machine, "WorkerNode");
    if (adopted.migratedFrom) await this.o.events.record(machine, "Normal", "StackMigrated", `stack ${adopted.migratedFrom} renamed to ${adopted.stack}`);
    this.adopted.add(key);
    return adopted.stack;
  }

  private async status(machine: MachineObject, fields: Partial<MachineStatus>, conditions: ConditionInput[]): Promise<void> {
    const apply = statusPatch<MachineStatus>(fields, conditions, machine.metadata.generation, this.now().getTime());
    const status = apply(machine.status);
    if (JSON.stringify(status) === JSON.stringify(machine.status)) return;
    await this.o.store.writeStatus(machine, apply);
    machine.status = status;
  }
}
