/**
 * charts/kube-on-kube is generated (tools/gen-chart.ts): the checked-in files must be exactly what
 * the generator renders now, so a change to installManifests without `npx tsx tools/gen-chart.ts` fails here.
 * test/integration/helm-chart.test.ts renders the chart with helm and compares the objects.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { runManifests, type ManifestsFlags } from "../../src/cli/manifests";
import { chartSources, CHART_DIR, renderHelmChart } from "../../src/operator/helm-chart";
import { FILE_BACKEND_ONE_REPLICA, installManifests, packageVersion } from "../../src/operator/install-manifests";

const ROOT = resolve(__dirname, "..", "..");
const chartDir = join(ROOT, CHART_DIR);
const filesUnder = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? filesUnder(join(dir, name)) : [relative(chartDir, join(dir, name))]));

describe("the checked-in Helm chart", () => {
  const rendered = renderHelmChart(chartSources(ROOT));

  it("is what tools/gen-chart.ts renders from installManifests now (else: npx tsx tools/gen-chart.ts)", () => {
    expect(filesUnder(chartDir).sort()).toEqual([...rendered.keys()].sort());
    for (const [path, content] of rendered) expect(readFileSync(join(chartDir, path), "utf8"), `${CHART_DIR}/${path} is stale: npx tsx tools/gen-chart.ts`).toBe(content);
  });

  it("has the package version as version and appVersion (the image tag's default)", () => {
    const chart = parse(rendered.get("Chart.yaml")!) as { version: string; appVersion: string };
    expect(chart.version).toBe(packageVersion());
    expect(chart.appVersion).toBe(packageVersion());
  });

  it("ships the CRDs in crds/ and the monitoring files as they are in docs/monitoring", () => {
    expect([...rendered.keys()].filter((p) => p.startsWith("crds/")).sort()).toEqual([
      "crds/clusterpackageversions.kubeonkube.io.yaml",
      "crds/clusters.kubeonkube.io.yaml",
      "crds/machines.kubeonkube.io.yaml",
    ]);
    expect(rendered.get("files/prometheus-rule.yaml")).toBe(readFileSync(join(ROOT, "docs", "monitoring", "prometheus-rule.yaml"), "utf8"));
  });
});

describe("installManifests: the values the chart parameterises", () => {
  it("refuses two replicas on the file backend, as the chart's template does", () => {
    expect(() => installManifests({ replicas: 2 })).toThrow(FILE_BACKEND_ONE_REPLICA);
    expect(() => installManifests({ replicas: 2, backendUrl: "s3://b" })).not.toThrow();
  });

  it("defaults the image tag to the package version", () => {
    const deployment = installManifests().find((o) => o.kind === "Deployment") as { spec: { template: { spec: { containers: Array<{ image: string }> } } } };
    expect(deployment.spec.template.spec.containers[0].image).toBe(`kube-on-kube/operator:${packageVersion()}`);
  });
});

describe("runManifests: the chart's values as flags", () => {
  afterEach(() => vi.restoreAllMocks());
  const base: ManifestsFlags = { namespace: "kube-on-kube-system", passphraseSecret: "p", operatorHeapMb: "512", terminationGraceSeconds: "1800" };
  const capture = () => {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
    vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => void err.push(args.join(" ")));
    return { out, err };
  };

  it("prints what installManifests gives for the same options", async () => {
    const { out } = capture();
    const flags = { ...base, backendUrl: "s3://b", replicas: "3", concurrency: "8", clusterWorkers: "16", machineWorkers: "32", secretsProvider: "awskms://k", objectStoreSecret: "s" };
    expect(await runManifests(flags)).toBe(0);
    const expected = installManifests({ passphraseSecret: "p", backendUrl: "s3://b", replicas: 3, concurrency: 8, clusterWorkers: 16, machineWorkers: 32, secretsProvider: "awskms://k", objectStoreCredentialsSecret: "s" });
    expect(parseAllDocuments(out.join("")).map((d) => d.toJS() as unknown)).toEqual(JSON.parse(JSON.stringify(expected)));
  });

  it("refuses a bad count and two replicas on the file backend, naming them, and prints nothing", async () => {
    const { out, err } = capture();
    expect(await runManifests({ ...base, machineWorkers: "0" })).toBe(2);
    expect(await runManifests({ ...base, replicas: "2" })).toBe(2);
    expect(out).toEqual([]);
    expect(err[0]).toBe('kok manifests: --machine-workers "0" must be an integer of at least 1');
    expect(err[1]).toContain(FILE_BACKEND_ONE_REPLICA);
  });

  it("ships --worker-defaults' file as installManifests' workerDefaultsText, and refuses one that is no YAML mapping", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kok-manifests-"));
    const good = join(dir, "worker-defaults.yaml");
    writeFileSync(good, "serviceManager: process\npreflight:\n  ignore: [swap]\n");
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "- serviceManager: process\n");
    const { out, err } = capture();
    expect(await runManifests({ ...base, workerDefaults: good })).toBe(0);
    const expected = installManifests({ passphraseSecret: "p", workerDefaultsText: "serviceManager: process\npreflight:\n  ignore: [swap]\n" });
    expect(parseAllDocuments(out.join("")).map((d) => d.toJS() as unknown)).toEqual(JSON.parse(JSON.stringify(expected)));
    out.length = 0;
    expect(await runManifests({ ...base, workerDefaults: bad })).toBe(2);
    expect(out).toEqual([]);
    expect(err.at(-1)).toBe(`kok manifests: --worker-defaults ${bad}: not a YAML mapping of worker settings`);
    rmSync(dir, { recursive: true, force: true });
  });
});
