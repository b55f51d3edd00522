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
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMirror, type Mirror } from "../../src/cli/mirror";
import { WorkerNode } from "../../src/components/worker-node";
import { mirrorDirectory, workerArtifacts, type BuiltArtifact, TOOLCHAIN_KUBELET } from "../support/artifacts";
import { startBusinessApi, type BusinessApi } from "../support/business-api";
import { startSshHosts, stopSshHosts, type SshHost } from "../support/sshd-hosts";
import { engineStack, requireEngine, type EngineStack } from "../support/worker-engine";
import { sandboxWorkerArgs, servedArtifact, testClusterCa, writeTestBridgeCni } from "../support/worker-fixtures";
import { stopSandboxServices } from "../../src/dev/sandbox-fleet";

let mirror: Mirror;
let api: BusinessApi;
let hosts: SshHost[] = [];
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

let removeMirrorDir: (() => void) | undefined;

beforeAll(async () => {
  requireEngine(["tls-5.3.0"]);
  if (!existsSync(TOOLCHAIN_KUBELET)) throw new Error(`${TOOLCHAIN_KUBELET} is missing: build it with \`npm run toolchain\``);
  const artifacts = workerArtifacts();
  const mirrorDir = mirrorDirectory(artifacts);
  removeMirrorDir = mirrorDir.remove;
  mirror = await startMirror({ dir: mirrorDir.dir, host: "127.0.0.1", port: 0 });
  const artifact = (a: BuiltArtifact) => servedArtifact(mirror, a);
  const ca = testClusterCa(mkdtempSync(path.join(tmpdir(), "kok-ca-")));
  api = await startBusinessApi({ ca });
  hosts = await startSshHosts(1, "joiner");
  const host = hosts[0];
  writeTestBridgeCni(host.root, "kok0", "10.244.7.0/24");
  const packages = { containerd: artifact(artifacts.containerd), runc: artifact(artifacts.runc), kubelet: artifact(artifacts.kubelet), cni: artifact(artifacts.cni) };
  target = await engineStack("joins", async () => {
    const node = new WorkerNode("joiner", sandboxWorkerArgs({ host, hostname: "joiner-0", packages, api, ca, machine: { idc: "lo-a", labels: { pool: "it" } } }));
    return { observedVersions: node.observedVersions };
  });
});

afterAll(async () => {
  // The product's own stop: kubelet, then containerd, waited for, and their mounts under the root.
  for (const host of hosts) await stopSandboxServices(host.root);
  await mirror?.close();
  removeMirrorDir?.();
  target?.remove();
  await api?.stop();
  await stopSshHosts(hosts);
  console.log(`kubelet join figures: ${JSON.stringify(figures)}`);
});

describe("a worker joins a real kube-apiserver", () => {
  it("installs, starts containerd and the kubelet, and the Node registers and reports Ready", async () => {
    const started = process.hrtime.bigint();
    const result = await target.stack.up();
    figures.installToReadySeconds = (Number(process.hrtime.bigint() - started) / 1e9).toFixed(1);
    expect(result.summary.result).toBe("succeeded");
    const node = JSON.parse(api.kubectl(["get", "node", "joiner-0", "-o", "json"])) as {
      metadata: { labels: Record<string, string> };
      status: { conditions: { type: string; status: string }[]; nodeInfo: { kubeletVersion: string; containerRuntimeVersion: string } };
    };
    expect(node.status.conditions.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(node.status.nodeInfo.kubeletVersion).toBe("v1.36.3");
    expect(node.status.nodeInfo.containerRuntimeVersion).toBe("containerd://2.4.2");
    expect(node.metadata.labels).toMatchObject({ "topology.kubernetes.io/zone": "lo-a", pool: "it" });
    expect(result.outputs.observedVersions.value).toMatchObject({ kubelet: "v1.36.3" });
    const user = api.kubectl(["auth", "whoami", "--kubeconfig", path.join(hosts[0].root, "etc/kubernetes/kubelet.conf"), "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"]);
    expect(user).toContain("system:node:joiner-0");
    expect(user).toContain("system:nodes");
  });

  it("destroy removes the Node and stops the daemons", async () => {
    const pids = ["kubelet", "containerd"].map((s) => pidOf(hosts[0], s));
    expect(pids.every(alive)).toBe(true);
    await target.stack.destroy();
    expect(() => api.kubectl(["get", "node", "joiner-0"])).toThrow(/NotFound|not found/);
    expect(pids.map(alive)).toEqual([false, false]);
  });
});
