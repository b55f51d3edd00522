/**
 * `kok operator`: parses and checks its flags (program.ts declares them), checks the engine
 * (preflight.ts), then runs the operator until SIGINT/SIGTERM.
 *
 * `--policy FILE` is the admin policy (docs/operations.md): what tenants' Clusters and Machines
 * may ask for. Without it the built-in policy applies; a bad file stops the start, naming every
 * problem.
 *
 * `--backend-url` is checked here too (state-backend.ts: scheme, bucket, parameters, no credentials
 * in it); with a file:// backend, `--state-history-keep` bounds each stack's history
 * (state-history.ts).
 */
import * as path from "node:path";
import { homedir } from "node:os";
import { existsSync, readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { withdrawFromEnvironment } from "../host/credentials-dir";
import { checkEngine, formatProblems } from "./preflight";
import { untilStopSignal } from "./stop-signal";
import type { LogLevel } from "./program";
import type { WorkerDefaults } from "../program/machine-program";
import { DEFAULT_REMEDIATION_POLICY } from "../controllers/machine/remediation";
import { IMAGE_PATTERN, loadAdminPolicy, resolveAdminPolicy, type ResolvedAdminPolicy } from "../api/v1alpha1";
import { defaultBackupImage } from "../components/backup-image";
import { checkStateBackend, printableBackendUrl, type StateBackend } from "../runtime/state-backend";
import { DEFAULT_HISTORY_KEEP, HistoryPruner } from "../runtime/state-history";
import { createLogger } from "../runtime/logger";

/** Time between two sweeps of a file backend's history: an update's history is pruned within it. */
export const HISTORY_SWEEP_MS = 60_000;

/** `90s`, `5m`, `1h` → milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text.trim());
  if (!match) throw new Error(`${flag} "${text}" is not a duration like 90s, 5m or 1h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as "ms" | "s" | "m" | "h"];
  return Number(match[1]) * unit;
}

/** The flags as commander hands them over: strings, checked here so one start names every bad one. */
export interface OperatorFlags {
  readonly kubeconfig?: string;
  readonly namespace?: string;
  readonly operatorNamespace?: string;
  readonly backendUrl?: string;
  readonly stateDir: string;
  readonly resyncInterval: string;
  readonly fullDriftCheckInterval: string;
  readonly concurrency: string;
  readonly machineWorkers?: string;
  readonly clusterWorkers?: string;
  readonly metricsAddr: string;
  readonly leaderElectionNamespace?: string;
  readonly secretsProvider?: string;
  readonly workerDefaults?: string;
  readonly probeInterval: string;
  readonly repairAfter: string;
  readonly maxRepairs: string;
  readonly maxUnhealthy: string;
  readonly policy?: string;
  /** Updates of history and backups kept per stack in a file:// backend; "0" keeps all (default DEFAULT_HISTORY_KEEP). */
  readonly stateHistoryKeep?: string;
  readonly logLevel: LogLevel;
  /** The image of the Clusters' etcd backup CronJobs and restore init containers. */
  readonly backupImage?: string;
}

/** What the flags mean, once checked. */
export interface OperatorSettings {
  readonly backendUrl: string;
  /** `backendUrl` parsed (undefined when it has a problem). */
  readonly backend?: StateBackend;
  /** Updates kept per stack by the history pruning; 0: no pruning. */
  readonly stateHistoryKeep: number;
  readonly workRoot: string;
  readonly resyncMs: number;
  readonly fullDriftCheckMs: number;
  readonly concurrency: number;
  readonly machineWorkers?: number;
  readonly clusterWorkers?: number;
  readonly probeIntervalMs: number;
  readonly repairAfterMs: number;
  readonly maxRepairs: number;
  readonly maxUnhealthyShare: number;
  readonly workerDefaults?: WorkerDefaults;
  readonly policy: ResolvedAdminPolicy;
  /** `--backup-image`, default docker.io/kube-on-kube/operator:<package version>. */
  readonly backupImage: string;
}

/** The flags checked and converted; every bad one is a problem (none stops the others' checks). */
export function operatorSettings(flags: OperatorFlags, env: Readonly<Record<string, string | undefined>> = {}): { settings: OperatorSettings; problems: string[]; notes: string[] } {
  const problems: string[] = [];
  const integer = (flag: string, raw: string, min: number) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) problems.push(`--${flag} "${raw}" must be ${min === 0 ? "a non-negative" : "a positive"} integer`);
    return n;
  };
  const duration = (flag: string, raw: string) => {
    try {
      return parseDuration(raw, `--${flag}`);
    } catch (e) {
      problems.push((e as Error).message);
      return 0;
    }
  };
  const share = /^(\d{1,3})%$/.exec(flags.maxUnhealthy);
  if (!share || Number(share[1]) > 100) problems.push(`--max-unhealthy "${flags.maxUnhealthy}" must be a percentage like 40%`);
  if (flags.kubeconfig && !existsSync(flags.kubeconfig)) problems.push(`--kubeconfig ${flags.kubeconfig}: no such file`);
  let workerDefaults: WorkerDefaults | undefined;
  if (flags.workerDefaults) {
    try {
      workerDefaults = parseYaml(readFileSync(flags.workerDefaults, "utf8")) as WorkerDefaults;
    } catch (e) {
      problems.push(`--worker-defaults ${flags.workerDefaults}: ${(e as Error).message}`);
    }
  }
  let policy: ResolvedAdminPolicy = resolveAdminPolicy();
  if (flags.policy) {
    try {
      policy = loadAdminPolicy(readFileSync(flags.policy, "utf8"), flags.policy);
    } catch (e) {
      problems.push(`--policy: ${(e as Error).message}`);
    }
  }
  const backupImage = flags.backupImage ?? defaultBackupImage();
  if (!new RegExp(IMAGE_PATTERN).test(backupImage)) problems.push(`--backup-image "${backupImage}" is not an image reference like docker.io/kube-on-kube/operator:0.1.0`);
  const backendUrl = flags.backendUrl ?? `file://${path.join(flags.stateDir, "state")}`;
  const backend = checkStateBackend(backendUrl, env, homedir());
  problems.push(...backend.problems);
  const settings: OperatorSettings = {
    backendUrl,
    backend: backend.backend,
    stateHistoryKeep: integer("state-history-keep", flags.stateHistoryKeep ?? String(DEFAULT_HISTORY_KEEP), 0),
    workRoot: path.join(flags.stateDir, "work"),
    resyncMs: duration("resync-interval", flags.resyncInterval),
    fullDriftCheckMs: duration("full-drift-check-interval", flags.fullDriftCheckInterval),
    concurrency: integer("concurrency", flags.concurrency, 1),
    machineWorkers: flags.machineWorkers === undefined ? undefined : integer("machine-workers", flags.machineWorkers, 1),
    clusterWorkers: flags.clusterWorkers === undefined ? undefined : integer("cluster-workers", flags.clusterWorkers, 1),
    probeIntervalMs: duration("probe-interval", flags.probeInterval),
    repairAfterMs: duration("repair-after", flags.repairAfter),
    maxRepairs: integer("max-repairs", flags.maxRepairs, 0),
    maxUnhealthyShare: Number(share?.[1] ?? 40) / 100,
    workerDefaults,
    policy,
    backupImage,
  };
  return { settings, problems, notes: backend.notes };
}

/**
 * The node_modules directory holding the @pulumi/pulumi this process runs: the dynamic-provider
 * host must load that same SDK. In the repository it is the project's; installed as a package
 * it is wherever npm hoisted the SDK (usually the application's node_modules, not one inside ours).
 */
export function nodeModulesOfPulumiSdk(): string {
  const manifest = require.resolve("@pulumi/pulumi/package.json");
  return path.resolve(path.dirname(manifest), "..", "..");
}

/**
 * Runs until SIGINT/SIGTERM. Exit codes: bad flags are a usage error (2); an engine that is not
 * ready (preflight.ts) a failure (1). Both kinds are named in one message.
 */
export async function runOperator(flags: OperatorFlags): Promise<number> {
  const env = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
  const { settings, problems, notes } = operatorSettings(flags, env);
  const engineEnv = {
    ...env,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION ?? "true",
    KOK_NODE_MODULES: env.KOK_NODE_MODULES ?? nodeModulesOfPulumiSdk(),
  };
  // Checked with the flags, before anything connects: one message names every problem.
  const engine = checkEngine({ env: engineEnv, backendUrl: settings.backendUrl, secretsProvider: flags.secretsProvider });
  if (problems.length || engine.problems.length) {
    console.error(formatProblems("kok operator", [...problems, ...engine.problems], engine.hints));
    return problems.length ? 2 : 1;
  }
  for (const note of [...notes, ...engine.notes]) console.error(`kok operator: note: ${note}`);
  // The passphrase reaches the engine only (engineEnv below): no other child of the operator inherits it.
  withdrawFromEnvironment(["PULUMI_CONFIG_PASSPHRASE"]);
  // Loaded once the checks pass: a refused start need not load the Kubernetes client and Pulumi.
  const { startOperator } = await import("../operator/operator");
  const operator = await startOperator({
    kubeconfigPath: flags.kubeconfig,
    namespace: flags.namespace,
    // In a Pod, the Deployment passes its own namespace through the downward API (POD_NAMESPACE).
    operatorNamespace: flags.operatorNamespace ?? process.env.POD_NAMESPACE,
    backendUrl: settings.backendUrl,
    workRoot: settings.workRoot,
    resyncMs: settings.resyncMs,
    fullDriftCheckMs: settings.fullDriftCheckMs,
    concurrency: settings.concurrency,
    machineWorkers: settings.machineWorkers,
    clusterWorkers: settings.clusterWorkers,
    metricsAddr: flags.metricsAddr,
    leaderElectionNamespace: flags.leaderElectionNamespace,
    secretsProvider: flags.secretsProvider,
    workerDefaults: settings.workerDefaults,
    policy: settings.policy,
    backupImage: settings.backupImage,
    probeIntervalMs: settings.probeIntervalMs,
    remediation: {
      ...DEFAULT_REMEDIATION_POLICY,
      notReadyTimeoutMs: settings.repairAfterMs,
      maxRemediations: settings.maxRepairs,
      maxUnhealthyShare: settings.maxUnhealthyShare,
    },
    engineEnv,
    logLevel: flags.logLevel,
  });
  const pruner = historyPruner(settings, flags.logLevel);
  pruner?.start();
  // Not process.once: execa's signal-exit would then re-raise the signal (stop-signal.ts).
  const signal = await untilStopSignal({ onRepeat: (s) => console.error(`kok operator: ${s} again: still waiting for the updates in flight`) });
  console.error(`kok operator: ${signal}: stopping after the updates in flight`);
  pruner?.stop();
  await operator.stop();
  return 0;
}

/**
 * The file backend's history pruning, or undefined (an object store: its lifecycle rules do it,
 * docs/operations.md "State backends"; or `--state-history-keep 0`). It logs what it freed and
 * which stacks it left for an update in flight; paths and counts only.
 */
function historyPruner(settings: OperatorSettings, level: LogLevel): HistoryPruner | undefined {
  if (settings.backend?.kind !== "file" || settings.stateHistoryKeep === 0) return undefined;
  const log = createLogger({ level }).child({ component: "state-history", backend: printableBackendUrl(settings.backendUrl) });
  return new HistoryPruner({
    backendDir: settings.backend.dir,
    keep: settings.stateHistoryKeep,
    intervalMs: HISTORY_SWEEP_MS,
    onResult: ({ pruned, locked }) => {
      for (const p of pruned) log.info("pruned state history", { stack: p.stack, keep: settings.stateHistoryKeep, removedFiles: p.removedFiles, removedBytes: p.removedBytes });
      if (locked.length) log.debug("state history: stacks locked by an update, pruned at a later sweep", { stacks: locked });
    },
    onError: (error) => log.warn("state history pruning failed; the next sweep tries again", { error: error.message }),
  });
}
