/**
 * The steady state of an installed Machine: its Node as the business cluster reports it (one
 * watch per cluster), now and then a short SSH probe of the host, and the repair that follows
 * from them (remediation.ts decides; this file carries the decision out). Versions that differ
 * from the catalog are drift, put right by a reinstall, once per distinct drift.
 */
import type { ObservedVersions, PackageName, WorkerPackages } from "../../api/v1alpha1";
import type { HostConnection, ProbeResult } from "../../host/host-probe";
import type { CertificateCare } from "./certificate-care";
import { INSTALL_ROOT_ANNOTATION, machineSecrets, type MachineCatalog, type MachineContext, type Waiting } from "./context";
import type { MachineObject } from "../../api/v1alpha1";
import { decideRemediation, type RemediationDecision, type RemediationPolicy } from "./remediation";
import { DEFAULT_HEALTH_CHECK_MS, machineKey, type HostLayout, type InstallAction, type MachineSteps } from "./options";

export interface MachineHealthOptions extends MachineSteps {
  readonly policy: RemediationPolicy;
  /** The kubelet certificates of a healthy Machine (certificate-care.ts). */
  readonly certificates: CertificateCare;
  install(machine: MachineObject, ctx: MachineContext, action: InstallAction, why: string): Promise<{ requeueAfter: number }>;
}

type Requeue = { requeueAfter: number };
/** The machine's Secrets, read on first use within one look (most looks need none). */
type SecretsOnce = () => Promise<MachineContext | Waiting>;
interface Probed {
  readonly at: number;
  /** Undefined when the host could not be reached. */
  readonly result?: ProbeResult;
}

export class MachineHealth {
  private readonly lastProbe = new Map<string, Probed>();
  private readonly unhealthySince = new Map<string, Date>();
  /** The drift each machine was last reinstalled for: the same drift again is not fixed by a reinstall. */
  private readonly correctedDrift = new Map<string, string>();

  constructor(private readonly s: MachineHealthOptions) {}

  private get healthMs(): number {
    return this.s.o.healthCheckMs ?? DEFAULT_HEALTH_CHECK_MS;
  }

  /** The machine is gone: nothing is remembered about it. */
  forget(key: string): void {
    this.lastProbe.delete(key);
    this.unhealthySince.delete(key);
    this.correctedDrift.delete(key);
    this.s.certificates.forget(key);
  }

  /** An install succeeded: an incident before it is over. */
  installed(key: string): void {
    this.unhealthySince.delete(key);
  }

  /** The next look probes the host again (after a repair, or when its stack is destroyed). */
  reprobe(key: string): void {
    this.lastProbe.delete(key);
  }

  /** The steady state: the Node as the business cluster reports it, and now and then the host itself. */
  async check(key: string, machine: MachineObject, catalog: MachineCatalog): Promise<Requeue> {
    // Secrets are read only when something is about to use them, not on every look at the Node.
    let loaded: MachineContext | Waiting | undefined;
    const secrets: SecretsOnce = async () => (loaded ??= await machineSecrets(machine, catalog, this.s.o.store));
    const notWatching = await this.watchNodes(machine, catalog, secrets);
    if (notWatching) return notWatching;
    const nodeName = machine.status?.nodeName ?? machine.spec.hostname;
    const node = this.s.o.nodes.node(catalog.clusterKey, nodeName);
    const now = this.s.now();

    // Cheap drift, from what the cluster already tells us.
    if (catalog.packages && node?.kubeletVersion && node.kubeletVersion !== catalog.packages.kubelet.version) {
      return this.drift(key, machine, catalog.revision ?? "", await secrets(), `Node ${nodeName} reports kubelet ${node.kubeletVersion}, the catalog says ${catalog.packages.kubelet.version}`);
    }
    const unhealthy = node === undefined || !node.ready;
    const probe = await this.probeWhenDue(key, machine, catalog, secrets, now, unhealthy);
    if ("outcome" in probe) return probe.outcome;

    if (unhealthy && !this.unhealthySince.has(key)) this.unhealthySince.set(key, node?.readySince && !node.ready ? node.readySince : now);
    if (!unhealthy) this.unhealthySince.delete(key);
    const decision = decideRemediation({
      node,
      nodeExpected: true,
      services: probe.probed.result?.services,
      status: machine.status ?? {},
      cluster: this.clusterHealth(machine, catalog.clusterKey),
      now,
      policy: this.s.policy,
      unhealthySince: this.unhealthySince.get(key),
      nodeName,
    });
    if (decision.action !== "healthy") return this.act(machine, catalog, decision, nodeName, secrets);
    // A healthy host's certificates: renewed, re-issued or re-trusted now, or looked at again when due.
    const look = await this.s.certificates.look(key, machine, catalog, secrets, loaded !== undefined);
    if ("ran" in look) return look.ran;
    const requeue = await this.act(machine, catalog, decision, nodeName, secrets);
    return look.recheckAfterMs === undefined ? requeue : { requeueAfter: Math.min(requeue.requeueAfter, look.recheckAfterMs) };
  }

  /** Starts the watch of the machine's cluster's Nodes; a requeue until it has synced. */
  private async watchNodes(machine: MachineObject, catalog: MachineCatalog, secrets: SecretsOnce): Promise<Requeue | undefined> {
    if (this.s.o.nodes.synced(catalog.clusterKey)) return undefined;
    const ctx = await secrets();
    if ("waiting" in ctx) return this.s.waiting(machine, ctx);
    try {
      this.s.o.nodes.ensure(catalog.clusterKey, ctx.cluster.adminKubeconfig);
    } catch (error) {
      return this.s.waiting(machine, { waiting: true, reason: "NodeWatchFailed", message: (error as Error).message });
    }
    return this.s.o.nodes.synced(catalog.clusterKey) ? undefined : { requeueAfter: 2_000 };
  }

  /**
   * The slower probe: one SSH round trip reads the installed versions and the services, every
   * `probeIntervalMs`, and at once for an unhealthy machine with no probe result yet. Versions
   * other than the catalog's end the look with a reinstall.
   */
  private async probeWhenDue(
    key: string,
    machine: MachineObject,
    catalog: MachineCatalog,
    secrets: SecretsOnce,
    now: Date,
    unhealthy: boolean,
  ): Promise<{ outcome: Requeue } | { probed: Probed }> {
    const probeMs = this.s.o.probeIntervalMs ?? 600_000;
    const last = this.lastProbe.get(key);
    if (last && now.getTime() - last.at < probeMs && !(unhealthy && !last.result)) return { probed: last };
    const full = await secrets();
    if ("waiting" in full) return { outcome: await this.s.waiting(machine, full) };
    // A probe is also when a rotated admin kubeconfig reaches the Node watch.
    try {
      this.s.o.nodes.ensure(catalog.clusterKey, full.cluster.adminKubeconfig);
    } catch {
      // The running watch is kept; the kubeconfig problem shows when a new watch is needed.
    }
    let probed: Probed;
    try {
      probed = { at: now.getTime(), result: await this.s.o.hosts.probe(this.connection(machine, full), this.layout(machine)) };
      await this.s.status(machine, {}, [{ type: "HostReachable", status: "True", reason: "Probed", message: "the SSH probe reads the installed versions" }]);
    } catch (error) {
      probed = { at: now.getTime() };
      await this.s.status(machine, {}, [{ type: "HostReachable", status: "False", reason: "ProbeFailed", message: (error as Error).message }]);
    }
    this.lastProbe.set(key, probed);
    const differs = probed.result && catalog.packages ? versionDrift(probed.result.observedVersions, catalog.packages) : [];
    if (differs.length) return { outcome: await this.drift(key, machine, catalog.revision ?? "", full, `the host runs ${differs.join(", ")}`) };
    return { probed };
  }

  /** Carries out the remediation decision: status and Events, a restart or a reinstall. */
  private async act(machine: MachineObject, catalog: MachineCatalog, decision: RemediationDecision, nodeName: string, secrets: SecretsOnce): Promise<Requeue> {
    switch (decision.action) {
      case "healthy":
        await this.s.status(machine, { phase: "Ready" }, [
          { type: "Ready", status: "True", reason: "NodeReady", message: `Node ${nodeName} is Ready` },
          { type: "RemediationAllowed", status: "True", reason: "Healthy", message: "no repair needed" },
        ]);
        return { requeueAfter: this.healthMs };
      case "wait":
        await this.s.status(machine, { phase: "NotReady" }, [{ type: "Ready", status: "False", reason: "NodeNotReady", message: decision.reason }]);
        return { requeueAfter: Math.max(1_000, Math.min(decision.recheckAfterMs, this.healthMs)) };
      case "short-circuit":
      case "give-up": {
        const reason = decision.action === "short-circuit" ? "TooManyUnhealthy" : "RetryLimitReached";
        const before = machine.status?.conditions?.find((c) => c.type === "RemediationAllowed");
        if (before?.reason !== reason) await this.s.o.events.record(machine, "Warning", reason, decision.reason);
        await this.s.status(machine, { phase: decision.action === "give-up" ? "Failed" : "NotReady" }, [
          { type: "Ready", status: "False", reason: "NodeNotReady", message: `Node ${nodeName} is not Ready` },
          { type: "RemediationAllowed", status: "False", reason, message: decision.reason },
        ]);
        return { requeueAfter: this.healthMs };
      }
      case "restart-services":
      case "reinstall": {
        const full = await secrets();
        if ("waiting" in full) return this.s.waiting(machine, full);
        // While a rollout holds the host there is no catalog to reinstall: restarting is all we may do.
        if (decision.action === "restart-services" || catalog.packages === undefined) {
          return this.restartServices(machine, full, decision.reason, decision.remediationCount, decision.action === "restart-services" && decision.stopPods);
        }
        await this.remediating(machine, "reinstall", decision.reason, decision.remediationCount);
        return this.s.install(machine, full, "reinstall", decision.reason);
      }
    }
  }

  private clusterHealth(machine: MachineObject, clusterKey: string): { unhealthy: number; total: number } {
    const installed = this.s.o.store.machinesOfCluster(machine.metadata.namespace, machine.spec.clusterRef.name).filter((m) => m.status?.packagesRevision && !m.spec.paused);
    const unhealthy = installed.filter((m) => !this.s.o.nodes.node(clusterKey, m.status?.nodeName ?? m.spec.hostname)?.ready).length;
    return { unhealthy, total: installed.length };
  }

  private async drift(key: string, machine: MachineObject, revision: string, loaded: MachineContext | Waiting, what: string): Promise<Requeue> {
    if ("waiting" in loaded) return this.s.waiting(machine, loaded);
    const ctx = loaded;
    const signature = `${revision} ${what}`;
    if (this.correctedDrift.get(key) === signature) {
      // A reinstall already ran for exactly this and it is still so: the catalog's version string
      // does not match what the binary reports. Reinstalling in a loop would not change that.
      await this.s.status(machine, {}, [{ type: "Drifted", status: "True", reason: "CatalogMismatch", message: `${what}, also right after a reinstall: check the catalog's version for this artifact` }]);
      return { requeueAfter: this.healthMs };
    }
    this.correctedDrift.set(key, signature);
    this.lastProbe.delete(key);
    await this.s.o.events.record(machine, "Warning", "Drifted", `${what}; reinstalling the catalog's versions`);
    await this.s.status(machine, {}, [{ type: "Drifted", status: "True", reason: "VersionsDiffer", message: what }]);
    return this.s.install(machine, ctx, "drift", what);
  }

  private async remediating(machine: MachineObject, action: "restart-services" | "reinstall", reason: string, remediationCount: number): Promise<void> {
    await this.s.o.events.record(machine, "Warning", "Remediating", `${action}: ${reason}`);
    await this.s.status(
      machine,
      { phase: "Remediating", remediationCount, lastRemediation: { at: this.s.now().toISOString(), reason, action, result: "running" } },
      [{ type: "Ready", status: "False", reason: "Remediating", message: reason }],
    );
  }

  private async restartServices(machine: MachineObject, ctx: MachineContext, reason: string, remediationCount: number, stopPods = false): Promise<Requeue> {
    await this.remediating(machine, "restart-services", reason, remediationCount);
    const at = machine.status?.lastRemediation?.at ?? this.s.now().toISOString();
    try {
      await this.s.o.hosts.restartServices(this.connection(machine, ctx), this.layout(machine), { stopPods });
      this.s.o.onAction?.("restart-services", "success");
      await this.s.status(machine, { lastRemediation: { at, reason, action: "restart-services", result: "succeeded" } }, []);
      await this.s.o.events.record(machine, "Normal", "ServicesRestarted", `containerd and the kubelet were restarted on ${machine.spec.ip}`);
    } catch (error) {
      this.s.o.onAction?.("restart-services", "error");
      const message = (error as Error).message;
      await this.s.status(machine, { lastRemediation: { at, reason, action: "restart-services", result: "failed" } }, []);
      await this.s.o.events.record(machine, "Warning", "RemediationFailed", message);
    }
    this.lastProbe.delete(machineKey(machine));
    return { requeueAfter: 5_000 };
  }

  private layout(machine: MachineObject): HostLayout {
    return {
      installRoot: machine.metadata.annotations?.[INSTALL_ROOT_ANNOTATION] ?? this.s.o.defaults?.installRoot ?? "/",
      serviceManager: this.s.o.defaults?.serviceManager ?? "systemd",
    };
  }

  private connection(machine: MachineObject, ctx: MachineContext): HostConnection {
    const ssh = machine.spec.ssh;
    return { host: machine.spec.ip, port: ssh.port ?? 22, user: ssh.user ?? "root", hostKey: ssh.hostKey, ...ctx.credentials };
  }
}

/** Packages whose installed version differs from the catalog, as "kubelet v1.35.4 (catalog v1.36.3)". */
export function versionDrift(observed: ObservedVersions, packages: WorkerPackages): string[] {
  const names: PackageName[] = ["containerd", "kubelet", "cni", "runc"];
  return names
    .filter((n) => packages[n] !== undefined && observed[n] !== packages[n]!.version)
    .map((n) => `${n} ${observed[n] ?? "missing"} (catalog ${packages[n]!.version})`);
}
