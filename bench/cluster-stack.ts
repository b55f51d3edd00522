/**
 * What the cluster benchmarks share: the Cluster resource they apply, the same inline program run
 * as a raw stack (the Automation API, as a user's own `pulumi up` of it would), the objects that
 * program produced rendered from its state for `kubectl apply`, and polling a Cluster to Ready.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as k8s from "@kubernetes/client-node";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation";
import { API_GROUP, API_VERSION, type ClusterSpec } from "../src/api/v1alpha1";
import { toolchainDir } from "../src/dev/toolchain";
import { clusterProgram } from "../src/program/cluster-program";
import type { DevEnvironment } from "./dev-environment";
import { until } from "./harness";
import { minimalClusterSpec, NAMESPACE } from "./meta-objects";

export function nodePortSpec(nodePort: number): ClusterSpec {
  return minimalClusterSpec({ apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort, port: 6443 } } });
}

/**
 * `nodePortSpec` with masters that request little: the dev node advertises this machine's cores
 * (2), and at the default requests (500m CPU per minimal cluster) a fifth cluster's etcd stays
 * Pending. The rate benchmark packs 20 clusters onto it; both of its sides use this same spec.
 */
export function packedSpec(nodePort: number): ClusterSpec {
  const base = nodePortSpec(nodePort);
  const requests = (cpu: string, memory: string) => ({ requests: { cpu, memory } });
  return {
    ...base,
    etcd: { ...base.etcd, resources: requests("10m", "64Mi") },
    apiServer: { ...base.apiServer, resources: requests("30m", "256Mi") },
    controllerManager: { resources: requests("10m", "64Mi") },
    scheduler: { resources: requests("5m", "32Mi") },
  };
}

export function clusterResource(name: string, spec: ClusterSpec) {
  return { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "Cluster", metadata: { name, namespace: NAMESPACE }, spec };
}

interface ClusterState {
  status?: { phase?: string; lastOperation?: { result?: string; message?: string } };
}

/** Polls a Cluster every 250 ms until Ready; a failed operation ends the wait at once. */
export async function waitReady(env: DevEnvironment, name: string, deadlineMs = 1_200_000): Promise<void> {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(env.kubeconfig);
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  await until(
    `Cluster ${NAMESPACE}/${name} Ready`,
    async () => {
      const c = (await api.getNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, plural: "clusters", namespace: NAMESPACE, name })) as ClusterState;
      if (c.status?.lastOperation?.result === "failed") throw new Error(`Cluster ${name} failed: ${c.status.lastOperation.message}`);
      return c.status?.phase === "Ready" ? true : undefined;
    },
    deadlineMs,
    250,
  );
}

/** Deletes Clusters (the operator destroys their stacks) and waits until they are gone. */
export async function deleteClusters(env: DevEnvironment, names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  env.kubectl("-n", NAMESPACE, "delete", "clusters", ...names, "--wait=false");
  await until("Clusters deleted", () => (names.some((n) => env.kubectl("-n", NAMESPACE, "get", "clusters", "-o", "name").includes(`/${n}\n`)) ? undefined : true), 1_200_000, 1000);
}

/** A stack of the operator's own program for `name`, on its own file backend. */
export async function rawClusterStack(env: DevEnvironment, name: string, spec: ClusterSpec): Promise<Stack> {
  const backend = mkdtempSync(path.join(tmpdir(), "kok-bench-raw-"));
  const engineEnv = env.engineEnv();
  return LocalWorkspace.createOrSelectStack(
    {
      projectName: "kube-on-kube-bench-raw",
      stackName: name,
      program: async () =>
        clusterProgram({ name, spec, namespace: `${NAMESPACE}-${name}`, adminKubeconfigCopy: { namespace: NAMESPACE, name: `${name}-admin-kubeconfig` } }) as unknown as Record<string, unknown>,
    },
    {
      workDir: mkdtempSync(path.join(tmpdir(), "kok-bench-raw-work-")),
      projectSettings: { name: "kube-on-kube-bench-raw", runtime: "nodejs", backend: { url: `file://${backend}` } },
      envVars: engineEnv,
      pulumiCommand: await PulumiCommand.get({ root: toolchainDir() }),
    },
  );
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** Secret values in an exported state are `{ <sig>: <secret>, plaintext: JSON }`: unwrap them. */
function reveal(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reveal);
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (SECRET_SIG in o && typeof o.plaintext === "string") return reveal(JSON.parse(o.plaintext));
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, reveal(v)]));
  }
  return value;
}

/**
 * The meta-cluster objects a stack created, from its state, in the order the engine created them
 * (namespaces first): exactly what `kubectl apply` needs to produce the same masters, with the
 * certificates and keys the engine generated already filled in. The add-ons in the business
 * cluster are not part of this floor (the operator's side deploys them too, a few seconds).
 */
export async function renderedObjects(stack: Stack): Promise<object[]> {
  const state = await stack.exportStack();
  // The meta-cluster's objects only: the add-ons (through the `business-cluster` provider) live in
  // the business cluster, and applied to the meta-cluster they would collide with its own kube-dns.
  const resources = ((state.deployment as { resources?: { type: string; provider?: string; inputs?: Record<string, unknown> }[] }).resources ?? []).filter(
    (r) => r.type.startsWith("kubernetes:") && r.inputs?.kind && r.provider?.includes("::meta-cluster::"),
  );
  const objects = resources.map((r) => reveal(r.inputs) as { kind: string });
  return [...objects.filter((o) => o.kind === "Namespace"), ...objects.filter((o) => o.kind !== "Namespace")];
}

/** `kubectl rollout status` of every Deployment and StatefulSet of a namespace. */
export function waitWorkloads(env: DevEnvironment, namespace: string): void {
  for (const kind of ["statefulsets", "deployments"]) {
    const names = env.kubectl("-n", namespace, "get", kind, "-o", "name").split("\n").filter(Boolean);
    for (const name of names) env.kubectl("-n", namespace, "rollout", "status", name, "--timeout=900s");
  }
}
