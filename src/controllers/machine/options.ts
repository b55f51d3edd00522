/**
 * What the Machine reconciler is given (store, events, stacks, the Nodes' watches, the host
 * operations, its periods and policies), and what its install and health paths share with the
 * dispatch that calls them (`MachineSteps`).
 */
import type { MachineStatus, ResolvedAdminPolicy } from "../../api/v1alpha1";
import type { ConditionInput } from "../../runtime/conditions";
import type { WorkerDefaults } from "../../program/machine-program";
import type { HostConnection, ProbeResult } from "../../host/host-probe";
import type { StackRunner } from "../../runtime/stack-runner";
import type { MachineDependencies, Waiting } from "./context";
import type { MachineObject } from "../../api/v1alpha1";
import type { ObjectStore } from "../../runtime/object-store";
import type { NodeView } from "./node-health";
import type { RemediationPolicy } from "./remediation";

export interface MachineStore extends ObjectStore<MachineObject, MachineStatus>, MachineDependencies {
  /** The informer's copy (may lag a write): enough to decide whether to look closer. */
  get(namespace: string, name: string): Promise<MachineObject | undefined>;
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

/** Where the worker's files and services are on the host. */
export interface HostLayout {
  readonly installRoot: string;
  readonly serviceManager: "systemd" | "process" | "none";
}

/** Short SSH operations outside the engine (see host-probe.ts). */
export interface HostOperations {
  probe(conn: HostConnection, layout: HostLayout): Promise<ProbeResult>;
  restartServices(conn: HostConnection, layout: HostLayout, opts?: { stopPods?: boolean }): Promise<void>;
}

export type MachineStacks = Pick<StackRunner, "up" | "destroyAndRemove" | "resources" | "rename">;

/** What an install runs for: the first install, a new catalog, a repair, drift seen on the host, or the kubelet's certificates. */
export type InstallAction = "install" | "upgrade" | "reinstall" | "drift" | "certificates";

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
  /** Overrides of the default repair policy; checked when the reconciler is made (every problem named). */
  readonly remediation?: Partial<RemediationPolicy>;
  /** Told about repairs and installs (metrics). */
  readonly onAction?: (action: InstallAction | "restart-services", result: "success" | "error") => void;
  readonly now?: () => Date;
  /** What the platform lets a Machine ask for (admin-policy.ts): SSH target ranges. Default the built-in policy. */
  readonly policy?: ResolvedAdminPolicy;
}

export const DEFAULT_HEALTH_CHECK_MS = 300_000;

export type { ConditionInput };

/** What the install and health paths share with the reconciler: its options, clock and status writes. */
export interface MachineSteps {
  readonly o: MachineReconcilerOptions;
  readonly now: () => Date;
  status(machine: MachineObject, fields: Partial<MachineStatus>, conditions: ConditionInput[]): Promise<void>;
  waiting(machine: MachineObject, w: Waiting): Promise<{ requeueAfter: number }>;
}

export const machineKey = (machine: MachineObject): string => `${machine.metadata.namespace}/${machine.metadata.name}`;
