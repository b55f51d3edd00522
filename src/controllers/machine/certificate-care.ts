/**
 * The kubelet certificates of a healthy, installed Machine (certificate-renewal.ts decides): the
 * renewal at its planned point, a re-issue when the cluster CA changed, a re-install of the trust
 * bundle when it changed, each one `up` of the Machine's stack; at most a bounded number per
 * Cluster at once, counted here (one leader runs the stacks). Looked at only when the Node is
 * Ready: the `up` ends with the Ready gate, and a NotReady host gets its repair first (a reinstall
 * installs the current CA and bundle as well).
 *
 * The CA Secret is read only when the look reads the Machine's Secrets anyway (its SSH probe) or
 * when the Cluster's status.certificates changed since this Machine was last compared (a CA
 * rotation moving on): the clock alone needs no read.
 */
import type { ClusterObject, MachineObject } from "../../api/v1alpha1";
import { certificateAction, renewalConcurrency, type CertificateAction, type RenewalPolicy } from "./certificate-renewal";
import type { MachineCatalog, MachineContext, Waiting } from "./context";
import type { MachineSteps } from "./options";

export interface CertificateCareOptions extends MachineSteps {
  readonly policy: RenewalPolicy;
  /** The `up` of the Machine's stack; `renew` bumps status.certificates.renewals (new keys). */
  install(machine: MachineObject, ctx: MachineContext, why: string, renew: boolean): Promise<{ requeueAfter: number }>;
}

/** What the look decided: an `up` ran (its requeue), or when to look again at the latest. */
export type CertificateLook = { readonly ran: { requeueAfter: number } } | { readonly recheckAfterMs?: number };

/** The Cluster's status.certificates (the Cluster side's rotation and authorities) as a comparable text. */
export function clusterCertificatesMark(cluster: ClusterObject): string {
  return JSON.stringify(cluster.status?.certificates ?? null);
}

export class CertificateCare {
  /** Machines of each Cluster whose certificate `up` runs now. */
  private readonly running = new Map<string, Set<string>>();
  /** The Cluster's status.certificates each Machine was last compared against the CA Secret with. */
  private readonly compared = new Map<string, string>();
  /** Machines whose certificates a `record` up was run for: once per process, never in a loop. */
  private readonly recorded = new Set<string>();
  /** The certificates (their notAfter) each Machine's last renewal `up` started from: a renewal that re-issued nothing is not repeated. */
  private readonly renewedFrom = new Map<string, string>();

  constructor(private readonly s: CertificateCareOptions) {}

  forget(key: string): void {
    this.compared.delete(key);
    this.recorded.delete(key);
    this.renewedFrom.delete(key);
  }

  async look(key: string, machine: MachineObject, catalog: MachineCatalog, secrets: () => Promise<MachineContext | Waiting>, secretsRead: boolean): Promise<CertificateLook> {
    const mark = clusterCertificatesMark(catalog.cluster);
    let ctx: MachineContext | undefined;
    if (secretsRead || this.compared.get(key) !== mark) {
      const loaded = await secrets();
      if ("waiting" in loaded) return {};
      ctx = loaded;
    }
    const certs = machine.status?.certificates;
    const uid = machine.metadata.uid ?? key;
    let decision: CertificateAction;
    try {
      decision = certificateAction({ certs, now: this.s.now(), policy: this.s.policy, uid, trust: ctx?.cluster });
    } catch (error) {
      // The CA Secret changed under a context already checked: the next look reads it again.
      await this.s.status(machine, {}, [{ type: "CertificatesCurrent", status: "Unknown", reason: "UnreadableCa", message: (error as Error).message }]);
      return { recheckAfterMs: 60_000 };
    }
    if (ctx) this.compared.set(key, mark);
    if (decision.action === "record" && this.recorded.has(key)) decision = { action: "none" };
    const fromOf = (c: typeof certs) => `${c?.kubeletClient?.notAfter} ${c?.kubeletServing?.notAfter}`;
    const from = fromOf(certs);
    // Compared on a live read: the cache may not have the last renewal's status yet.
    if (decision.action === "renew" && this.renewedFrom.get(key) === from && fromOf((await this.s.o.store.getLive(machine.metadata.namespace, machine.metadata.name))?.status?.certificates) === from) {
      // The last renewal `up` succeeded but the stack reports the same certificates: running it
      // again would not change that. Said once; a new operator process tries once more.
      await this.s.status(machine, {}, [
        { type: "CertificatesCurrent", status: "False", reason: "RenewalIneffective", message: `a renewal \`up\` succeeded but the stack reports the same certificates (client until ${certs?.kubeletClient?.notAfter})` },
      ]);
      return { recheckAfterMs: 3_600_000 };
    }
    if (decision.action === "none") {
      if (certs?.kubeletClient || certs?.kubeletServing) {
        const until = [certs.kubeletClient, certs.kubeletServing].filter((c) => c !== undefined).map((c) => c.notAfter).sort()[0];
        await this.s.status(machine, decision.renewAfter !== certs.renewAfter ? { certificates: { ...certs, renewAfter: decision.renewAfter } } : {}, [
          { type: "CertificatesCurrent", status: "True", reason: "Current", message: `valid until ${until}, renewal planned at ${decision.renewAfter}` },
        ]);
      }
      const left = decision.renewAfter ? Date.parse(decision.renewAfter) - this.s.now().getTime() : undefined;
      return left === undefined ? {} : { recheckAfterMs: Math.max(1_000, left) };
    }
    const cluster = catalog.clusterKey;
    const running = this.running.get(cluster) ?? new Set<string>();
    const limit = renewalConcurrency(this.s.policy, this.s.o.store.machinesOfCluster(machine.metadata.namespace, machine.spec.clusterRef.name).length);
    if (running.size >= limit) {
      await this.s.status(machine, {}, [
        { type: "CertificatesCurrent", status: "False", reason: "WaitingForTurn", message: `${decision.reason}; ${running.size} of at most ${limit} Machines of Cluster ${cluster} renew now` },
      ]);
      return { recheckAfterMs: 30_000 };
    }
    // Counted before anything is awaited, so concurrent looks cannot pass the bound together.
    running.add(key);
    this.running.set(cluster, running);
    try {
      if (!ctx) {
        const loaded = await secrets();
        if ("waiting" in loaded) return { ran: await this.s.waiting(machine, loaded) };
        ctx = loaded;
      }
      if (decision.action === "record") this.recorded.add(key);
      if (decision.action === "renew" || decision.action === "reissue") this.renewedFrom.set(key, from);
      return { ran: await this.s.install(machine, ctx, decision.reason, decision.action === "renew" || decision.action === "reissue") };
    } finally {
      running.delete(key);
      if (running.size === 0) this.running.delete(cluster);
    }
  }
}
