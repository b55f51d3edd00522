/**
 * `kok dev up | down | env | status | logs`: the local meta-cluster (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler on loopback), its registry and object store, and its node
 * (a real kubelet on containerd 2). See docs/dev-cluster.md;
 * program.ts declares the flags.
 */
import { spawnSync } from "node:child_process";
import { DEFAULT_PORT_BASE, defaultConfig, loadConfig, saveConfig, statePaths, type DevConfig } from "../dev/config";
import { toolchainBinary } from "../dev/toolchain";

function requireConfig(stateDir: string): DevConfig {
  const config = loadConfig(stateDir);
  if (!config) throw new Error(`no dev cluster in ${stateDir}: run \`kok dev up --state-dir ${stateDir}\` first`);
  return config;
}

/** The real node's kubelet serves logs: this is `kubectl logs` with the admin kubeconfig. */
function printLogs(config: DevConfig, pod: string, namespace: string | undefined, container: string | undefined): number {
  const args = ["--kubeconfig", statePaths(config.stateDir).adminKubeconfig, "logs", ...(namespace ? ["-n", namespace] : []), pod, ...(container ? ["-c", container] : [])];
  return spawnSync(toolchainBinary("kubectl"), args, { stdio: "inherit" }).status ?? 1;
}

const log = (line: string) => console.log(line);

export interface DevUpFlags {
  readonly stateDir: string;
  readonly portBase?: string;
  readonly podCidr?: string;
  /** false with `--no-node`: the control plane only. */
  readonly node?: boolean;
}

/** `kok dev up`: start (or finish starting) the meta-cluster and its node; waits until ready. */
export async function devUpCommand(flags: DevUpFlags): Promise<number> {
  const { stateDir } = flags;
  const withNode = flags.node !== false;
  if (withNode && process.getuid?.() !== 0) {
    throw new Error("the dev node runs Pods in network namespaces, which needs root: run as root, or pass --no-node for the control plane only");
  }
  const portBase = flags.portBase === undefined ? DEFAULT_PORT_BASE : Number(flags.portBase);
  if (!Number.isInteger(portBase) || portBase < 1024 || portBase + 10259 > 65535) {
    console.error(`kok dev up: --port-base ${flags.portBase}: want an integer 1024..${65535 - 10259}`);
    return 2;
  }
  let config = loadConfig(stateDir);
  if (config && (flags.portBase !== undefined || flags.podCidr !== undefined)) {
    log(`note: ${stateDir} already has a dev cluster; its saved ports and pod CIDR are kept (down --purge to change them)`);
  }
  if (!config) {
    config = defaultConfig(stateDir, portBase, flags.podCidr);
    saveConfig(config);
  }
  log(`kok dev up (state ${config.stateDir})`);
  // Loaded on demand: `kok validate` and the other commands need none of it (nor Pulumi's SDK).
  const { devUp } = await import("../dev/meta-cluster");
  await devUp(config, { withNode, log });
  return 0;
}

/** `kok dev down`: stop every process `up` started, remove the node's namespaces; `purge` deletes the state. */
export async function devDownCommand(flags: { readonly stateDir: string; readonly purge?: boolean }): Promise<number> {
  const config = loadConfig(flags.stateDir);
  if (!config) {
    log(`nothing to stop: no dev cluster in ${flags.stateDir}`);
    return 0;
  }
  const { devDown } = await import("../dev/meta-cluster");
  await devDown(config, { purge: flags.purge ?? false, log });
  log("kok dev down: done");
  return 0;
}

/** A value as one shell word: single-quoted unless it is plainly safe (the backend URL has `?` and `&`). */
export function shellWord(value: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * `kok dev env`: export lines for the admin kubeconfig, the registry and the object store. This is
 * the one command that prints the object store's secret: its output is meant for `eval`.
 */
export async function devEnvCommand(flags: { readonly stateDir: string }): Promise<number> {
  const config = requireConfig(flags.stateDir);
  const { registryAddress } = await import("../dev/registry");
  const { objectStoreEnv } = await import("../dev/object-store");
  const env: Record<string, string> = {
    KUBECONFIG: statePaths(config.stateDir).adminKubeconfig,
    KOK_REGISTRY: registryAddress(config),
    ...objectStoreEnv(config),
  };
  for (const [name, value] of Object.entries(env)) console.log(`export ${name}=${shellWord(value)}`);
  return 0;
}

/** `kok dev status`: each process and whether it is healthy; exit 1 when one is not. */
export async function devStatusCommand(flags: { readonly stateDir: string }): Promise<number> {
  const { devStatus } = await import("../dev/meta-cluster");
  const statuses = await devStatus(requireConfig(flags.stateDir));
  for (const s of statuses) {
    const detail = !s.healthy && s.detail ? `: ${s.detail}` : "";
    log(`${s.name.padEnd(24)} ${s.pid ? `pid ${s.pid}`.padEnd(12) : "stopped".padEnd(12)} ${s.healthy ? "healthy" : "not healthy"}${detail}`);
  }
  return statuses.every((s) => s.healthy) ? 0 : 1;
}

/** `kok dev logs POD`: a Pod container's log, from the real node's kubelet. */
export function devLogsCommand(pod: string, flags: { readonly stateDir: string; readonly namespace?: string; readonly container?: string }): number {
  return printLogs(requireConfig(flags.stateDir), pod, flags.namespace, flags.container);
}
