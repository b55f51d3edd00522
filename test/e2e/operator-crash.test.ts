/**
 * Crash safety, for real: the operator runs as its own process (`kok operator`), is killed with
 * SIGKILL — its Pulumi CLI children included — in the middle of a Cluster's first `pulumi up`,
 * and a new operator process takes over. It must clear the dead process's stack lock and pending
 * operations before updating, and converge: the Cluster Ready, each master object exactly once.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { toolchainBinary, toolchainEngineEnv } from "../../src/dev/toolchain";
import { devUp, eventually, installCrds, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";
import { minimalSpec } from "../support/specs";

const REPO = resolve(__dirname, "..", "..");
let cluster: DevCluster;
const work = mkdtempSync(join(tmpdir(), "kok-crash-e2e-"));
const kubectl = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args], { encoding: "utf8" });

interface ClusterJson {
  status?: { phase?: string; lastOperation?: { result?: string } };
}

/** `kok operator` in its own process group, so a kill takes its engine processes down with it. */
function startOperatorProcess(): ChildProcess {
  const child = spawn(
    join(REPO, "node_modules", ".bin", "tsx"),
    [join(REPO, "src", "cli", "main.ts"), "operator", "--kubeconfig", cluster.kubeconfig, "--state-dir", join(work, "operator"), "--backend-url", `file://${join(work, "state")}`, "--metrics-addr", "127.0.0.1:0", "--resync-interval", "30s", "--leader-election-namespace", "kube-system"],
    {
      detached: true,
      stdio: ["ignore", "ignore", "inherit"],
      env: toolchainEngineEnv("kok-crash-e2e"),
    },
  );
  return child;
}

function killGroup(child: ChildProcess): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.pid === undefined) return done();
    child.once("exit", () => done());
    process.kill(-child.pid, "SIGKILL");
  });
}

let operator: ChildProcess | undefined;

beforeAll(async () => {
  cluster = await newDevCluster();
  await devUp(cluster);
  installCrds(cluster, work);
  kubectl("create", "namespace", "fleet");
  mkdirSync(join(work, "state"), { recursive: true });
});

afterAll(async () => {
  if (operator) await killGroup(operator);
  if (cluster) await kok(["dev", "down", ...cluster.args, "--purge"]);
});

describe("an operator killed in the middle of an update", () => {
  it("is replaced by one that clears the stale lock and pending operations, then converges", async () => {
    operator = startOperatorProcess();
    const spec = minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort: 31645, port: 6443 } } });
    const manifest = join(work, "cluster.yaml");
    writeFileSync(manifest, stringify({ apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name: "crash", namespace: "fleet" }, spec }));
    kubectl("apply", "-f", manifest);

    // Mid-update: the etcd StatefulSet exists (the update is running), the apiserver does not yet.
    await eventually("the first update half way", async () => (kubectl("-n", "fleet-crash", "get", "statefulsets", "-o", "name").includes("crash-etcd") ? true : undefined), 600_000);
    await killGroup(operator);
    const locks = execFileSync("find", [join(work, "state", ".pulumi", "locks"), "-name", "*.json"], { encoding: "utf8" }).trim();
    expect(locks, "the killed update left its lock").not.toBe("");

    operator = startOperatorProcess();
    const ready = await eventually(
      "Cluster fleet/crash Ready after the restart",
      async () => {
        const c = JSON.parse(kubectl("-n", "fleet", "get", "cluster", "crash", "-o", "json")) as ClusterJson;
        return c.status?.phase === "Ready" && c.status.lastOperation?.result === "succeeded" ? c : undefined;
      },
      1_200_000,
    );
    expect(ready.status?.phase).toBe("Ready");
    // Nothing duplicated or orphaned: each master object once, in the cluster's namespace.
    expect(kubectl("-n", "fleet-crash", "get", "statefulsets,deployments", "-o", "name").trim().split("\n").sort()).toEqual([
      "deployment.apps/crash-apiserver",
      "deployment.apps/crash-controller-manager",
      "deployment.apps/crash-scheduler",
      "statefulset.apps/crash-etcd",
    ]);
    expect(execFileSync("find", [join(work, "state", ".pulumi", "locks"), "-name", "*.json"], { encoding: "utf8" }).trim()).toBe("");
  });
});
