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
 *   new spec or catalog?         → `up`: install or upgrade; observed versions read back
 *   else                         → cheap health check: the business cluster's Node (from one
 *                                  watch per cluster), a short SSH probe on a slower period;
 *                                  drift → reinstall; NotReady too long → repair, unless too many
 *                                  machines of the cluster are unhealthy (an outage, not a node)
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
  resolveAdminPolicy,
  stackNameOf,
  validateMachineSpec,
  validatePackages,
  type Condition,
  type MachineObject,
  type MachineStatus,
  type ObservedVersions,
  type PackageName,
  type ResolvedAdminPolicy,
  type WorkerPackages,
} from "../../api/v1alpha1";
import { machineProgram, type WorkerDefaults } from "../../program/machine-program";
import { setCondition } from "../../runtime/conditions";
import { TerminalError } from "../../runtime/controller";
import type { HostConnection, ProbeResult } from "../../host/host-probe";
import {
  INSTALL_ROOT_ANNOTATION,
  machineCatalog,
  machineSecrets,
  type MachineCatalog,
  type MachineContext,
  type MachineDependencies,
  type Waiting,
} from "./context";
import { adoptLegacyStack } from "../legacy-stacks";
import type { NodeView } from "./node-health";
import { decideRemediation, DEFAULT_REMEDIATION_POLICY, type RemediationPolicy } from "./remediation";
import type { OperationResult, StackRunner } from "../../runtime/stack-runner";
import { StackOperationError } from "../../runtime/stack-runner";

export const MACHINE_FINALIZER = "kubeonkube.io/machine-stack";

export interface MachineStore extends MachineDependencies {
  /** The informer's copy, or with `live` a read from the API server (before acting on it). */
  get(namespace: string, name: string, opts?: { live?: boolean }): Promise<MachineObject | undefined>;
  setFinalizers(machine: MachineObject, finalizers: string[]): Promise<MachineObject>;
  /** Writes `update(the stored status)`: fields we did not touch keep what is stored now. */
  writeStatus(machine: MachineObject, update: (current: MachineStatus | undefined) => MachineStatus): Promise<void>;
  /** The cached Machines of one Cluster (for the repair short-circuit). */
  machinesOfCluster(namespace: string, cluster: string): readonly MachineObject[];
}

export interface MachineEvents {
  record(machine: MachineObject, type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
}

/** The business clusters' Nodes, one watch per cluster (see node-health.ts). */
export interface NodeSource {
  ensure(clusterKey: string, kubeconfig: string): void;
  synced(clusterKey: string): boolean;
  node(clusterKey: string, nodeName: string): NodeView | undefined;
}

/** Short SSH operations outside the engine (see host-probe.ts). */
export interface HostOperations {
  probe(conn: HostConnection, layout: { installRoot: string; serviceManager: "systemd" | "process" | "none" }): Promise<ProbeResult>;
  restartServices(conn: HostConnection, layout: { installRoot: string; serviceManager: "systemd" | "process" | "none" }): Promise<void>;
}

export type MachineStacks = Pick<StackRunner, "up" | "destroyAndRemove" | "resources" | "rename">;

export interface MachineReconcilerOptions {
  readonly store: MachineStore;
  readonly events: MachineEvents;
  readonly stacks: MachineStacks;
  readonly nodes: NodeSource;
  readonly hosts: HostOperations;
  readonly defaults?: WorkerDefaults;
  /** How often a healthy machine is looked at again without a wake-up from its Node's watch. Default 5 min. */
  readonly healthCheckMs?: number;
  /** How often the SSH probe reads the installed versions. Default 10 min. */
  readonly probeIntervalMs?: number;
  readonly remediation?: RemediationPolicy;
  /** Told about repairs and installs (metrics). */
  readonly onAction?: (action: "install" | "upgrade" | "restart-services" | "reinstall" | "drift", result: "success" | "error") => void;
  readonly now?: () => Date;
  /** What the platform lets a Machine ask for (admin-policy.ts): SSH target ranges. Default the built-in policy. */
  readonly policy?: ResolvedAdminPolicy;
}

type ConditionInput = Omit<Condition, "lastTransitionTime" | "observedGeneration">;
const WAIT_MS = 15_000;

export class MachineReconciler {
  private readonly now: () => Date;
  private readonly lastProbe = new Map<string, { at: number; result?: ProbeResult }>();
  private readonly unhealthySince = new Map<string, Date>();
  /** The drift each machine was last reinstalled for: the same drift again is not fixed by a reinstall. */
  private readonly correctedDrift = new Map<string, string>();
  /** Machines whose stack this process has looked for under its legacy name already. */
  private readonly adopted = new Set<string>();

  constructor(private readonly o: MachineReconcilerOptions) {
    this.now = o.now ?? (() => new Date());
  }

  private get policy(): RemediationPolicy {
    return this.o.remediation ?? DEFAULT_REMEDIATION_POLICY;
  }

  async reconcile(key: string): Promise<{ requeueAfter?: number } | void> {
    const [namespace, name] = key.split("/");
    // The steady state (installed, current, nothing to change) is decided from the informer's
    // copy: a fleet's health checks cost no read of the API server. Anything that acts reads live.
    const cached = await this.o.store.get(namespace, name);
    const steady = cached ? this.steadyCatalog(cached) : undefined;
    if (cached && steady === "paused") return this.paused(cached);
    if (cached && steady !== undefined && steady !== "paused") return this.checkHealth(key, cached, steady);
    let machine = await this.o.store.get(namespace, name, { live: true });
    if (!machine) {
      this.lastProbe.delete(key);
      this.unhealthySince.delete(key);
      this.correctedDrift.delete(key);
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
    const catalogProblems = catalog.packages && !machine.spec.packages ? validatePackages(catalog.packages, `ClusterPackageVersion ${machine.spec.packageVersionRef?.name}: spec.packages`) : [];
    if (catalogProblems.length) return this.invalid(key, machine, catalogProblems.map(formatProblem));
    const s = machine.status ?? {};
    // A rollout holding this host where it is (packages undefined): no install, only health care.
    const held = catalog.packages === undefined;
    const current = held || (s.packagesRevision === catalog.revision && s.observedGeneration === machine.metadata.generation && s.lastOperation?.result === "succeeded");
    if (!current) {
      const ctx = await machineSecrets(machine, catalog, this.o.store);
      if ("waiting" in ctx) return this.waiting(machine, ctx);
      return this.install(machine, ctx, s.packagesRevision ? "upgrade" : "install");
    }
    return this.checkHealth(key, machine, catalog);
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
    return async () =>
      machineProgram({
        name: machine.metadata.name,
        spec: machine.spec,
        packages: ctx.packages,
        credentials: ctx.credentials,
        cluster: ctx.cluster,
        defaults: this.o.defaults,
        installRoot: machine.metadata.annotations?.[INSTALL_ROOT_ANNOTATION],
        reinstall,
      }) as unknown as Record<string, unknown>;
  }

  private layout(machine: MachineObject) {
    return {
      installRoot: machine.metadata.annotations?.[INSTALL_ROOT_ANNOTATION] ?? this.o.defaults?.installRoot ?? "/",
      serviceManager: this.o.defaults?.serviceManager ?? "systemd",
    } as const;
  }

  private connection(machine: MachineObject, ctx: MachineContext): HostConnection {
    const ssh = machine.spec.ssh;
    return { host: machine.spec.ip, port: ssh.port ?? 22, user: ssh.user ?? "root", hostKey: ssh.hostKey, ...ctx.credentials };
  }

  private async install(machine: MachineObject, ctx: MachineContext, action: "install" | "upgrade" | "reinstall" | "drift", why?: string): Promise<{ requeueAfter: number }> {
    const stack = await this.stackOf(machine);
    const reinstalls = (machine.status?.reinstalls ?? 0) + (action === "reinstall" || action === "drift" ? 1 : 0);
    const startedAt = this.now().toISOString();
    const phase = action === "install" ? "Installing" : action === "upgrade" ? "Upgrading" : "Remediating";
    const versions = `containerd ${ctx.packages.containerd.version}, kubelet ${ctx.packages.kubelet.version}, cni ${ctx.packages.cni.version}`;
    await this.o.events.record(machine, "Normal", phase, `${why ? `${why}; ` : ""}${versions} on ${machine.spec.ip} (${ctx.packagesReason})`);
    await this.status(machine, { phase, targetRevision: ctx.revision, reinstalls, lastOperation: { kind: "up", result: "running", startedAt } }, [
      { type: "Progressing", status: "True", reason: phase, message: `pulumi up of stack ${stack}: ${versions}` },
    ]);
    let result: OperationResult;
    try {
      result = await this.o.stacks.up(stack, this.program(machine, ctx, reinstalls));
    } catch (error) {
      this.o.onAction?.(action, "error");
      return this.failed(machine, ctx, startedAt, error);
    }
    this.o.onAction?.(action, "success");
    const observed = (result.outputs.observedVersions?.value ?? {}) as ObservedVersions;
    const nodeName = (result.outputs.nodeName?.value as string | undefined) ?? machine.spec.hostname;
    this.unhealthySince.delete(`${machine.metadata.namespace}/${machine.metadata.name}`);
    await this.o.events.record(machine, "Normal", action === "install" ? "Installed" : action === "upgrade" ? "Upgraded" : "Reinstalled", `Node ${nodeName} runs ${formatVersions(observed)}`);
    const lastRemediation = machine.status?.lastRemediation?.result === "running" ? { ...machine.status.lastRemediation, result: "succeeded" as const } : machine.status?.lastRemediation;
    await this.status(
      machine,
      {
        phase: "Ready",
        observedGeneration: machine.metadata.generation,
        observedVersions: observed,
        nodeName,
        packagesRevision: ctx.revision,
        lastRemediation,
        lastOperation: { kind: "up", result: "succeeded", startedAt, finishedAt: this.now().toISOString(), changes: result.changes },
      },
      [
        { type: "Ready", status: "True", reason: "Installed", message: `Node ${nodeName} is Ready on ${formatVersions(observed)}` },
        { type: "Progressing", status: "False", reason: "Installed", message: formatCounts(result.changes) },
        { type: "Drifted", status: "False", reason: "InSync", message: "the host runs the catalog's versions" },
      ],
    );
    return { requeueAfter: this.o.healthCheckMs ?? 300_000 };
  }

  private async failed(machine: MachineObject, ctx: MachineContext, startedAt: string, error: unknown): Promise<{ requeueAfter: number }> {
    const message = error instanceof Error ? error.message : String(error);
    const lastRemediation = machine.status?.lastRemediation?.result === "running" ? { ...machine.status.lastRemediation, result: "failed" as const } : machine.status?.lastRemediation;
    await this.status(
      machine,
      { phase: "Failed", targetRevision: ctx.revision, lastRemediation, lastOperation: { kind: "up", result: "failed", startedAt, finishedAt: this.now().toISOString(), message } },
      [
        { type: "Ready", status: "False", reason: "InstallFailed", message },
        { type: "Progressing", status: "False", reason: "InstallFailed", message: "retrying with backoff" },
      ],
    );
    await this.o.events.record(machine, "Warning", "InstallFailed", message);
    if (error instanceof StackOperationError && error.kind === "concurrent-update") return { requeueAfter: 30_000 };
    throw error;
  }

  /** The steady state: the Node as the business cluster reports it, and now and then the host itself. */
  private async checkHealth(key: string, machine: MachineObject, catalog: MachineCatalog): Promise<{ requeueAfter: number }> {
    const healthMs = this.o.healthCheckMs ?? 300_000;
    // Secrets are read only when something is about to use them, not on every look at the Node.
    let loaded: MachineContext | Waiting | undefined;
    const secrets = async () => (loaded ??= await machineSecrets(machine, catalog, this.o.store));
    if (!this.o.nodes.synced(catalog.clusterKey)) {
      const ctx = await secrets();
      if ("waiting" in ctx) return this.waiting(machine, ctx);
      try {
        this.o.nodes.ensure(catalog.clusterKey, ctx.cluster.adminKubeconfig);
      } catch (error) {
        return this.waiting(machine, { waiting: true, reason: "NodeWatchFailed", message: (error as Error).message });
      }
      if (!this.o.nodes.synced(catalog.clusterKey)) return { requeueAfter: 2_000 };
    }
    const ctx = catalog;
    const nodeName = machine.status?.nodeName ?? machine.spec.hostname;
    const node = this.o.nodes.node(ctx.clusterKey, nodeName);
    const now = this.now();

    // Cheap drift, from what the cluster already tells us.
    if (ctx.packages && node?.kubeletVersion && node.kubeletVersion !== ctx.packages.kubelet.version) {
      return this.drift(key, machine, ctx.revision ?? "", await secrets(), `Node ${nodeName} reports kubelet ${node.kubeletVersion}, the catalog says ${ctx.packages.kubelet.version}`);
    }
    // The slower probe: one SSH round trip reads the installed versions and the services.
    const probeMs = this.o.probeIntervalMs ?? 600_000;
    let probed = this.lastProbe.get(key);
    const unhealthy = node === undefined || !node.ready;
    if (!probed || now.getTime() - probed.at >= probeMs || (unhealthy && !probed.result)) {
      const full = await secrets();
      if ("waiting" in full) return this.waiting(machine, full);
      // A probe is also when a rotated admin kubeconfig reaches the Node watch.
      try {
        this.o.nodes.ensure(catalog.clusterKey, full.cluster.adminKubeconfig);
      } catch {
        // The running watch is kept; the kubeconfig problem shows when a new watch is needed.
      }
      try {
        probed = { at: now.getTime(), result: await this.o.hosts.probe(this.connection(machine, full), this.layout(machine)) };
        await this.status(machine, {}, [{ type: "HostReachable", status: "True", reason: "Probed", message: "the SSH probe reads the installed versions" }]);
      } catch (error) {
        probed = { at: now.getTime() };
        await this.status(machine, {}, [{ type: "HostReachable", status: "False", reason: "ProbeFailed", message: (error as Error).message }]);
      }
      this.lastProbe.set(key, probed);
      const differs = probed.result && ctx.packages ? versionDrift(probed.result.observedVersions, ctx.packages) : [];
      if (differs.length) return this.drift(key, machine, ctx.revision ?? "", full, `the host runs ${differs.join(", ")}`);
    }

    if (unhealthy && !this.unhealthySince.has(key)) this.unhealthySince.set(key, node?.readySince && !node.ready ? node.readySince : now);
    if (!unhealthy) this.unhealthySince.delete(key);
    const decision = decideRemediation({
      node,
      nodeExpected: true,
      services: probed?.result?.services,
      status: machine.status ?? {},
      cluster: this.clusterHealth(machine, ctx.clusterKey),
      now,
      policy: this.policy,
      unhealthySince: this.unhealthySince.get(key),
      nodeName,
    });
    switch (decision.action) {
      case "healthy":
        await this.status(machine, { phase: "Ready" }, [
          { type: "Ready", status: "True", reason: "NodeReady", message: `Node ${nodeName} is Ready` },
          { type: "RemediationAllowed", status: "True", reason: "Healthy", message: "no repair needed" },
        ]);
        return { requeueAfter: healthMs };
      case "wait":
        await this.status(machine, { phase: "NotReady" }, [{ type: "Ready", status: "False", reason: "NodeNotReady", message: decision.reason }]);
        return { requeueAfter: Math.max(1_000, Math.min(decision.recheckAfterMs, healthMs)) };
      case "short-circuit":
      case "give-up": {
        const reason = decision.action === "short-circuit" ? "TooManyUnhealthy" : "RetryLimitReached";
        const before = machine.status?.conditions?.find((c) => c.type === "RemediationAllowed");
        if (before?.reason !== reason) await this.o.events.record(machine, "Warning", reason, decision.reason);
        await this.status(machine, { phase: decision.action === "give-up" ? "Failed" : "NotReady" }, [
          { type: "Ready", status: "False", reason: "NodeNotReady", message: `Node ${nodeName} is not Ready` },
          { type: "RemediationAllowed", status: "False", reason, message: decision.reason },
        ]);
        return { requeueAfter: healthMs };
      }
      case "restart-services":
      case "reinstall": {
        const full = await secrets();
        if ("waiting" in full) return this.waiting(machine, full);
        // While a rollout holds the host there is no catalog to reinstall: restarting is all we may do.
        if (decision.action === "restart-services" || catalog.packages === undefined) return this.restartServices(machine, full, decision.reason, decision.remediationCount);
        await this.remediating(machine, "reinstall", decision.reason, decision.remediationCount);
        return this.install(machine, full, "reinstall", decision.reason);
      }
    }
  }

  private clusterHealth(machine: MachineObject, clusterKey: string): { unhealthy: number; total: number } {
    const installed = this.o.store.machinesOfCluster(machine.metadata.namespace, machine.spec.clusterRef.name).filter((m) => m.status?.packagesRevision && !m.spec.paused);
    const unhealthy = installed.filter((m) => !this.o.nodes.node(clusterKey, m.status?.nodeName ?? m.spec.hostname)?.ready).length;
    return { unhealthy, total: installed.length };
  }

  private async drift(key: string, machine: MachineObject, revision: string, loaded: MachineContext | Waiting, what: string): Promise<{ requeueAfter: number }> {
    if ("waiting" in loaded) return this.waiting(machine, loaded);
    const ctx = loaded;
    const signature = `${revision} ${what}`;
    if (this.correctedDrift.get(key) === signature) {
      // A reinstall already ran for exactly this and it is still so: the catalog's version string
      // does not match what the binary reports. Reinstalling in a loop would not change that.
      await this.status(machine, {}, [{ type: "Drifted", status: "True", reason: "CatalogMismatch", message: `${what}, also right after a reinstall: check the catalog's version for this artifact` }]);
      return { requeueAfter: this.o.healthCheckMs ?? 300_000 };
    }
    this.correctedDrift.set(key, signature);
    this.lastProbe.delete(key);
    await this.o.events.record(machine, "Warning", "Drifted", `${what}; reinstalling the catalog's versions`);
    await this.status(machine, {}, [{ type: "Drifted", status: "True", reason: "VersionsDiffer", message: what }]);
    return this.install(machine, ctx, "drift", what);
  }

  private async remediating(machine: MachineObject, action: "restart-services" | "reinstall", reason: string, remediationCount: number): Promise<void> {
    await this.o.events.record(machine, "Warning", "Remediating", `${action}: ${reason}`);
    await this.status(
      machine,
      { phase: "Remediating", remediationCount, lastRemediation: { at: this.now().toISOString(), reason, action, result: "running" } },
      [{ type: "Ready", status: "False", reason: "Remediating", message: reason }],
    );
  }

  private async restartServices(machine: MachineObject, ctx: MachineContext, reason: string, remediationCount: number): Promise<{ requeueAfter: number }> {
    await this.remediating(machine, "restart-services", reason, remediationCount);
    const at = machine.status?.lastRemediation?.at ?? this.now().toISOString();
    try {
      await this.o.hosts.restartServices(this.connection(machine, ctx), this.layout(machine));
      this.o.onAction?.("restart-services", "success");
      await this.status(machine, { lastRemediation: { at, reason, action: "restart-services", result: "succeeded" } }, []);
      await this.o.events.record(machine, "Normal", "ServicesRestarted", `containerd and the kubelet were restarted on ${machine.spec.ip}`);
    } catch (error) {
      this.o.onAction?.("restart-services", "error");
      const message = (error as Error).message;
      await this.status(machine, { lastRemediation: { at, reason, action: "restart-services", result: "failed" } }, []);
      await this.o.events.record(machine, "Warning", "RemediationFailed", message);
    }
    this.lastProbe.delete(`${machine.metadata.namespace}/${machine.metadata.name}`);
    return { requeueAfter: 5_000 };
  }

  private async finalize(machine: MachineObject): Promise<void> {
    if (!machine.metadata.finalizers?.includes(MACHINE_FINALIZER)) return;
    const stack = await this.stackOf(machine);
    await this.status(machine, { phase: "Deleting" }, [{ type: "Progressing", status: "True", reason: "Deleting", message: `destroying stack ${stack}: drain, remove the Node, clean the host` }]);
    // The destroy runs every step's delete from the inputs recorded in the state (encrypted): it
    // needs neither the Cluster nor the Secret to still exist.
    await this.o.stacks.destroyAndRemove(stack, async () => ({}));
    this.adopted.delete(`${machine.metadata.namespace}/${machine.metadata.name}`);
    await this.o.events.record(machine, "Normal", "Deleted", `stack ${stack} destroyed: Node removed and host cleaned`);
    this.lastProbe.delete(`${machine.metadata.namespace}/${machine.metadata.name}`);
    // Status writes moved the resourceVersion on: release on a fresh read, not a conflicting patch
    // that would wait for this key's (after failed installs, long) backoff.
    const fresh = await this.o.store.get(machine.metadata.namespace, machine.metadata.name, { live: true });
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
    const now = this.now().getTime();
    // Applied to whatever status is stored when the write happens, so a copy that lags behind
    // (the informer's) never writes older values back over fields this call does not set.
    const apply = (base: MachineStatus | undefined): MachineStatus => {
      let list = [...(base?.conditions ?? [])];
      for (const c of conditions) list = setCondition(list, { ...c, observedGeneration: machine.metadata.generation }, now);
      return { ...(base ?? {}), ...fields, conditions: list };
    };
    const status = apply(machine.status);
    if (JSON.stringify(status) === JSON.stringify(machine.status)) return;
    await this.o.store.writeStatus(machine, apply);
    (machine as { status?: MachineStatus }).status = status;
  }
}

/** Packages whose installed version differs from the catalog, as "kubelet v1.35.4 (catalog v1.36.3)". */
export function versionDrift(observed: ObservedVersions, packages: WorkerPackages): string[] {
  const names: PackageName[] = ["containerd", "kubelet", "cni", "runc"];
  return names
    .filter((n) => packages[n] !== undefined && observed[n] !== packages[n]!.version)
    .map((n) => `${n} ${observed[n] ?? "missing"} (catalog ${packages[n]!.version})`);
}

function formatVersions(v: ObservedVersions): string {
  return Object.entries(v).map(([k, ver]) => `${k} ${ver}`).join(", ") || "no versions reported";
}

function formatCounts(counts: Record<string, number>): string {
  const parts = Object.entries(counts).filter(([, n]) => n > 0).map(([op, n]) => `${n} ${op}`);
  return parts.length ? parts.join(", ") : "no changes";
}
