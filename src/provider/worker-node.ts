/**
 * `construct` of WorkerNode for the component provider (provider.ts). The machine, packages and
 * options must be known (they are validated before anything is registered); the credentials and
 * the cluster's fields may be outputs of other resources (a ControlPlane's endpoint, CA, key and
 * trust bundle) and keep their secrecy. The resources a node waits for come as the `dependsOn` option.
 */
import * as pulumi from "@pulumi/pulumi";
import type { MachineSpec, WorkerPackages } from "../api/v1alpha1";
import { WorkerNode, type WorkerNodeArgs } from "../components/worker-node";
import { known } from "./known";

type Inputs = Record<string, unknown>;

/** Which fields of an object input are given, each as an input, secret ones kept secret. */
export async function fieldsOf(property: string, value: unknown, secretFields: readonly string[]): Promise<Record<string, pulumi.Input<unknown>> | undefined> {
  if (value === undefined) return undefined;
  if (!pulumi.Output.isInstance(value)) return value as Record<string, pulumi.Input<unknown>>;
  // The whole object came as one output (it was secret or had dependencies as a whole): its
  // fields must be known to tell which are set; the secret ones are made secret again.
  const plain = (await known<Record<string, unknown>>(property, value)) ?? {};
  return Object.fromEntries(Object.entries(plain).map(([k, v]) => [k, secretFields.includes(k) ? pulumi.secret(v) : v]));
}

/**
 * The `cluster` input: its credentials may be outputs (and stay secret), but the network fields
 * must be known, as the kubelet's config is written from them at construct time.
 */
export async function clusterOf(value: unknown): Promise<WorkerNodeArgs["cluster"]> {
  const cluster = (await fieldsOf("cluster", value, ["caPrivateKey", "bootstrapToken", "adminKubeconfig"])) as WorkerNodeArgs["cluster"];
  if (!cluster) return cluster;
  const serviceCIDR = await known<string>("cluster.serviceCIDR", cluster.serviceCIDR);
  const clusterDomain = await known<string>("cluster.clusterDomain", cluster.clusterDomain);
  return { ...cluster, serviceCIDR, clusterDomain };
}

export async function constructWorkerNode(name: string, inputs: Inputs, opts: pulumi.ComponentResourceOptions): Promise<pulumi.provider.ConstructResult> {
  const credentials = (await fieldsOf("credentials", inputs.credentials, ["privateKey", "password"])) as WorkerNodeArgs["credentials"];
  const cluster = await clusterOf(inputs.cluster);
  const dependsOn = opts.dependsOn === undefined ? [] : Array.isArray(opts.dependsOn) ? opts.dependsOn : [opts.dependsOn];
  const args: WorkerNodeArgs = {
    machine: (await known<MachineSpec>("machine", inputs.machine)) as MachineSpec,
    packages: await known<WorkerPackages>("packages", inputs.packages),
    credentials,
    cluster,
    installRoot: await known<string>("installRoot", inputs.installRoot),
    serviceManager: await known<WorkerNodeArgs["serviceManager"]>("serviceManager", inputs.serviceManager),
    stepProvider: await known<WorkerNodeArgs["stepProvider"]>("stepProvider", inputs.stepProvider),
    allowUnknownHostKey: await known<boolean>("allowUnknownHostKey", inputs.allowUnknownHostKey),
    kubelet: await known<WorkerNodeArgs["kubelet"]>("kubelet", inputs.kubelet),
    runtime: await known<WorkerNodeArgs["runtime"]>("runtime", inputs.runtime),
    containerd: await known<WorkerNodeArgs["containerd"]>("containerd", inputs.containerd),
    preflight: await known<WorkerNodeArgs["preflight"]>("preflight", inputs.preflight),
    certificateValidityHours: await known<number>("certificateValidityHours", inputs.certificateValidityHours),
    readyTimeoutSeconds: await known<number>("readyTimeoutSeconds", inputs.readyTimeoutSeconds),
    reinstall: await known<number>("reinstall", inputs.reinstall),
    renewal: await known<number>("renewal", inputs.renewal),
    // The first step waits for what the node depends on, as NodePool's batches do.
    after: dependsOn as pulumi.Input<pulumi.Resource>[],
  };
  const node = new WorkerNode(name, args, opts);
  return { urn: node.urn, state: { nodeName: node.nodeName, observedVersions: node.observedVersions, binaryVersions: node.binaryVersions, certificates: node.certificates } };
}
