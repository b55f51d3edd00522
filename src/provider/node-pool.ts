/**
 * `construct` of NodePool for the component provider (provider.ts). Machines, catalog and options
 * must be known (the rollout is planned from them before anything is registered); credentials,
 * the pool's and each machine's, and the cluster's fields may be outputs and stay secret.
 */
import * as pulumi from "@pulumi/pulumi";
import type { ClusterPackageVersionSpec, MachineSpec, WorkerPackages } from "../api/v1alpha1";
import { NodePool, type NodePoolArgs, type NodePoolMachine } from "../components/node-pool";
import type { WorkerNodeArgs } from "../components/worker-node";
import { known } from "./known";
import { clusterOf, fieldsOf } from "./worker-node";

type Inputs = Record<string, unknown>;
const CREDENTIAL_SECRETS = ["privateKey", "password"];

/** The schema has maxUnavailable as a string (IntOrPercent): "2" is the count 2, "10%" stays. */
function withMaxUnavailable(spec: ClusterPackageVersionSpec | undefined): ClusterPackageVersionSpec | undefined {
  const max = spec?.rollout?.maxUnavailable;
  if (typeof max !== "string" || !/^\d+$/.test(max)) return spec;
  return { ...spec!, rollout: { ...spec!.rollout, maxUnavailable: Number(max) } };
}

async function machinesOf(value: unknown): Promise<NodePoolMachine[]> {
  // The list may come whole as one output (secret credentials inside): then its values must be known.
  const list = pulumi.Output.isInstance(value) ? ((await known<Record<string, unknown>[]>("machines", value)) ?? []) : ((value ?? []) as unknown[]);
  return Promise.all(
    list.map(async (item, i) => {
      const m = (pulumi.Output.isInstance(item) ? await known<Record<string, unknown>>(`machines[${i}]`, item) : item) as Record<string, unknown>;
      return {
        name: (await known<string>(`machines[${i}].name`, m.name)) as string,
        spec: (await known<MachineSpec>(`machines[${i}].spec`, m.spec)) as MachineSpec,
        credentials: (await fieldsOf(`machines[${i}].credentials`, m.credentials, CREDENTIAL_SECRETS)) as WorkerNodeArgs["credentials"] | undefined,
        installRoot: await known<string>(`machines[${i}].installRoot`, m.installRoot),
      };
    }),
  );
}

export async function constructNodePool(name: string, inputs: Inputs, opts: pulumi.ComponentResourceOptions): Promise<pulumi.provider.ConstructResult> {
  const args: NodePoolArgs = {
    machines: await machinesOf(inputs.machines),
    packageVersion: withMaxUnavailable(await known<ClusterPackageVersionSpec>("packageVersion", inputs.packageVersion)) as ClusterPackageVersionSpec,
    previousPackages: await known<WorkerPackages>("previousPackages", inputs.previousPackages),
    resume: await known<boolean>("resume", inputs.resume),
    credentials: (await fieldsOf("credentials", inputs.credentials, CREDENTIAL_SECRETS)) as WorkerNodeArgs["credentials"],
    cluster: await clusterOf(inputs.cluster),
    node: await known<NodePoolArgs["node"]>("node", inputs.node),
  };
  const pool = new NodePool(name, args, opts);
  return { urn: pool.urn, state: { observedVersions: pool.observedVersions } };
}
