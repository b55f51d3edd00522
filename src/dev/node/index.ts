/**
 * `kok dev up`'s node: the meta-cluster's node as a real kubelet + containerd 2 + runc + CNI,
 * started as background processes with pid files like the masters (see docs/dev-cluster.md,
 * "The node: a real kubelet"). Every binary is checked first and all missing ones are named at once.
 */
import { execFile } from "node:child_process";
import { accessSync, constants, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { statePaths, type DevConfig } from "../config";
import { waitFor } from "../health";
import { exitedWithLog } from "../log-tail";
import { waitForNodeReady } from "../node-ready";
import { ensurePki } from "../pki";
import { runningFromPidFile, startBackground } from "../processes";
import { toolchainDir } from "../toolchain";
import { ensureCgroupRoot } from "./cgroups";
import { cleanupRealNode } from "./cleanup";
import { writeCniConfig } from "./cni";
import { writeContainerdConfig } from "./containerd";
import { kubeletArgs, kubeletLeaves, writeKubeletFiles } from "./kubelet";
import { nodeAddonsYaml } from "./addons";
import { startForwarder } from "./forwarder";
import { realNodeLayout, type RealNodeLayout } from "./layout";
import { ensureNodeNetns, inNodeNetns } from "./netns";

const run = promisify(execFile);

export { cleanupRealNode } from "./cleanup";
export { realNodeLayout } from "./layout";

export const NODE_BINARIES = ["containerd", "containerd-shim-runc-v2", "runc", "ctr", "kubelet"] as const;
export const CNI_PLUGINS = ["bridge", "host-local", "loopback", "portmap"] as const;

export const cniBinDir = () => process.env.KOK_CNI_BIN_DIR || join(toolchainDir(), "cni", "bin");

/** Every binary the node needs that is not there, as one message per binary. */
export function missingNodeBinaries(): string[] {
  const wanted = [...NODE_BINARIES.map((b) => join(toolchainDir(), "bin", b)), ...CNI_PLUGINS.map((p) => join(cniBinDir(), p))];
  return wanted.filter((path) => {
    try {
      accessSync(path, constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
}

async function containerdAnswers(layout: RealNodeLayout): Promise<boolean> {
  if (!existsSync(layout.containerd.socket)) return false;
  try {
    await run(join(toolchainDir(), "bin", "ctr"), ["--address", layout.containerd.socket, "version"], { timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}


/** The environment of containerd: the toolchain first on PATH (it starts containerd-shim-runc-v2 from there). */
function nodeEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${join(toolchainDir(), "bin")}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` };
}

export interface RealNodeOptions {
  /** The local registry ("127.0.0.1:<port>") that registry.k8s.io and docker.io resolve to. */
  readonly registry: string;
  readonly log: (line: string) => void;
}

/** Starts containerd and the kubelet (what is not running yet) and returns when the Node has a fresh Ready heartbeat. */
export async function startRealNode(config: DevConfig, opts: RealNodeOptions): Promise<void> {
  const started = Date.now();
  const log = (line: string) => opts.log(`${line} (node +${((Date.now() - started) / 1000).toFixed(1)}s)`);
  const missing = missingNodeBinaries();
  if (missing.length) {
    throw new Error(`the real dev node needs these binaries, which are missing (build them with \`npm run toolchain\`):\n  ${missing.join("\n  ")}`);
  }
  const layout = realNodeLayout(config);
  const containerdRunning = runningFromPidFile(layout.containerd.pid);
  if (!containerdRunning) {
    // Whatever a crashed node left (containers, shims, mounts, cgroups) goes before a new start.
    const left = await cleanupRealNode(config);
    if (left.processes || left.mounts || left.links) log(`  node: removed what a stopped node left (${left.processes} processes, ${left.mounts} mounts, ${left.links} links)`);
  }
  await ensurePki(layout.pki, kubeletLeaves(config, layout));
  await ensureNodeNetns(config, layout);
  ensureCgroupRoot(layout.cgroupRoot);
  if (!runningFromPidFile(layout.forwarder.pid)) startForwarder(config, layout, opts.registry);
  // The node reaches the registry through the forwarder, on the machine's end of the link.
  const registryFromNode = `${layout.link.host}:${opts.registry.split(":").at(-1)}`;
  writeCniConfig(config, layout);
  writeContainerdConfig(layout, { binDir: join(toolchainDir(), "bin"), cniBinDir: cniBinDir(), registry: registryFromNode });
  writeKubeletFiles(config, layout);

  if (containerdRunning) log("  containerd: already running");
  else {
    startBackground({
      ...inNodeNetns(layout, join(toolchainDir(), "bin", "containerd"), ["--config", layout.containerd.config]),
      pidFile: layout.containerd.pid,
      logFile: layout.containerd.log,
      env: nodeEnv(),
      marker: layout.containerd.config,
    });
    log(`  containerd: started in network namespace ${layout.netns} (socket ${layout.containerd.socket}, log ${layout.containerd.log})`);
  }
  await waitFor("containerd", () => containerdAnswers(layout), { timeoutMs: 60_000, isDead: exitedWithLog(layout.containerd.pid, layout.containerd.log, "containerd") });

  const kubelet = runningFromPidFile(layout.kubelet.pid);
  if (kubelet) log("  kubelet: already running");
  else {
    startBackground({
      ...inNodeNetns(layout, join(toolchainDir(), "bin", "kubelet"), kubeletArgs(config, layout)),
      pidFile: layout.kubelet.pid,
      logFile: layout.kubelet.log,
      env: nodeEnv(),
      marker: layout.kubelet.config,
    });
    log(`  kubelet: started on ${layout.nodeIP}:${layout.kubeletPort} (log ${layout.kubelet.log})`);
  }
  const since = kubelet ? new Date(kubelet.startedAt) : new Date();
  await waitForNodeReady(config, since, { timeoutMs: 180_000, isDead: exitedWithLog(layout.kubelet.pid, layout.kubelet.log, "the kubelet") });
  log(`  node ${config.nodeName}: Ready`);
  await applyAddons(config, layout, since, log);
}

/** kube-proxy, CoreDNS and local-path-provisioner (addons.ts), applied and waited for: a stuck one is named with its state. */
interface PodList {
  items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string; lastTransitionTime?: string }[] } }[];
}

/**
 * Waits for each addon's rollout and then for its Pods to have become Ready since the kubelet
 * started: after a crash the workloads' status still says ready until the new kubelet has
 * restarted their containers.
 */
async function applyAddons(config: DevConfig, layout: RealNodeLayout, kubeletSince: Date, log: (line: string) => void): Promise<void> {
  const file = join(layout.dir, "addons.yaml");
  writeFileSync(file, nodeAddonsYaml(config, layout));
  const kubectl = (...args: string[]) =>
    run(join(toolchainDir(), "bin", "kubectl"), ["--kubeconfig", statePaths(config.stateDir).adminKubeconfig, ...args], { timeout: 200_000 });
  await kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=kok-dev", "-f", file);
  const sinceSecond = Math.floor(kubeletSince.getTime() / 1000) * 1000;
  const freshlyReady = async (ns: string, selector: string) => {
    const pods = JSON.parse((await kubectl("-n", ns, "get", "pods", "-l", selector, "-o", "json")).stdout) as PodList;
    return (
      pods.items.length > 0 &&
      pods.items.every((p) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True" && Date.parse(c.lastTransitionTime ?? "") >= sinceSecond))
    );
  };
  for (const [ns, what, selector] of [
    ["kube-system", "daemonset/kube-proxy", "k8s-app=kube-proxy"],
    ["kube-system", "deployment/coredns", "k8s-app=kube-dns"],
    ["local-path-storage", "deployment/local-path-provisioner", "app=local-path-provisioner"],
  ]) {
    try {
      await kubectl("-n", ns, "rollout", "status", what, "--timeout=180s");
      await waitFor(`${what} Pods Ready since the kubelet started`, () => freshlyReady(ns, selector), { timeoutMs: 180_000 });
    } catch (error) {
      const pods = await kubectl("-n", ns, "get", "pods", "-o", "wide").then((r) => r.stdout, () => "");
      throw new Error(`${what} in ${ns} did not become ready: ${(error as { stderr?: string }).stderr?.trim() ?? (error as Error).message}\n${pods}`);
    }
    log(`  ${what.split("/")[1]}: ready`);
  }
}
