/**
 * NodePool + WorkerNode through the real Pulumi engine (Automation API, inline program, file://
 * backend) against real sshd hosts on loopback and a real HTTP mirror of Debian-built artifacts.
 * Steps run through the OpenSSH client (stepProvider "openssh"): the @pulumi/command plugin cannot
 * be built on these machines (docs/toolchain.md). The hosts have no systemd, so serviceManager is
 * "none" (units are written, nothing is started) and the kernel, swap and port checks of preflight
 * are reported as warnings. The kubelet's client certificate is signed by @pulumi/tls (its plugin
 * is built by the toolchain). Everything else is the real thing.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { EngineEvent, UpResult } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PackageArtifact, WorkerPackages } from "../../src/api/v1alpha1";
import { startMirror, type Mirror } from "../../src/cli/mirror";
import { NodePool } from "../../src/components/node-pool";
import { WorkerNode } from "../../src/components/worker-node";
import { mirrorDirectory, workerArtifacts, type BuiltArtifact, type WorkerArtifacts } from "../support/artifacts";
import { startSshHosts, startSshd, stopSshHosts, stopSshd, sshRun, type SshHost } from "../support/sshd-hosts";
import { engineStack, requireEngine, type EngineStack } from "../support/worker-engine";

const BOOTSTRAP_TOKEN = "abcdef.0123456789abcdef";
let artifacts: WorkerArtifacts;
let bumped: BuiltArtifact;
let mirror: Mirror;
let hosts: SshHost[];
let stranger: SshHost[];
let caCertificate: string;
let caKey: string;
let pool: EngineStack;
let caDir: string;
const logs: string[] = [];
const figures: Record<string, string> = {};

const artifact = (a: BuiltArtifact, override: Partial<PackageArtifact> = {}): PackageArtifact => {
  const served = mirror.artifacts.find((m) => m.name === path.basename(a.file));
  if (!served) throw new Error(`${a.file} is not on the mirror`);
  return { version: a.version, url: served.url, sha256: served.sha256, ...override };
};
const scenario: { packages?: WorkerPackages } = {};
const machineOf = (h: SshHost, hostKey = h.hostKey) => ({
  clusterRef: { name: "it" },
  ip: h.ip,
  hostname: h.name,
  idc: "lo-a",
  labels: { pool: "it" },
  ssh: { port: h.port, user: h.user, hostKey },
});
const nodeOptions = { serviceManager: "none", stepProvider: "openssh", preflight: { ignore: ["kernel", "swap", "ports"] } } as const;
const cluster = () => ({ endpoint: "https://127.0.0.1:6443", caCertificate, caPrivateKey: pulumi.secret(caKey) });

async function up(target: EngineStack): Promise<{ result: UpResult; events: EngineEvent[]; seconds: number }> {
  const events: EngineEvent[] = [];
  const started = process.hrtime.bigint();
  const result = await target.stack.up({ onEvent: (e) => events.push(e), onOutput: (o) => logs.push(o) });
  return { result, events, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}
const ops = (events: EngineEvent[], op: string) =>
  events.filter((e) => e.resourcePreEvent?.metadata.op === op).map((e) => e.resourcePreEvent!.metadata.urn.split("::").pop()!).sort();
const downloads = () => mirror.downloads;
const currentKubelet = (h: SshHost) => readlinkSync(path.join(h.root, "opt/kube-on-kube/kubelet/current"));
const versionDir = (a: PackageArtifact) => `${a.version}-${a.sha256.slice(0, 12)}`;

let removeMirrorDir: (() => void) | undefined;

beforeAll(async () => {
  requireEngine(["tls-5.3.0"]);
  artifacts = workerArtifacts();
  const m = mirrorDirectory(artifacts);
  removeMirrorDir = m.remove;
  bumped = m.bumpedKubelet;
  mirror = await startMirror({ dir: m.dir, host: "127.0.0.1", port: 0 });
  const ca = mkdtempSync(path.join(tmpdir(), "kok-ca-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path.join(ca, "ca.key"), "-out", path.join(ca, "ca.crt"), "-subj", "/CN=kubernetes", "-days", "1"], { stdio: "pipe" });
  caCertificate = readFileSync(path.join(ca, "ca.crt"), "utf8");
  caKey = readFileSync(path.join(ca, "ca.key"), "utf8");
  caDir = ca;
  hosts = await startSshHosts(3, "pool");
  stranger = await startSshHosts(1, "stranger");
  scenario.packages = { containerd: artifact(artifacts.containerd), runc: artifact(artifacts.runc), kubelet: artifact(artifacts.kubelet), cni: artifact(artifacts.cni) };
  pool = await engineStack("pool", async () => {
    const p = new NodePool("pool", {
      machines: hosts.map((h) => ({ name: h.name, spec: machineOf(h), credentials: { privateKey: pulumi.secret(h.privateKey) }, installRoot: h.root })),
      packageVersion: { clusterRef: { name: "it" }, packages: scenario.packages!, rollout: { canary: { count: 1 }, maxUnavailable: 1 } },
      credentials: {},
      cluster: cluster(),
      node: nodeOptions,
    });
    return { observedVersions: p.observedVersions };
  });
});

afterAll(async () => {
  await mirror?.close();
  removeMirrorDir?.();
  pool?.remove();
  await stopSshHosts([...(hosts ?? []), ...(stranger ?? [])]);
  console.log(`worker engine figures: ${JSON.stringify(figures)} (kubelet: ${artifacts?.kubeletSource})`);
});

describe("NodePool through the real engine", () => {
  it("installs a fresh pool of three hosts, canary first, and reads the versions back", async () => {
    const { result, events, seconds } = await up(pool);
    figures.freshInstallSeconds = seconds.toFixed(1);
    expect(result.summary.result).toBe("succeeded");
    const expected = { containerd: artifacts.containerd.version, runc: artifacts.runc.version, kubelet: artifacts.kubelet.version, cni: artifacts.cni.version };
    expect(result.outputs.observedVersions.value).toEqual(Object.fromEntries(hosts.map((h) => [h.name, expected])));
    expect(ops(events, "create").filter((n) => n.endsWith("-verify"))).toEqual(hosts.map((h) => `pool-${h.name}-verify`));
    const finished = (n: string) => events.findIndex((e) => e.resOutputsEvent?.metadata.urn.endsWith(`::${n}`));
    const started = (n: string) => events.findIndex((e) => e.resourcePreEvent?.metadata.urn.endsWith(`::${n}`));
    expect(finished("pool-pool-0-verify")).toBeLessThan(started("pool-pool-1-host"));
    expect(finished("pool-pool-1-verify")).toBeLessThan(started("pool-pool-2-host"));
    expect(downloads()).toBe(4 * hosts.length);
    expect(readFileSync(path.join(hosts[2].root, "etc/kubernetes/kubelet-flags.env"), "utf8")).toContain("topology.kubernetes.io/zone=lo-a");
    const kubeconfig = readFileSync(path.join(hosts[1].root, "etc/kubernetes/kubelet.conf"), "utf8");
    const certPem = Buffer.from(/client-certificate-data: (\S+)/.exec(kubeconfig)![1], "base64").toString();
    const certFile = path.join(caDir, "pool-1.crt");
    writeFileSync(certFile, certPem);
    expect(execFileSync("openssl", ["verify", "-CAfile", path.join(caDir, "ca.crt"), certFile], { encoding: "utf8" })).toContain(": OK");
    const subject = execFileSync("openssl", ["x509", "-noout", "-subject", "-in", certFile], { encoding: "utf8" });
    expect(subject).toMatch(/O\s*=\s*system:nodes, CN\s*=\s*system:node:pool-1/);
  });

  it("a second up changes nothing and runs no step", async () => {
    const before = downloads();
    const { result, events, seconds } = await up(pool);
    figures.secondUpSeconds = seconds.toFixed(1);
    expect(Object.keys(result.summary.resourceChanges ?? {})).toEqual(["same"]);
    expect([...ops(events, "update"), ...ops(events, "create"), ...ops(events, "replace")]).toEqual([]);
    expect(downloads()).toBe(before);
  });

  it("a kubelet bump re-runs only the kubelet and verify steps, batch by batch", async () => {
    scenario.packages = { ...scenario.packages!, kubelet: artifact(bumped) };
    const { result, events, seconds } = await up(pool);
    figures.kubeletUpgradeSeconds = seconds.toFixed(1);
    expect(ops(events, "update")).toEqual(hosts.flatMap((h) => [`pool-${h.name}-kubelet`, `pool-${h.name}-verify`]).sort());
    expect(Object.values(result.outputs.observedVersions.value as Record<string, { kubelet: string }>).map((v) => v.kubelet)).toEqual(hosts.map(() => bumped.version));
  });

  it("a wrong sha256 on the canary fails before anything is replaced and halts the rollout", async () => {
    const links = hosts.map(currentKubelet);
    scenario.packages = { ...scenario.packages!, kubelet: artifact(artifacts.kubelet, { version: `${artifacts.kubelet.version}-evil`, sha256: "0".repeat(64) }) };
    const events: EngineEvent[] = [];
    const error = await pool.stack.up({ onEvent: (e) => events.push(e), onOutput: (o) => logs.push(o) }).then(() => undefined, (e: Error) => e);
    expect(error?.message).toContain("pool-pool-0-kubelet");
    expect(error?.message).toContain("sha256 mismatch");
    expect(error?.message).toContain("nothing was replaced");
    expect(hosts.map(currentKubelet)).toEqual(links);
    expect(ops(events, "update")).toEqual(["pool-pool-0-kubelet"]);
    const kubelet = await sshRun(hosts[0], `${hosts[0].root}/usr/local/bin/kubelet ${artifacts.kubeletVersionCommand}`);
    expect(kubelet.status).toBe(0);
    scenario.packages = { ...scenario.packages!, kubelet: artifact(bumped) };
    const { result } = await up(pool);
    expect(Object.keys(result.summary.resourceChanges ?? {})).toEqual(["same"]);
  });

  it("a host that is down fails with a clear message naming it, after the earlier batches finished", async () => {
    await stopSshd(hosts[2]);
    try {
      scenario.packages = { ...scenario.packages!, kubelet: artifact(artifacts.kubelet) };
      const events: EngineEvent[] = [];
      const error = await pool.stack.up({ onEvent: (e) => events.push(e), onOutput: (o) => logs.push(o) }).then(() => undefined, (e: Error) => e);
      expect(error?.message).toContain("pool-pool-2-kubelet");
      expect(error?.message).toContain(`cannot connect`);
      expect(error?.message).toContain(`${hosts[2].ip}:${hosts[2].port}`);
      expect(ops(events, "update").filter((n) => n.endsWith("-verify"))).toEqual(["pool-pool-0-verify", "pool-pool-1-verify"]);
      const original = versionDir(artifact(artifacts.kubelet));
      expect(hosts.map(currentKubelet)).toEqual([original, original, versionDir(artifact(bumped))]);
    } finally {
      await startSshd(hosts[2]);
    }
    const { result, events } = await up(pool);
    expect(result.summary.result).toBe("succeeded");
    expect(ops(events, "update")).toEqual(["pool-pool-2-kubelet", "pool-pool-2-verify"]);
    expect(currentKubelet(hosts[2])).toBe(versionDir(artifact(artifacts.kubelet)));
  });

  it("refuses a host whose key is not the pinned one, and touches nothing on it", async () => {
    const host = stranger[0];
    const wrongKey = await engineStack("stranger", async () => {
      new WorkerNode("stranger", { machine: machineOf(host, hosts[0].hostKey), packages: scenario.packages, credentials: { privateKey: pulumi.secret(host.privateKey) }, cluster: { endpoint: "https://127.0.0.1:6443", caCertificate, bootstrapToken: pulumi.secret(BOOTSTRAP_TOKEN) }, installRoot: host.root, ...nodeOptions });
      return {};
    });
    const error = await wrongKey.stack.up({ onOutput: (o) => logs.push(o) }).then(() => undefined, (e: Error) => e);
    expect(error?.message).toContain("stranger-host");
    expect(error?.message).toContain("does not match the pinned ssh.hostKey");
    expect(existsSync(path.join(host.root, "opt"))).toBe(false);
    wrongKey.remove();
  });

  it("keeps the SSH keys, the CA key, the kubelet key and the bootstrap token out of the state file and the engine output", async () => {
    // The state file at rest, not exportStack(): the Automation API exports with --show-secrets.
    const state = readFileSync(path.join(pool.backend, ".pulumi", "stacks", "kok-workers-it", "pool.json"), "utf8");
    expect(state).toContain("ciphertext");
    expect(state).not.toContain('"plaintext"');
    for (const h of [...hosts, ...stranger]) {
      const keyBody = h.privateKey.split("\n")[2];
      expect(keyBody.length).toBeGreaterThan(20);
      expect(state.includes(keyBody), `private key of ${h.name} in the state`).toBe(false);
      expect(logs.join("").includes(keyBody), `private key of ${h.name} in the engine output`).toBe(false);
    }
    const kubeletKey = /client-key-data: (\S+)/.exec(readFileSync(path.join(hosts[0].root, "etc/kubernetes/kubelet.conf"), "utf8"))![1];
    const kubeletKeyBody = Buffer.from(kubeletKey, "base64").toString().split("\n")[1];
    const caKeyBody = caKey.split("\n")[1];
    for (const [what, text] of [["kubelet key (base64)", kubeletKey], ["kubelet key", kubeletKeyBody], ["CA key", caKeyBody]]) {
      expect(text.length).toBeGreaterThan(20);
      expect(state.includes(text), `${what} in the state`).toBe(false);
      expect(logs.join("").includes(text), `${what} in the engine output`).toBe(false);
    }
    expect(state.includes("0123456789abcdef")).toBe(false);
    expect(logs.join("").includes("0123456789abcdef")).toBe(false);
  });

  it("destroy removes the nodes' files from every host", async () => {
    const started = process.hrtime.bigint();
    await pool.stack.destroy({ onOutput: (o) => logs.push(o) });
    figures.destroySeconds = (Number(process.hrtime.bigint() - started) / 1e9).toFixed(1);
    for (const h of hosts) {
      expect(existsSync(path.join(h.root, "opt/kube-on-kube")), h.name).toBe(false);
      expect(existsSync(path.join(h.root, "etc/kubernetes/bootstrap-kubelet.conf")), h.name).toBe(false);
    }
  });
});
