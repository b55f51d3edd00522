/**
 * The operator's front door, end to end: `kubectl apply` of a Cluster resource on the local
 * meta-cluster → the operator (in this process, real engine, real informer, real Lease) runs the
 * stack → the masters really run on the dev node → status Ready with the endpoint, the admin
 * kubeconfig Secret next to the resource works, Events and metrics tell what happened; deleting the
 * Cluster destroys the stack and its namespace before the finalizer lets go.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { toolchainBinary, toolchainEngineEnv } from "../../src/dev/toolchain";
import { startOperator, type RunningOperator } from "../../src/operator/operator";
import { devUp, eventually, installCrds, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";
import { minimalSpec } from "../support/specs";

const NODE_PORT = 31644;
// Ports and pod range found free when the suite starts (a concurrent run must not collide).
let cluster: DevCluster;
const work = mkdtempSync(join(tmpdir(), "kok-operator-e2e-"));
const kubectl = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args], { encoding: "utf8" });
const json = <T>(...args: string[]) => JSON.parse(kubectl(...args, "-o", "json")) as T;

interface ClusterJson {
  metadata: { generation: number; finalizers?: string[] };
  status?: {
    phase?: string;
    observedGeneration?: number;
    endpoint?: string;
    version?: string;
    adminKubeconfigSecret?: string;
    certificatesExpireAt?: string;
    conditions?: { type: string; status: string; reason: string }[];
    lastOperation?: { kind: string; result: string; changes?: Record<string, number> };
  };
}

let operator: RunningOperator | undefined;

beforeAll(async () => {
  cluster = await newDevCluster();
  await devUp(cluster);
  installCrds(cluster, work);
  kubectl("create", "namespace", "fleet");
  mkdirSync(join(work, "state"), { recursive: true });
  operator = await startOperator({
    kubeconfigPath: cluster.kubeconfig,
    backendUrl: `file://${join(work, "state")}`,
    workRoot: join(work, "work"),
    // Short, so the drift test sees a sweep; nothing asserts how long anything took.
    resyncMs: 20_000,
    concurrency: 2,
    metricsAddr: "127.0.0.1:0",
    leaderElectionNamespace: "kube-system",
    engineEnv: toolchainEngineEnv("kok-operator-e2e"),
    log: () => undefined,
  });
});

afterAll(async () => {
  await operator?.stop();
  if (cluster) await kok(["dev", "down", ...cluster.args, "--purge"]);
});

describe("the operator reconciles a Cluster resource", () => {
  it("brings a Cluster applied with kubectl to Ready, with the endpoint and a working admin kubeconfig", async () => {
    const spec = minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort: NODE_PORT, port: 6443 } } });
    const manifest = join(work, "cluster.yaml");
    writeFileSync(manifest, stringify({ apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name: "ops", namespace: "fleet" }, spec }));
    kubectl("apply", "-f", manifest);

    const ready = await eventually(
      "Cluster fleet/ops Ready",
      async () => {
        const c = json<ClusterJson>("-n", "fleet", "get", "cluster", "ops");
        if (c.status?.lastOperation?.result === "failed") throw new Error(`the operator reported a failure: ${JSON.stringify(c.status)}`);
        return c.status?.phase === "Ready" ? c : undefined;
      },
      1_200_000,
    );
    expect(ready.metadata.finalizers).toContain("kubeonkube.io/cluster-stack");
    expect(ready.status).toMatchObject({
      observedGeneration: ready.metadata.generation,
      endpoint: `https://127.0.0.1:${NODE_PORT}`,
      version: "v1.36.3",
      adminKubeconfigSecret: "ops-admin-kubeconfig",
      lastOperation: { kind: "up", result: "succeeded" },
    });
    expect(ready.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "True" });

    const secret = json<{ data: { kubeconfig: string } }>("-n", "fleet", "get", "secret", "ops-admin-kubeconfig");
    const adminKubeconfig = join(work, "ops.kubeconfig");
    writeFileSync(adminKubeconfig, Buffer.from(secret.data.kubeconfig, "base64"), { mode: 0o600 });
    const readyz = execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", adminKubeconfig, "get", "--raw", "/readyz"], { encoding: "utf8" });
    expect(readyz.trim()).toBe("ok");
  });

  it("shows the printer columns, records Events and counts reconciles in its metrics", async () => {
    const table = kubectl("-n", "fleet", "get", "kc", "ops");
    expect(table.split("\n")[0].split(/\s+/).filter(Boolean)).toEqual(["NAME", "MODE", "VERSION", "PHASE", "ENDPOINT", "AGE"]);
    expect(table).toContain(`minimal   v1.36.3   Ready   https://127.0.0.1:${NODE_PORT}`);
    const events = json<{ items: { reason: string; involvedObject: { name: string } }[] }>("-n", "fleet", "get", "events");
    expect(events.items.filter((e) => e.involvedObject.name === "ops").map((e) => e.reason)).toContain("Applied");
    const { host, port } = operator!.server.address;
    const metrics = await (await fetch(`http://${host}:${port}/metrics`)).text();
    expect(metrics).toMatch(/kube_on_kube_reconciles_total\{kind="Cluster",result="requeue"\} [1-9]/);
  });

  it("puts back a master Deployment deleted behind its back, after a Drifted Event", async () => {
    kubectl("-n", "fleet-ops", "delete", "deployment", "ops-scheduler");
    await eventually(
      "Deployment fleet-ops/ops-scheduler restored and available",
      async () => {
        const d = json<{ status?: { availableReplicas?: number } }>("-n", "fleet-ops", "get", "deployment", "ops-scheduler");
        return (d.status?.availableReplicas ?? 0) >= 1 ? true : undefined;
      },
      600_000,
    );
    const events = json<{ items: { reason: string; message: string; involvedObject: { name: string } }[] }>("-n", "fleet", "get", "events");
    const drifted = events.items.find((e) => e.involvedObject.name === "ops" && e.reason === "Drifted");
    expect(drifted?.message).toContain("1 to create");
    // The Deployment is back before the correcting `up` has finished and written the status.
    await eventually("Drifted=False after the correction", async () => {
      const c = json<ClusterJson>("-n", "fleet", "get", "cluster", "ops");
      return c.status?.conditions?.find((x) => x.type === "Drifted")?.status === "False" && c.status.phase === "Ready" ? true : undefined;
    });
  });

  it("rejects an invalid Cluster at the apiserver, before the operator sees it", () => {
    const bad = join(work, "bad.yaml");
    writeFileSync(bad, stringify({ apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name: "bad", namespace: "fleet" }, spec: { ...minimalSpec(), etcd: { version: "3.6.16", replicas: 2, storage: {} } } }));
    let message = "";
    try {
      kubectl("apply", "-f", bad);
    } catch (e) {
      message = String((e as { stderr?: string }).stderr ?? e);
    }
    expect(message).toContain("spec.etcd.replicas must be odd");
    expect(message).toContain("set exactly one of claimTemplate or volumeSource");
  });

  it("destroys the stack and the masters' namespace when the Cluster is deleted", async () => {
    kubectl("-n", "fleet", "delete", "cluster", "ops", "--wait=false");
    await eventually(
      "Cluster fleet/ops gone",
      async () => (kubectl("-n", "fleet", "get", "clusters", "-o", "name").includes("cluster.kubeonkube.io/ops") ? undefined : true),
      900_000,
    );
    await eventually("namespace fleet-ops gone", async () => (kubectl("get", "namespaces", "-o", "name").includes("namespace/fleet-ops") ? undefined : true), 300_000);
    expect(kubectl("-n", "fleet", "get", "secrets", "-o", "name")).not.toContain("ops-admin-kubeconfig");
    const stacks = join(work, "state", ".pulumi", "stacks");
    const remaining = existsSync(stacks) ? readdirSync(stacks, { recursive: true }).map(String).filter((f) => f.endsWith(".json")) : [];
    expect(remaining).toEqual([]);
  });
});
