/**
 * Drives `kok dev` as a user does (a real `kok` process through tsx) for the integration and e2e
 * tests, each with its own state directory and with ports and a pod range found free at the time,
 * so they never touch a developer's dev cluster or a concurrent test run.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { stringify } from "yaml";
import { isPortFree } from "../../src/dev/ports";
import { toolchainBinary } from "../../src/dev/toolchain";
import { allCustomResourceDefinitions } from "../../src/api/v1alpha1/crds";
import { eventually as poll } from "./poll";

const ROOT = resolve(__dirname, "..", "..");
const TSX = join(ROOT, "node_modules", ".bin", "tsx");
const MAIN = join(ROOT, "src", "cli", "main.ts");

export interface KokResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function kok(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<KokResult> {
  return new Promise((done, fail) => {
    const child = spawn(TSX, [MAIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", fail);
    child.on("close", (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

export interface DevCluster {
  readonly stateDir: string;
  readonly portBase: number;
  readonly podCIDR: string;
  readonly kubeconfig: string;
  readonly args: string[];
}

// The masters', the registry's (5000) and the object store's (9000): src/dev/config.ts portsFrom.
const STANDARD_PORTS = [2379, 2380, 6443, 10257, 10259, 5000, 9000];
const inNodePortRange = (port: number) => port >= 30000 && port <= 32767;

/**
 * A port base whose ports are all free now (test runs on one machine must not collide), all below
 * the kernel's ephemeral range (32768+ here): a port there that is free when checked can be taken
 * by any outgoing connection before the server binds it, which failed a run (versitygw: `bind:
 * address already in use`).
 */
export async function freePortBase(): Promise<number> {
  for (;;) {
    const base = 11000 + 100 * Math.floor(Math.random() * 88);
    const ports = STANDARD_PORTS.map((p) => base + p);
    if (ports.some(inNodePortRange)) continue;
    if ((await Promise.all(ports.map((p) => isPortFree(p)))).every(Boolean)) return base;
  }
}

/** A nodePort no listener uses now. */
export async function freeNodePort(): Promise<number> {
  for (;;) {
    const port = 30000 + Math.floor(Math.random() * 2768);
    if (await isPortFree(port)) return port;
  }
}

/** A 10.X.0.0/16 pod range no interface of this machine has an address in. */
export function freePodCidr(): string {
  const used = execFileSync("ip", ["-o", "-4", "addr", "show"], { encoding: "utf8" });
  // 10.112–10.243: clear of the business clusters' default Service range (10.96.0.0/12 is
  // 10.96–10.111) and Pod range (10.244.0.0/16, BUSINESS_DEFAULT_CIDRS). A meta-cluster Pod whose
  // address fell in either was routed or rewritten by the workers' own rules (seen once: the
  // hosts' Pod routes cut off the operator Pod).
  for (;;) {
    const second = 112 + Math.floor(Math.random() * 132);
    if (!used.includes(` 10.${second}.`)) return `10.${second}.0.0/16`;
  }
}

export async function newDevCluster(): Promise<DevCluster> {
  const stateDir = mkdtempSync(join(tmpdir(), "kok-dev-test-"));
  const portBase = await freePortBase();
  const podCIDR = freePodCidr();
  return { stateDir, portBase, podCIDR, kubeconfig: join(stateDir, "admin.kubeconfig"), args: ["--state-dir", stateDir] };
}

/** `kok dev up` (plus e.g. `--no-node`); throws with its output when it fails, so a broken setup names its cause. */
export async function devUp(cluster: DevCluster, extraArgs: readonly string[] = []): Promise<KokResult> {
  const result = await kok(["dev", "up", ...cluster.args, "--port-base", String(cluster.portBase), "--pod-cidr", cluster.podCIDR, ...extraArgs]);
  if (result.code !== 0) throw new Error(`kok dev up failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

export function clientFor(kubeconfigPath: string) {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return { kc, core: kc.makeApiClient(k8s.CoreV1Api), apps: kc.makeApiClient(k8s.AppsV1Api) };
}


/** Polls every 500 ms, through errors, until `check` yields a value (test/support/poll.ts). */
export function eventually<T>(what: string, check: () => Promise<T | undefined>, deadlineMs = 300_000): Promise<T> {
  return poll(what, check, { timeoutMs: deadlineMs, everyMs: 500, retryErrors: true });
}

/** Installs the kube-on-kube CRDs with kubectl, as users do, and waits until they are served. */
export function installCrds(cluster: DevCluster, workDir: string): void {
  const file = join(workDir, "crds.yaml");
  writeFileSync(file, allCustomResourceDefinitions().map((d) => stringify(d)).join("---\n"));
  const kubectl = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args], { stdio: "pipe" });
  kubectl("apply", "-f", file);
  kubectl("wait", "--for=condition=Established", "crd/clusters.kubeonkube.io", "crd/machines.kubeonkube.io", "crd/clusterpackageversions.kubeonkube.io", "--timeout=60s");
}
