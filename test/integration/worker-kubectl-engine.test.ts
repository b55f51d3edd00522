/**
 * The business-cluster side of a WorkerNode through the real engine: drain before a kubelet
 * upgrade, the Ready gate and uncordon after it, and drain + Node removal on delete, run with the
 * toolchain's kubectl against a real kube-apiserver + etcd on 127.0.0.1. The test hosts run no
 * kubelet (serviceManager "none"), so the test registers the Node and reports it Ready through the
 * API itself, as the kubelet would; everything else is real (sshd host, mirror, engine).
 */
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PackageArtifact, WorkerPackages } from "../../src/api/v1alpha1";
import { startMirror, type Mirror } from "../../src/cli/mirror";
import { WorkerNode } from "../../src/components/worker-node";
import { mirrorDirectory, workerArtifacts, type BuiltArtifact } from "../support/artifacts";
import { startBusinessApi, type BusinessApi } from "../support/business-api";
import { startSshHosts, stopSshHosts, type SshHost } from "../support/sshd-hosts";
import { engineStack, requireEngine, type EngineStack } from "../support/worker-engine";

let mirror: Mirror;
let api: BusinessApi;
let hosts: SshHost[] = [];
let target: EngineStack;
let bumped: BuiltArtifact;
const scenario: { packages?: WorkerPackages } = {};

const artifact = (a: BuiltArtifact): PackageArtifact => {
  const served = mirror.artifacts.find((m) => m.name === path.basename(a.file));
  if (!served) throw new Error(`${a.file} is not on the mirror`);
  return { version: a.version, url: served.url, sha256: served.sha256 };
};
const ops = (events: EngineEvent[], op: string) =>
  events.filter((e) => e.resourcePreEvent?.metadata.op === op).map((e) => e.resourcePreEvent!.metadata.urn.split("::").pop()!).sort();
async function stepStdout(name: string): Promise<string> {
  const deployment = (await target.stack.exportStack()).deployment as { resources: { urn: string; outputs?: { stdout?: string } }[] };
  return deployment.resources.find((r) => r.urn.endsWith(`::${name}`))?.outputs?.stdout ?? "";
}

/** Registers the Node and reports it Ready, as its kubelet would. */
function registerReadyNode(name: string): void {
  api.kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name, labels: { "kubernetes.io/hostname": name } } }));
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const condition = { type: "Ready", status: "True", reason: "KubeletReady", message: "reported by the test in place of a kubelet", lastHeartbeatTime: now, lastTransitionTime: now };
  api.kubectl(["patch", "node", name, "--subresource=status", "--type=merge", "-p", JSON.stringify({ status: { conditions: [condition] } })]);
}

let removeMirrorDir: (() => void) | undefined;

beforeAll(async () => {
  requireEngine(["tls-5.3.0"]);
  const artifacts = workerArtifacts();
  const m = mirrorDirectory(artifacts);
  removeMirrorDir = m.remove;
  bumped = m.bumpedKubelet;
  mirror = await startMirror({ dir: m.dir, host: "127.0.0.1", port: 0 });
  api = await startBusinessApi();
  hosts = await startSshHosts(1, "kc");
  scenario.packages = { containerd: artifact(artifacts.containerd), kubelet: artifact(artifacts.kubelet), cni: artifact(artifacts.cni) };
  const host = hosts[0];
  target = await engineStack("kubectl", async () => {
    const node = new WorkerNode("kc", {
      machine: { clusterRef: { name: "it" }, ip: host.ip, hostname: host.name, ssh: { port: host.port, user: host.user, hostKey: host.hostKey } },
      packages: scenario.packages,
      credentials: { privateKey: pulumi.secret(host.privateKey) },
      cluster: { endpoint: api.endpoint, caCertificate: "unused-by-this-test\n", bootstrapToken: pulumi.secret("abcdef.0123456789abcdef"), adminKubeconfig: pulumi.secret(api.adminKubeconfig) },
      installRoot: host.root,
      serviceManager: "none",
      stepProvider: "openssh",
      preflight: { ignore: ["kernel", "swap", "ports"] },
      readyTimeoutSeconds: 60,
    });
    return { observedVersions: node.observedVersions };
  });
});
afterAll(async () => {
  await mirror?.close();
  removeMirrorDir?.();
  target?.remove();
  await api?.stop();
  await stopSshHosts(hosts);
});

describe("WorkerNode kubectl steps against a real kube-apiserver", () => {
  it("gates on Ready and leaves the node schedulable after the install", async () => {
    registerReadyNode("kc-0");
    const result = await target.stack.up();
    expect(result.summary.result).toBe("succeeded");
    expect(await stepStdout("kc-ready")).toContain("node/kc-0 uncordoned");
    expect(api.kubectl(["get", "node", "kc-0", "-o", "jsonpath={.spec.unschedulable}"])).toBe("");
  });

  it("a kubelet bump cordons and drains first, then uncordons once the node is Ready", async () => {
    scenario.packages = { ...scenario.packages!, kubelet: artifact(bumped) };
    const events: EngineEvent[] = [];
    await target.stack.up({ onEvent: (e) => events.push(e) });
    expect(ops(events, "update")).toEqual(["kc-drain", "kc-kubelet", "kc-ready", "kc-verify"]);
    const order = ["kc-drain", "kc-kubelet", "kc-verify", "kc-ready"].map((n) => events.findIndex((e) => e.resourcePreEvent?.metadata.urn.endsWith(`::${n}`)));
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    const drain = await stepStdout("kc-drain");
    expect(drain).toContain("node/kc-0 cordoned");
    expect(drain).toContain("node/kc-0 drained");
    expect(await stepStdout("kc-ready")).toContain("node/kc-0 uncordoned");
    expect(api.kubectl(["get", "node", "kc-0", "-o", "jsonpath={.spec.unschedulable}"])).toBe("");
  });

  it("a second up touches neither the host nor the Node", async () => {
    const events: EngineEvent[] = [];
    const result = await target.stack.up({ onEvent: (e) => events.push(e) });
    expect(Object.keys(result.summary.resourceChanges ?? {})).toEqual(["same"]);
    expect(ops(events, "update")).toEqual([]);
  });

  it("keeps the admin kubeconfig out of the state file", () => {
    const state = readFileSync(path.join(target.backend, ".pulumi", "stacks", "kok-workers-it", "kubectl.json"), "utf8");
    expect(state).toContain("kc-drain");
    expect(state).toContain("ciphertext");
    expect(state.includes("admin-token")).toBe(false);
  });

  it("destroy drains and removes the Node, then cleans the host", async () => {
    await target.stack.destroy();
    expect(() => api.kubectl(["get", "node", "kc-0"])).toThrow(/NotFound|not found/);
    expect(existsSync(path.join(hosts[0].root, "opt/kube-on-kube"))).toBe(false);
  });
});
