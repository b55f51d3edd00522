/**
 * `kok operator`: parses and checks its flags (program.ts declares them), checks the engine
 * (preflight.ts), then runs the operator until SIGINT/SIGTERM.
 *
 * `--policy FILE` is the admin policy (docs/operations.md): what tenants' Clusters and Machines
 * may ask for. Without it the built-in policy applies; a bad file stops the start, naming every
 * problem.
 */
import * as path from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { withdrawFromEnvironment } from "../host/credentials-dir";
import { checkEngine, formatProblems } from "./preflight";
import type { LogLevel } from "./program";
import type { WorkerDefaults } from "../program/machine-program";
import { DEFAULT_REMEDIATION_POLICY } from "../controllers/machine/remediation";
import { loadAdminPolicy, resolveAdminPolicy, type ResolvedAdminPolicy } from "../api/v1alpha1";

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
  readonly logLevel: LogLevel;
}

/** What the flags mean, once checked. */
export interface OperatorSettings {
  readonly backendUrl: string;
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
}

/** The flags checked and converted; every bad one is a problem (none stops the others' checks). */
export function operatorSettings(flags: OperatorFlags): { settings: OperatorSettings; problems: string[] } {
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
  const settings: OperatorSettings = {
    backendUrl: flags.backendUrl ?? `file://${path.join(flags.stateDir, "state")}`,
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
  };
  return { settings, problems };
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
  const { settings, problems } = operatorSettings(flags);
  const env = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
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
  for (const note of engine.notes) console.error(`kok operator: note: ${note}`);
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
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await operator.stop();
  return 0;
}
