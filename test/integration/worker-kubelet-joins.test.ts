/**
 * The whole join, for real: a WorkerNode installs containerd, the toolchain's kubelet v1.36.3 and
 * the CNI plugins on a real sshd host, signs the kubelet's certificate with the cluster CA through
 * @pulumi/tls, starts both daemons (serviceManager "process": the sandbox has no systemd), and the
 * kubelet registers with a real kube-apiserver (Node authorizer, NodeRestriction) and reports
 * Ready; the `ready` step waits for that. Adjustments this sandbox needs, all passed as ordinary
 * arguments: cgroup v1 with cgroupfs (failCgroupV1 false, no QoS cgroups), swap allowed, the
 * kubelet bound to the host's loopback address, and a bridge CNI config written by the test in
 * place of the cluster's network add-on.
 */
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkerNode } from "../../src/components/worker-node";
import type { SshHost } from "../support/sshd-hosts";
import { engineStack, requireEngine, type EngineStack } from "../support/worker-engine";
import { sandboxWorkerArgs, writeTestBridgeCni } from "../support/worker-fixtures";
import { startWorkerTestbed, type WorkerTestbed } from "../support/worker-testbed";

let bed: WorkerTestbed;
let target: EngineStack;
const figures: Record<string, string> = {};

const pidOf = (host: SshHost, service: string) => {
  const file = path.join(host.root, "run/kube-on-kube", `${service}.pid`);
  return existsSync(file) ? Number(readFileSync(file, "utf8").trim()) : undefined;
};
const alive = (pid: number | undefined) => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  requireEngine(["tls-5.3.0"]);
  bed = await startWorkerTestbed({ prefix: "joiner", hosts: 1 });
  const host = bed.hosts[0];
  writeTestBridgeCni(host.root, "kok0", "10.244.7.0/24");
  target = await engineStack("joins", async () => {
    const node = new WorkerNode("joiner", sandboxWorkerArgs({ host, hostname: "joiner-0", packages: bed.packages(), api: bed.api, ca: bed.ca, machine: { idc: "lo-a", labels: { pool: "it" } } }));
    return { observedVersions: node.observedVersions };
  });
});

afterAll(async () => {
  target?.remove();
  await bed?.stop();
  console.log(`kubelet join figures: ${JSON.stringify(figures)}`);
});

describe("a worker joins a real kube-apiserver", () => {
  it("installs, starts containerd and the kubelet, and the Node registers and reports Ready", async () => {
    const started = process.hrtime.bigint();
    const result = await target.stack.up();
    figures.installToReadySeconds = (Number(process.hrtime.bigint() - started) / 1e9).toFixed(1);
    expect(result.summary.result).toBe("succeeded");
    const node = JSON.parse(bed.api.kubectl(["get", "node", "joiner-0", "-o", "json"])) as {
      metadata: { labels: Record<string, string> };
      status: { conditions: { type: string; status: string }[]; nodeInfo: { kubeletVersion: string; containerRuntimeVersion: string } };
    };
    expect(node.status.conditions.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(node.status.nodeInfo.kubeletVersion).toBe("v1.36.3");
    expect(node.status.nodeInfo.containerRuntimeVersion).toBe("containerd://2.4.2");
    expect(node.metadata.labels).toMatchObject({ "topology.kubernetes.io/zone": "lo-a", pool: "it" });
    expect(result.outputs.observedVersions.value).toMatchObject({ kubelet: "v1.36.3" });
    const user = bed.api.kubectl(["auth", "whoami", "--kubeconfig", path.join(bed.hosts[0].root, "etc/kubernetes/kubelet.conf"), "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"]);
    expect(user).toContain("system:node:joiner-0");
    expect(user).toContain("system:nodes");
  });

  it("destroy removes the Node and stops the daemons", async () => {
    const pids = ["kubelet", "containerd"].map((s) => pidOf(bed.hosts[0], s));
    expect(pids.every(alive)).toBe(true);
    await target.stack.destroy();
    expect(() => bed.api.kubectl(["get", "node", "joiner-0"])).toThrow(/NotFound|not found/);
    expect(pids.map(alive)).toEqual([false, false]);
  });
});
