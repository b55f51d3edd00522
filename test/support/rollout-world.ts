/**
 * An in-memory fleet for the gray-release tests: Machines and one ClusterPackageVersion, the
 * rollout controller's decisions applied to them, and a stand-in for the Machine reconciler that
 * installs exactly what `desiredPackages` names. Time only moves when a test advances it.
 */
import type { ClusterPackageVersionStatus, MachineStatus, RolloutSpec, WorkerPackages } from "../../src/api/v1alpha1";
import {
  annotationsOf,
  desiredPackages,
  type RolloutDecision,
  type RolloutMachine,
  type RolloutPackageVersion,
} from "../../src/controllers/packageversion/rollout";
import { rolloutStep } from "../../src/controllers/packageversion/rollout-step";
import { packagesRevision } from "../../src/controllers/packageversion/revision";
import { packages } from "./worker-fixtures";

export const P0 = packages("v1.35.4");
export const P1 = packages("v1.36.3");
export const P2: WorkerPackages = { ...P1, cni: { ...P1.cni, version: "v1.6.0", url: "http://mirror.local/cni-v1.6.0.tgz" } };
export const R0 = packagesRevision(P0);
export const R1 = packagesRevision(P1);
export const R2 = packagesRevision(P2);
export const START = Date.parse("2026-11-25T12:00:00Z");

export interface Host {
  metadata: { name: string; namespace: string; annotations?: Record<string, string>; deletionTimestamp?: string };
  spec: { labels?: Record<string, string>; packages?: WorkerPackages; paused?: boolean; packageVersionRef?: { name: string } };
  status?: MachineStatus;
}

/** A host that runs `revision` and is Ready (or one never installed, without a revision). */
export function host(name: string, revision?: string, labels?: Record<string, string>): Host {
  return {
    metadata: { name, namespace: "fleet" },
    spec: { labels, packageVersionRef: { name: "prod-a-packages" } },
    status: revision ? readyStatus(revision) : { phase: "Pending" },
  };
}

export function readyStatus(revision: string): MachineStatus {
  return {
    phase: "Ready",
    packagesRevision: revision,
    targetRevision: revision,
    conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "", lastTransitionTime: "2026-11-25T12:00:00Z" }],
  };
}

export function cpvOf(spec: { packages: WorkerPackages; rollout?: RolloutSpec }, status?: ClusterPackageVersionStatus): RolloutPackageVersion & {
  metadata: { name: string; namespace: string; generation: number; annotations?: Record<string, string> };
  status?: ClusterPackageVersionStatus;
} {
  return { metadata: { name: "prod-a-packages", namespace: "fleet", generation: 1 }, spec: { clusterRef: { name: "prod-a" }, ...spec }, status };
}

/** A CPV whose catalog P0 was fully rolled out, now asked to roll out `next`. */
export function steadyAt(next: WorkerPackages, rollout?: RolloutSpec) {
  return cpvOf({ packages: next, rollout }, { phase: "Complete", revision: R0, currentRevision: R0, currentPackages: P0 });
}

export class World {
  now = START;
  readonly decisions: RolloutDecision[] = [];

  constructor(
    public cpv: ReturnType<typeof cpvOf>,
    public machines: Host[],
  ) {}

  get(name: string): Host {
    const m = this.machines.find((x) => x.metadata.name === name);
    if (!m) throw new Error(`no machine ${name}`);
    return m;
  }

  /** One CPV reconcile: decide, then apply the annotation writes and the status. */
  step(): RolloutDecision {
    const decision = rolloutStep({ cpv: this.cpv, machines: this.machines, now: new Date(this.now) });
    for (const write of decision.writes) {
      const m = this.get(write.machine);
      const annotations = { ...(m.metadata.annotations ?? {}) };
      for (const [k, v] of Object.entries(annotationsOf(write))) {
        if (v === null) delete annotations[k];
        else annotations[k] = v;
      }
      m.metadata.annotations = annotations;
    }
    this.cpv = { ...this.cpv, status: decision.status };
    this.decisions.push(decision);
    return decision;
  }

  desired(name: string) {
    return desiredPackages(this.get(name) as RolloutMachine, this.cpv);
  }

  /** The Machine reconciler installs what it is told; returns the revision now on the host. */
  install(name: string): string | undefined {
    const d = this.desired(name);
    if (d.packages) this.get(name).status = readyStatus(d.revision!);
    return this.get(name).status?.packagesRevision;
  }

  /** The install of what it is told fails on the host. */
  fail(name: string, message = "sha256 mismatch for kubelet"): void {
    const d = this.desired(name);
    const m = this.get(name);
    m.status = { ...m.status, phase: "Failed", targetRevision: d.revision, lastOperation: { kind: "up", result: "failed", startedAt: new Date(this.now).toISOString(), message } };
  }

  /** Machines the controller admitted to `revision`. */
  admitted(revision: string): string[] {
    return this.machines.filter((m) => m.metadata.annotations?.["kubeonkube.io/packages-revision"] === revision).map((m) => m.metadata.name);
  }

  /** Installs every machine whose desired catalog differs from what it runs. */
  converge(): string[] {
    const changed: string[] = [];
    for (const m of this.machines) {
      const before = m.status?.packagesRevision;
      if (this.install(m.metadata.name) !== before) changed.push(m.metadata.name);
    }
    return changed;
  }
}
