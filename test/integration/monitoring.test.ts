/**
 * The shipped dashboard and alerts (docs/monitoring/) against a real operator: `startOperator` on
 * a real kube-apiserver + etcd (test/support/apiserver.ts), with leader election over a real
 * Lease, a ClusterPackageVersion and a Machine to reconcile (no engine needed: the Machine waits
 * for its Cluster), then a scrape of its real /metrics endpoint. Every PromQL expression of the
 * dashboard and of the PrometheusRule is read, and each metric it names must be one the scrape
 * exports; a dashboard naming a metric that does not exist fails here.
 */
import * as k8s from "@kubernetes/client-node";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML, { parseAllDocuments, stringify } from "yaml";
import { allCustomResourceDefinitions } from "../../src/api/v1alpha1/crds";
import { startOperator, type RunningOperator } from "../../src/operator/operator";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { exportedNames, familiesOf, metricNamesOf, missingMetrics } from "../support/promql";
import { eventually } from "../support/poll";

const REPO = path.join(__dirname, "..", "..");
const MONITORING = path.join(REPO, "docs", "monitoring");

let api: TestApiserver;
let dir: string;
let operator: RunningOperator | undefined;
const lines: Record<string, unknown>[] = [];

const scrape = async () => (await fetch(`http://127.0.0.1:${operator!.server.address.port}/metrics`)).text();

/** Every `expr` of the dashboard's panels and every query of its template variables. */
function dashboardExpressions(): string[] {
  const dashboard = JSON.parse(readFileSync(path.join(MONITORING, "grafana-dashboard.json"), "utf8")) as unknown;
  const exprs: string[] = [];
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(walk);
    if (value === null || typeof value !== "object") return;
    for (const [key, v] of Object.entries(value)) {
      if (key === "expr" && typeof v === "string") exprs.push(v);
      else walk(v);
    }
  };
  walk((dashboard as { panels: unknown }).panels);
  for (const variable of (dashboard as { templating: { list: { type: string; query?: string | { query: string } }[] } }).templating.list) {
    if (variable.type === "query") exprs.push(typeof variable.query === "string" ? variable.query : variable.query!.query);
  }
  return exprs;
}

function ruleExpressions(): string[] {
  const rule = YAML.parse(readFileSync(path.join(MONITORING, "prometheus-rule.yaml"), "utf8")) as { kind: string; spec: { groups: { rules: { alert?: string; expr: string }[] }[] } };
  expect(rule.kind).toBe("PrometheusRule");
  return rule.spec.groups.flatMap((g) => g.rules.map((r) => r.expr));
}

beforeAll(async () => {
  api = await startTestApiserver();
  dir = mkdtempSync(path.join(tmpdir(), "kok-monitoring-"));
  const kc = api.kubeConfig();
  const kubeconfig = path.join(dir, "kubeconfig");
  writeFileSync(kubeconfig, kc.exportConfig());
  // kubectl, as users install them: client-node's typed serializer would drop the schema's x-kubernetes-* extensions.
  writeFileSync(path.join(dir, "crds.yaml"), allCustomResourceDefinitions().map((d) => stringify(d)).join("---\n"));
  const kubectl = path.join(process.env.KOK_TOOLCHAIN_DIR ?? path.join(homedir(), ".cache", "kube-on-kube", "toolchain"), "bin", "kubectl");
  execFileSync(kubectl, ["--kubeconfig", kubeconfig, "apply", "-f", path.join(dir, "crds.yaml")], { stdio: "pipe" });
  execFileSync(kubectl, ["--kubeconfig", kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", ...allCustomResourceDefinitions().map((d) => `crd/${(d.metadata as { name: string }).name}`)], { stdio: "pipe" });
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  await objects.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "fleet" } });

  operator = await startOperator({
    kubeconfigPath: kubeconfig,
    backendUrl: `file://${path.join(dir, "state")}`,
    workRoot: path.join(dir, "work"),
    resyncMs: 60_000,
    concurrency: 1,
    metricsAddr: "127.0.0.1:0",
    leaderElectionNamespace: "default",
    // No Cluster is created, so the engine never runs: the passphrase is only there to be redacted.
    engineEnv: { PATH: process.env.PATH ?? "", PULUMI_CONFIG_PASSPHRASE: randomBytes(24).toString("base64") },
    log: (line) => void lines.push(line),
    logLevel: "debug",
  });
  const samples = parseAllDocuments(readFileSync(path.join(REPO, "examples", "resources", "machines.yaml"), "utf8")).map((d) => d.toJS() as k8s.KubernetesObject);
  for (const object of samples) await objects.create(object);
});

afterAll(async () => {
  await operator?.stop();
  await api?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("docs/monitoring against a running operator's /metrics", () => {
  it("names only metrics the operator exports, in the dashboard and in the alerts", async () => {
    // Real reconciles of both kinds went through the real queues before the check.
    const text = await eventually("Machine and ClusterPackageVersion reconciles in the scrape", async () => {
      const t = await scrape();
      const done = ["Machine", "ClusterPackageVersion"].every((c) => new RegExp(`^controller_runtime_reconcile_total\\{controller="${c}",result="[a-z_]+"\\} [1-9]`, "m").test(t));
      return done ? t : undefined;
    });
    expect(text).toMatch(/^workqueue_adds_total\{name="Machine"\} [1-9]/m);
    expect(text).toMatch(/^workqueue_queue_duration_seconds_count\{name="Machine"\} [1-9]/m);
    expect(text).toMatch(/^workqueue_work_duration_seconds_count\{name="ClusterPackageVersion"\} [1-9]/m);
    expect(text).toMatch(/^controller_runtime_reconcile_time_seconds_count\{controller="Machine"\} [1-9]/m);
    expect(text).toContain('leader_election_master_status{name="kube-on-kube-operator"} 1');
    expect(text).toMatch(/^process_cpu_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    expect(text).not.toContain("kube_on_kube_process_");

    const dashboard = dashboardExpressions();
    const rules = ruleExpressions();
    expect(dashboard.length).toBeGreaterThanOrEqual(25);
    expect(rules.length).toBeGreaterThanOrEqual(7);
    const exported = exportedNames(familiesOf(text));
    expect(missingMetrics([...dashboard, ...rules], exported)).toEqual([]);
    // The check reads names out of the expressions, so it can fail: a made-up name is reported.
    expect(missingMetrics(['sum(rate(kube_on_kube_reconciles_total{job=~"$job"}[$__rate_interval]))'], exported)).toHaveLength(1);
    const named = new Set([...dashboard, ...rules].flatMap(metricNamesOf));
    console.log(`monitoring: ${dashboard.length} dashboard queries and ${rules.length} alert expressions name ${named.size} metrics, all among the ${exported.size} series names exported`);
  });

  it("logs JSON-shaped lines with levels, per controller and object key", () => {
    const started = lines.find((l) => l.msg === "operator started");
    expect(started).toMatchObject({ level: "info", time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), identity: expect.any(String) });
    const reconciled = lines.find((l) => l.msg === "reconciled" && l.controller === "Machine");
    expect(reconciled).toMatchObject({ level: "info", key: "fleet/worker-0001", result: expect.stringMatching(/^(success|requeue)$/), durationMs: expect.any(Number) });
    expect(lines.find((l) => l.msg === "reconciled" && l.controller === "ClusterPackageVersion")).toMatchObject({ key: "fleet/prod-a-v1.36" });
  });
});
