/**
 * `kok dev` for real: `up` brings up the meta-cluster's processes and the real node (kubelet +
 * containerd; its workloads are tested in dev-real-node.test.ts), is idempotent and lists
 * everything in status; a taken port and a missing binary are named. Needs root, the toolchain
 * (`npm run toolchain`) and the images; fails, never skips, without them.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientFor, devUp, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";

const MASTERS_AND_SERVICES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "registry", "object store"];

describe("kok dev up: the meta-cluster and its real node", () => {
  let real: DevCluster;
  let upOutput = "";

  beforeAll(async () => {
    real = await newDevCluster();
    upOutput = (await devUp(real)).stdout;
  });

  afterAll(async () => {
    if (!real) return;
    const down = await kok(["dev", "down", ...real.args, "--purge"]);
    if (down.code !== 0) console.error(`kok dev down failed:\n${down.stdout}\n${down.stderr}`);
  });

  it("brings up the meta-cluster and a Ready master node run by a kubelet on containerd", async () => {
    expect(upOutput).toMatch(/kube-apiserver: healthy/);
    expect(upOutput).toMatch(/node kok-dev-node: Ready/);
    const { core } = clientFor(real.kubeconfig);
    const node = await core.readNode({ name: "kok-dev-node" });
    expect(node.metadata?.labels?.["node-role.kubeonkube.io/master"]).toBe("true");
    expect(node.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(Number(node.status?.capacity?.cpu)).toBeGreaterThan(0);
    expect(node.status?.nodeInfo?.kubeletVersion).toBe("v1.36.3");
    expect(node.status?.nodeInfo?.containerRuntimeVersion).toMatch(/^containerd:\/\//);
  });

  it("is idempotent: a second up finds everything running", async () => {
    const again = await devUp(real);
    for (const component of [...MASTERS_AND_SERVICES, "containerd", "kubelet"]) expect(again.stdout).toContain(`${component}: already running`);
  });

  it("status lists every process as healthy", async () => {
    const status = await kok(["dev", "status", ...real.args]);
    expect(status.code).toBe(0);
    for (const name of [...MASTERS_AND_SERVICES, "containerd", "kubelet", "node forwarder"]) {
      expect(status.stdout).toMatch(new RegExp(`^${name} +pid \\d+ +healthy$`, "m"));
    }
  });

  it("env prints the admin kubeconfig export first", async () => {
    const env = await kok(["dev", "env", ...real.args]);
    expect(env.stdout.split("\n")[0]).toBe(`export KUBECONFIG=${real.kubeconfig}`);
  });

  it("refuses a taken port, naming it and what to do", async () => {
    const other = await newDevCluster();
    const result = await kok(["dev", "up", ...other.args, "--port-base", String(real.portBase), "--no-node"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`port ${real.portBase + 2379} (etcd) on 127.0.0.1 is in use`);
    expect(result.stderr).toContain("--port-base");
    rmSync(other.stateDir, { recursive: true, force: true });
  });

  it("names a missing binary and how to build it", async () => {
    const other = await newDevCluster();
    const result = await kok(["dev", "up", ...other.args, "--no-node"], { KOK_TOOLCHAIN_DIR: join(other.stateDir, "no-toolchain") });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/etcd not found at .*no-toolchain\/bin\/etcd: build it with `npm run toolchain`/);
    expect(result.stderr).toMatch(/kube-apiserver not found/);
    rmSync(other.stateDir, { recursive: true, force: true });
  });
});
