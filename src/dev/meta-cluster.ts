/**
 * `kok dev up | down | status`: starts the local meta-cluster's processes in dependency order,
 * waits for each to be healthy, and stops exactly the processes its pid files name.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderKubeconfig } from "../components/kubeconfig";
import { componentPlans, pkiLeaves, type ComponentPlan } from "./components";
import { statePaths, type DevConfig } from "./config";
import { clientTls, httpsGet, waitFor } from "./health";
import { exitedWithLog } from "./log-tail";
import { ensurePki } from "./pki";
import { takenPorts } from "./ports";
import { runningFromPidFile, startBackground, stopFromPidFile } from "./processes";
import { stopKeptHosts } from "./sandbox-fleet";
import { devServices, serviceStatuses, servicesToStart, startServices, stopServices } from "./services";
import { missingBinaries, toolchainBinary } from "./toolchain";
import { cleanupRealNode, realNodeLayout, startRealNode } from "./node";
import { registryAddress } from "./registry";

export interface UpOptions {
  /** The real node (node/, docs/dev-cluster.md "The node: a real kubelet"); false: the control plane only. */
  readonly withNode: boolean;
  readonly log: (line: string) => void;
}

const pidFile = (config: DevConfig, name: string) => join(statePaths(config.stateDir).pids, `${name}.pid`);
const logFile = (config: DevConfig, name: string) => join(statePaths(config.stateDir).logs, `${name}.log`);

function writeKubeconfigs(config: DevConfig): void {
  const paths = statePaths(config.stateDir);
  const server = `https://127.0.0.1:${config.ports.apiServer}`;
  const read = (file: string) => readFileSync(join(paths.pki, file), "utf8");
  const write = (path: string, user: string, userName: string) =>
    writeFileSync(
      path,
      renderKubeconfig({ clusterName: "kok-dev", server, caCertPem: read("ca.crt"), userName, clientCertPem: read(`${user}.crt`), clientKeyPem: read(`${user}.key`) }),
      { mode: 0o600 },
    );
  write(paths.adminKubeconfig, "admin", "kok-dev-admin");
  write(paths.componentKubeconfig("kube-controller-manager"), "kube-controller-manager", "system:kube-controller-manager");
  write(paths.componentKubeconfig("kube-scheduler"), "kube-scheduler", "system:kube-scheduler");
}

async function healthy(config: DevConfig, plan: ComponentPlan): Promise<boolean> {
  const tls = plan.health.clientUser ? clientTls(statePaths(config.stateDir).pki, plan.health.clientUser) : {};
  const result = await httpsGet(plan.health.url, tls);
  return result.status === 200;
}

/** Starts what is not running yet; everything already running is left alone. */
export async function devUp(config: DevConfig, opts: UpOptions): Promise<void> {
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  const plans = componentPlans(config);

  const missing = missingBinaries([...plans.map((p) => p.binary), ...devServices(config).map((s) => s.binary)]);
  if (missing.length) throw new Error(missing.map((m) => m.message).join("\n"));

  const toStart = plans.filter((p) => !runningFromPidFile(pidFile(config, p.name)));
  const taken = await takenPorts(Object.fromEntries([...toStart, ...servicesToStart(config)].map((p) => [p.name, p.port])));
  if (taken.length) throw new Error(taken.join("\n"));

  await ensurePki(statePaths(config.stateDir).pki, pkiLeaves(config));
  writeKubeconfigs(config);

  for (const plan of plans) {
    const pids = pidFile(config, plan.name);
    const logs = logFile(config, plan.name);
    if (runningFromPidFile(pids)) {
      opts.log(`  ${plan.name}: already running`);
    } else {
      const binary = toolchainBinary(plan.binary);
      startBackground({ command: binary, args: plan.args, pidFile: pids, logFile: logs });
      opts.log(`  ${plan.name}: started on 127.0.0.1:${plan.port} (log ${logs})`);
    }
    await waitFor(`${plan.name} (${plan.health.url})`, () => healthy(config, plan), {
      timeoutMs: 120_000,
      isDead: exitedWithLog(pids, logs),
    });
    opts.log(`  ${plan.name}: healthy (${elapsed()})`);
  }
  // The registry and the object store (services.ts): before the node, which pulls from the registry.
  await startServices(config, opts.log, elapsed);

  if (opts.withNode) {
    await pushDevImages(config, opts.log);
    await startRealNode(config, { registry: registryAddress(config), log: opts.log });
    opts.log(`  node ${config.nodeName} (kubelet) with kube-proxy, CoreDNS and local-path-provisioner: ready (${elapsed()})`);
  }
  opts.log(`meta-cluster ready in ${elapsed()}: export KUBECONFIG=${statePaths(config.stateDir).adminKubeconfig}`);
}

/**
 * The images of docs/images.md into the dev registry, where the real node's containerd finds them
 * through its mirrors: built first when their inputs changed (a cached build only hashes them).
 */
async function pushDevImages(config: DevConfig, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  // Loaded on demand: `--no-node` and `kok dev status` need none of it.
  const { buildImages, pushImages } = await import("../images");
  const images = await buildImages({ log: (line) => log(`  images: ${line.trim()}`) });
  const pushed = await pushImages({ registry: registryAddress(config), images });
  if (!pushed.some((p) => p.source.startsWith("registry.k8s.io/pause:"))) {
    throw new Error("no pause image was pushed to the dev registry: `kok images build` builds it from the toolchain's pause (bash tools/toolchain.sh pause)");
  }
  const uploaded = pushed.reduce((n, p) => n + p.uploaded, 0);
  log(`  registry: ${pushed.length} image tag(s) at ${registryAddress(config)}, ${uploaded} blob(s) uploaded (${((Date.now() - started) / 1000).toFixed(1)}s)`);
}

/** Stops the demo's worker hosts, the real node (its Pods, containerd, mounts, namespace), the registry and object store, then the masters in reverse order. */
export async function devDown(config: DevConfig, opts: { purge: boolean; log: (line: string) => void }): Promise<void> {
  // Only what a killed demo left running: a demo that stopped normally stopped its hosts itself.
  for (const what of await stopKeptHosts(statePaths(config.stateDir).hosts)) opts.log(`  worker host ${what}: stopped`);
  // A node that cannot be removed completely must not keep the masters running, nor be purged
  // (its state may still hold mounts): stop the rest, then report it.
  let nodeProblem: unknown;
  try {
    const real = await cleanupRealNode(config);
    if (real.processes) opts.log(`  real node: stopped ${real.processes} process(es), removed ${real.mounts} mount(s) and ${real.links} link(s)`);
  } catch (error) {
    nodeProblem = error;
  }
  // After the node: it pulls from the registry until it stops.
  await stopServices(config, opts.log);
  for (const plan of [...componentPlans(config)].reverse()) {
    if (await stopFromPidFile(pidFile(config, plan.name))) opts.log(`  ${plan.name}: stopped`);
  }
  if (nodeProblem) throw nodeProblem;
  if (opts.purge) {
    rmSync(statePaths(config.stateDir).dir, { recursive: true, force: true });
    opts.log(`  removed ${config.stateDir}`);
  }
}

export interface ComponentStatus {
  readonly name: string;
  readonly pid?: number;
  readonly healthy: boolean;
  /** Why it is not healthy, when known (a service's probe answer). */
  readonly detail?: string;
}

export async function devStatus(config: DevConfig): Promise<ComponentStatus[]> {
  const statuses: ComponentStatus[] = [];
  for (const plan of componentPlans(config)) {
    const record = runningFromPidFile(pidFile(config, plan.name));
    const ok = record ? await healthy(config, plan).catch(() => false) : false;
    statuses.push({ name: plan.name, pid: record?.pid, healthy: ok });
  }
  statuses.push(...(await serviceStatuses(config)));
  const layout = realNodeLayout(config);
  if (!existsSync(layout.containerd.pid)) {
    statuses.push({ name: "node", healthy: false, detail: "not started (`kok dev up` without --no-node starts it)" });
    return statuses;
  }
  const containerd = runningFromPidFile(layout.containerd.pid);
  const kubelet = runningFromPidFile(layout.kubelet.pid);
  const forwarder = runningFromPidFile(layout.forwarder.pid);
  statuses.push({ name: "containerd", pid: containerd?.pid, healthy: containerd !== undefined });
  statuses.push({ name: "kubelet", pid: kubelet?.pid, healthy: kubelet !== undefined });
  statuses.push({ name: "node forwarder", pid: forwarder?.pid, healthy: forwarder !== undefined });
  return statuses;
}
