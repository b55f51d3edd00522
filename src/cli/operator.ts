/**
 * `kok operator [--kubeconfig PATH] [--namespace NS] [--operator-namespace NS] [--backend-url URL] [--resync-interval 5m]
 *               [--full-drift-check-interval 24h] [--concurrency N] [--machine-workers N] [--cluster-workers N] [--metrics-addr :8080] [--leader-election-namespace NS]
 *               [--worker-defaults FILE] [--probe-interval 10m] [--repair-after 5m] [--max-repairs 3]
 *               [--max-unhealthy 40%] [--policy FILE]`
 *
 * `--policy FILE` is the admin policy (docs/operations.md): what tenants' Clusters and Machines
 * may ask for. Without it the built-in policy applies; a bad file stops the start, naming every
 * problem.
 */
import { homedir } from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { withdrawFromEnvironment } from "../host/credentials-dir";
import { startOperator } from "../operator/operator";
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

export async function runOperator(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: "string" },
      namespace: { type: "string" },
      "operator-namespace": { type: "string" },
      "backend-url": { type: "string" },
      "state-dir": { type: "string" },
      "resync-interval": { type: "string", default: "5m" },
      "full-drift-check-interval": { type: "string", default: "24h" },
      concurrency: { type: "string", default: "4" },
      "machine-workers": { type: "string" },
      "cluster-workers": { type: "string" },
      "metrics-addr": { type: "string", default: ":8080" },
      "leader-election-namespace": { type: "string" },
      "secrets-provider": { type: "string" },
      "worker-defaults": { type: "string" },
      "probe-interval": { type: "string", default: "10m" },
      "repair-after": { type: "string", default: "5m" },
      "max-repairs": { type: "string", default: "3" },
      "max-unhealthy": { type: "string", default: "40%" },
      policy: { type: "string" },
    },
  });
  const stateDir = values["state-dir"] ?? path.join(homedir(), ".kube-on-kube", "operator");
  const backendUrl = values["backend-url"] ?? `file://${path.join(stateDir, "state")}`;
  const concurrency = Number(values.concurrency);
  const problems: string[] = [];
  if (!Number.isInteger(concurrency) || concurrency < 1) problems.push(`--concurrency "${values.concurrency}" must be a positive integer`);
  const workers = (flag: "machine-workers" | "cluster-workers") => {
    const raw = values[flag];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) problems.push(`--${flag} "${raw}" must be a positive integer`);
    return n;
  };
  const machineWorkers = workers("machine-workers");
  const clusterWorkers = workers("cluster-workers");
  let resyncMs = 0;
  try {
    resyncMs = parseDuration(values["resync-interval"] ?? "5m", "--resync-interval");
  } catch (e) {
    problems.push((e as Error).message);
  }
  const duration = (flag: "probe-interval" | "repair-after" | "full-drift-check-interval") => {
    try {
      return parseDuration(values[flag] ?? "", `--${flag}`);
    } catch (e) {
      problems.push((e as Error).message);
      return 0;
    }
  };
  const probeIntervalMs = duration("probe-interval");
  const repairAfterMs = duration("repair-after");
  const fullDriftCheckMs = duration("full-drift-check-interval");
  const maxRepairs = Number(values["max-repairs"]);
  if (!Number.isInteger(maxRepairs) || maxRepairs < 0) problems.push(`--max-repairs "${values["max-repairs"]}" must be a non-negative integer`);
  const share = /^(\d{1,3})%$/.exec(values["max-unhealthy"] ?? "");
  if (!share || Number(share[1]) > 100) problems.push(`--max-unhealthy "${values["max-unhealthy"]}" must be a percentage like 40%`);
  let workerDefaults: WorkerDefaults | undefined;
  if (values["worker-defaults"]) {
    try {
      workerDefaults = parseYaml(readFileSync(values["worker-defaults"], "utf8")) as WorkerDefaults;
    } catch (e) {
      problems.push(`--worker-defaults ${values["worker-defaults"]}: ${(e as Error).message}`);
    }
  }
  let policy: ResolvedAdminPolicy = resolveAdminPolicy();
  if (values.policy) {
    try {
      policy = loadAdminPolicy(readFileSync(values.policy, "utf8"), values.policy);
    } catch (e) {
      problems.push(`--policy: ${(e as Error).message}`);
    }
  }
  if (!values["secrets-provider"] && !process.env.PULUMI_CONFIG_PASSPHRASE) {
    problems.push("set PULUMI_CONFIG_PASSPHRASE (from a Secret in a Deployment) or --secrets-provider (a KMS URL): stack secrets are encrypted with it");
  }
  if (problems.length) {
    console.error(`kok operator: cannot start:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    return 2;
  }
  if (backendUrl.startsWith("file://")) {
    const { mkdirSync } = await import("node:fs");
    mkdirSync(backendUrl.slice("file://".length), { recursive: true });
  }
  const env = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
  // The passphrase reaches the engine only (engineEnv below): no other child of the operator inherits it.
  withdrawFromEnvironment(["PULUMI_CONFIG_PASSPHRASE"]);
  const operator = await startOperator({
    kubeconfigPath: values.kubeconfig,
    namespace: values.namespace,
    // In a Pod, the Deployment passes its own namespace through the downward API (POD_NAMESPACE).
    operatorNamespace: values["operator-namespace"] ?? process.env.POD_NAMESPACE,
    backendUrl,
    workRoot: path.join(stateDir, "work"),
    resyncMs,
    fullDriftCheckMs,
    concurrency,
    machineWorkers,
    clusterWorkers,
    metricsAddr: values["metrics-addr"] ?? ":8080",
    leaderElectionNamespace: values["leader-election-namespace"],
    secretsProvider: values["secrets-provider"],
    workerDefaults,
    policy,
    probeIntervalMs,
    remediation: { ...DEFAULT_REMEDIATION_POLICY, notReadyTimeoutMs: repairAfterMs, maxRemediations: maxRepairs, maxUnhealthyShare: Number(share?.[1] ?? 40) / 100 },
    engineEnv: {
      ...env,
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION ?? "true",
      KOK_NODE_MODULES: env.KOK_NODE_MODULES ?? path.resolve(__dirname, "..", "..", "node_modules"),
    },
  });
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await operator.stop();
  return 0;
}
