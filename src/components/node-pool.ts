/**
 * `NodePool`: many WorkerNodes under one ClusterPackageVersion, rolled out as a gray release.
 * The planner's batches (canary first, then `maxUnavailable` at a time) become dependsOn chains:
 * every step of a machine in batch n waits for the health gates of batch n-1 (`ready` when an
 * admin kubeconfig is given, else `verify`). A failed step fails its machine; the engine then
 * skips everything that depends on it, so the rollout halts at that batch while the other machines
 * of the same batch finish. The engine's error names the resource: `<pool>-<machine>-<step>`.
 */
import * as pulumi from "@pulumi/pulumi";
import {
  SpecValidationError,
  validateClusterPackageVersionSpec,
  validateNodePool,
  type ClusterPackageVersionSpec,
  type MachineSpec,
  type ObservedVersions,
  type Problem,
  type WorkerPackages,
} from "../api/v1alpha1";
import { planRollout, type RolloutBatch } from "./rollout-plan";
import { WorkerNode, workerNodeProblems, type WorkerNodeArgs } from "./worker-node";
import { componentType, withLegacyAlias } from "./type-tokens";

export interface NodePoolMachine {
  /** Unique in the pool; the WorkerNode is named `<pool>-<name>`. */
  readonly name: string;
  readonly spec: MachineSpec;
  /** Overrides the pool's credentials for this machine. */
  readonly credentials?: WorkerNodeArgs["credentials"];
  /** Overrides the pool's installRoot for this machine (test hosts each have their own). */
  readonly installRoot?: string;
}

export interface NodePoolArgs {
  readonly machines: readonly NodePoolMachine[];
  /** The catalog and its rollout (a ClusterPackageVersion's spec). */
  readonly packageVersion: ClusterPackageVersionSpec;
  /**
   * The catalog machines outside the canary keep while `rollout.pauseAfterCanary` holds the rollout.
   * Required with pauseAfterCanary (the operator fills it from the machines' observed versions).
   */
  readonly previousPackages?: WorkerPackages;
  /** Lifts `pauseAfterCanary`: every batch gets the new catalog. Default false. */
  readonly resume?: boolean;
  readonly credentials: WorkerNodeArgs["credentials"];
  readonly cluster: WorkerNodeArgs["cluster"];
  /** Options passed to every WorkerNode. */
  readonly node?: Pick<WorkerNodeArgs, "installRoot" | "serviceManager" | "stepProvider" | "allowUnknownHostKey" | "kubelet" | "containerd" | "preflight" | "certificateValidityHours" | "readyTimeoutSeconds">;
}

/** Every problem of the pool's arguments, including each machine's, with paths. */
export function nodePoolProblems(args: NodePoolArgs): Problem[] {
  const problems = validateClusterPackageVersionSpec(args.packageVersion, "packageVersion");
  const rollout = args.packageVersion?.rollout;
  problems.push(...validateNodePool(args.machines ?? [], rollout, "machines").map((p) => (p.path.startsWith("rollout") ? { ...p, path: `packageVersion.${p.path}` } : p)));
  if (rollout?.haltOnFailure === false) {
    problems.push({ path: "packageVersion.rollout.haltOnFailure", message: "false is not supported by NodePool: the engine skips whatever depends on a failed machine, so later batches always halt" });
  }
  if (rollout?.pauseAfterCanary && !args.resume && args.previousPackages === undefined) {
    problems.push({ path: "previousPackages", message: "is required with rollout.pauseAfterCanary: the machines after the canary stay on it until resume" });
  }
  (args.machines ?? []).forEach((m, i) => {
    const nodeProblems = workerNodeProblems({ ...args.node, machine: m.spec, packages: args.packageVersion?.packages, credentials: m.credentials ?? args.credentials, cluster: args.cluster, installRoot: m.installRoot ?? args.node?.installRoot });
    problems.push(...nodeProblems.filter((p) => p.path.startsWith("machine")).map((p) => ({ ...p, path: `machines[${i}].spec${p.path.slice("machine".length)}` })));
    if (i === 0) problems.push(...nodeProblems.filter((p) => !p.path.startsWith("machine") && !p.path.startsWith("packages")));
  });
  return problems;
}

export class NodePool extends pulumi.ComponentResource {
  readonly plan: readonly RolloutBatch[];
  readonly nodes: Readonly<Record<string, WorkerNode>>;
  /** Versions read back from each host, by machine name. */
  readonly observedVersions: pulumi.Output<Record<string, ObservedVersions>>;

  constructor(name: string, args: NodePoolArgs, opts?: pulumi.ComponentResourceOptions) {
    const problems = nodePoolProblems(args);
    if (problems.length > 0) throw new SpecValidationError(`NodePool ${name}`, problems);
    super(componentType("NodePool"), name, {}, withLegacyAlias("NodePool", opts));
    const { plan, nodes } = createNodePool(name, this, args);
    this.plan = plan;
    this.nodes = nodes;
    const names = Object.keys(nodes);
    this.observedVersions = pulumi
      .all(names.map((n) => nodes[n].observedVersions))
      .apply((versions) => Object.fromEntries(names.map((n, i) => [n, versions[i]])));
    this.registerOutputs({ observedVersions: this.observedVersions, plan: this.plan });
  }
}

function createNodePool(name: string, parent: pulumi.Resource, args: NodePoolArgs) {
  const rollout = args.packageVersion.rollout ?? {};
  const byName = new Map(args.machines.map((m) => [m.name, m]));
  const plan = planRollout(args.machines.map((m) => ({ name: m.name, labels: m.spec.labels })), rollout);
  const paused = rollout.pauseAfterCanary === true && !args.resume;
  const nodes: Record<string, WorkerNode> = {};
  let gates: pulumi.Resource[] = [];
  for (const batch of plan) {
    const packages = paused && batch.kind !== "canary" ? (args.previousPackages as WorkerPackages) : args.packageVersion.packages;
    const batchNodes = batch.machines.map((machineName) => {
      const m = byName.get(machineName) as NodePoolMachine;
      const node = new WorkerNode(
        `${name}-${m.name}`,
        {
          ...args.node,
          machine: m.spec,
          packages,
          // The catalog's runtime settings; unset ones keep WorkerNode's defaults (and its step triggers).
          ...(args.packageVersion.sandboxImage !== undefined || args.packageVersion.registryMirrors !== undefined
            ? { runtime: { sandboxImage: args.packageVersion.sandboxImage, registryMirrors: args.packageVersion.registryMirrors } }
            : {}),
          credentials: m.credentials ?? args.credentials,
          cluster: args.cluster,
          installRoot: m.installRoot ?? args.node?.installRoot,
          after: gates,
        },
        { parent },
      );
      nodes[m.name] = node;
      return node;
    });
    gates = batchNodes.map((n) => n.healthGate);
  }
  return { plan, nodes };
}
