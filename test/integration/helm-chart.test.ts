/**
 * charts/kube-on-kube with the toolchain's helm (tools/toolchain.sh helm) against a dev
 * meta-cluster (`kok dev up --no-node`): `helm lint`; `helm template` with default values gives the
 * objects `kok manifests` prints, and with overrides what installManifests gives for the same
 * options; bad values fail naming the value; `helm install` puts the operator on the meta-cluster,
 * `helm uninstall` leaves its namespace, state volume and passphrase, and `helm template | kubectl
 * apply --dry-run=server` is accepted by its apiserver.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { toolchainBinary } from "../../src/dev/toolchain";
import { CHART_DIR, HELM_KEEP } from "../../src/operator/helm-chart";
import { FILE_BACKEND_ONE_REPLICA, installManifests, type ManifestOptions } from "../../src/operator/install-manifests";
import { devUp, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";

type Json = Record<string, unknown>;
const ROOT = resolve(__dirname, "..", "..");
const CHART = join(ROOT, CHART_DIR);
const helm = toolchainBinary("helm");

let cluster: DevCluster | undefined;
let workDir: string;

const run = (file: string, args: string[], input?: string) => spawnSync(file, args, { cwd: ROOT, encoding: "utf8", input, maxBuffer: 64 << 20 });
const objectsOf = (text: string): Json[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Json | null)
    .filter((o): o is Json => o !== null);
const key = (o: Json) => `${String(o.kind)}/${String((o.metadata as { namespace?: string }).namespace ?? "")}/${String((o.metadata as { name: string }).name)}`;
/** By kind/namespace/name, as JSON has them (an undefined field is no field, as in the YAML). */
const byKey = (objects: Json[]) => JSON.parse(JSON.stringify(Object.fromEntries(objects.map((o) => [key(o), o])))) as Json;

/** `helm template` with these values (a values file, as users write them); throws with helm's words. */
function template(values: Json = {}, extra: string[] = []): Json[] {
  const file = join(workDir, `values-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify(values));
  const result = run(helm, ["template", "kube-on-kube", CHART, "--include-crds", "-f", file, ...extra]);
  if (result.status !== 0) throw new Error(result.stderr);
  return objectsOf(result.stdout);
}

/**
 * What the chart has that `kok manifests` leaves to the user: the generated passphrase Secret, and
 * Helm's keep policy on the namespace and the state volume (HELM_KEEP).
 */
const withoutChartOnly = (objects: Json[]) =>
  objects
    .filter((o) => !(o.kind === "Secret" && (o.metadata as { name: string }).name.endsWith("-state-passphrase")))
    .map((o) => {
      const meta = o.metadata as { annotations?: Record<string, string> };
      if (!meta.annotations || !(o.kind === "Namespace" || o.kind === "PersistentVolumeClaim")) return o;
      const { [Object.keys(HELM_KEEP)[0]!]: keep, ...annotations } = meta.annotations;
      expect(keep).toBe("keep");
      return { ...o, metadata: { ...meta, annotations: Object.keys(annotations).length ? annotations : undefined } };
    });
const deploymentOf = (objects: Json[]) =>
  objects.find((o) => o.kind === "Deployment") as { spec: { replicas: number; template: { spec: { containers: Array<{ image: string; args: string[]; resources: unknown }> } } } };

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), "kok-helm-"));
  cluster = await newDevCluster();
  await devUp(cluster, ["--no-node"]);
}, 600_000);

afterAll(async () => {
  if (cluster) await kok(["dev", "down", ...cluster.args, "--purge"]);
  rmSync(workDir, { recursive: true, force: true });
}, 300_000);

describe("charts/kube-on-kube", () => {
  it("passes helm lint, also with every toggle on", () => {
    expect(run(helm, ["lint", CHART]).status).toBe(0);
    const on = run(helm, ["lint", CHART, "--set", "monitoring.serviceMonitor.enabled=true,monitoring.prometheusRule.enabled=true,monitoring.dashboard.enabled=true,backendUrl=s3://b"]);
    expect(on.stdout + on.stderr).toContain("0 chart(s) failed");
  });

  it("with default values renders exactly what `kok manifests` prints, plus the passphrase Secret", async () => {
    const printed = await kok(["manifests"]);
    expect(printed.code).toBe(0);
    const chart = template();
    expect(byKey(withoutChartOnly(chart))).toEqual(byKey(objectsOf(printed.stdout)));
    // What `helm uninstall` must leave: the namespace, the state volume and the passphrase.
    const keptKinds = chart.filter((o) => (o.metadata as { annotations?: Record<string, string> }).annotations?.["helm.sh/resource-policy"] === "keep").map(key);
    expect(keptKinds.sort()).toEqual(["Namespace//kube-on-kube-system", "PersistentVolumeClaim/kube-on-kube-system/kube-on-kube-operator-state", "Secret/kube-on-kube-system/kube-on-kube-operator-state-passphrase"]);
    expect(chart.filter((o) => o.kind === "Secret").map(key)).toEqual(["Secret/kube-on-kube-system/kube-on-kube-operator-state-passphrase"]);
  });

  const cases: Array<{ what: string; values: Json; options: ManifestOptions }> = [
    {
      what: "image, replicas, backend URL, object-store credentials, throughput, resources, heap, grace",
      values: {
        image: { repository: "registry.local:5000/kube-on-kube/operator", tag: "9.9.9" },
        replicas: 3,
        backendUrl: "s3://state/kok?region=us-east-1&endpoint=127.0.0.1:9000&s3ForcePathStyle=true",
        objectStore: { credentialsSecret: "state-store" },
        concurrency: 8,
        clusterWorkers: 16,
        machineWorkers: 64,
        resources: { requests: { cpu: "1", memory: "1Gi" }, limits: { memory: "4Gi" } },
        operatorHeapMb: 1024,
        terminationGracePeriodSeconds: 600,
        namespace: { name: "platform" },
        passphraseSecret: { name: "pass", create: false },
      },
      options: {
        image: "registry.local:5000/kube-on-kube/operator:9.9.9",
        replicas: 3,
        backendUrl: "s3://state/kok?region=us-east-1&endpoint=127.0.0.1:9000&s3ForcePathStyle=true",
        objectStoreCredentialsSecret: "state-store",
        concurrency: 8,
        clusterWorkers: 16,
        machineWorkers: 64,
        resources: { requests: { cpu: "1", memory: "1Gi" }, limits: { memory: "4Gi" } },
        operatorHeapMb: 1024,
        terminationGracePeriodSeconds: 600,
        namespace: "platform",
        passphraseSecret: "pass",
      },
    },
    {
      what: "a KMS secrets provider, the admin policy and a state volume size",
      values: { secretsProvider: "awskms://alias/kok?region=eu-west-1", adminPolicy: "sshTargets:\n  allowed: [10.0.0.0/8]\n", stateVolume: { size: "50Gi" } },
      options: { secretsProvider: "awskms://alias/kok?region=eu-west-1", policyText: "sshTargets:\n  allowed: [10.0.0.0/8]\n", stateVolumeSize: "50Gi" },
    },
    {
      what: "the worker defaults beside the admin policy",
      values: { adminPolicy: "sshTargets:\n  allowed: [10.0.0.0/8]\n", workerDefaults: "serviceManager: process\nkubelet:\n  cgroupDriver: cgroupfs\n" },
      options: { policyText: "sshTargets:\n  allowed: [10.0.0.0/8]\n", workerDefaultsText: "serviceManager: process\nkubelet:\n  cgroupDriver: cgroupfs\n" },
    },
  ];
  for (const c of cases) {
    it(`with ${c.what}: what installManifests gives for the same options`, () => {
      expect(byKey(withoutChartOnly(template(c.values)))).toEqual(byKey(installManifests(c.options)));
    });
  }

  it("shows the overrides where they belong (image, replicas, backend URL)", () => {
    const deployment = deploymentOf(template(cases[0].values));
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.spec.template.spec.containers[0].image).toBe("registry.local:5000/kube-on-kube/operator:9.9.9");
    expect(deployment.spec.template.spec.containers[0].args).toContain("--backend-url=s3://state/kok?region=us-east-1&endpoint=127.0.0.1:9000&s3ForcePathStyle=true");
  });

  it("renders the monitoring objects when asked, with the rules of docs/monitoring", () => {
    const objects = template({ monitoring: { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true, labels: { release: "prom" } }, dashboard: { enabled: true } } });
    expect(objects.filter((o) => ["ServiceMonitor", "PrometheusRule", "Service", "ConfigMap"].includes(String(o.kind))).map(key).sort()).toEqual([
      "ConfigMap/kube-on-kube-system/kube-on-kube-operator-dashboard",
      "PrometheusRule/kube-on-kube-system/kube-on-kube-operator",
      "Service/kube-on-kube-system/kube-on-kube-operator-metrics",
      "ServiceMonitor/kube-on-kube-system/kube-on-kube-operator",
    ]);
    const rule = objects.find((o) => o.kind === "PrometheusRule") as { metadata: { labels: Json }; spec: unknown };
    const docsRule = objectsOf(readFileSync(join(ROOT, "docs", "monitoring", "prometheus-rule.yaml"), "utf8"))[0] as { spec: unknown };
    expect(rule.spec).toEqual(docsRule.spec);
    expect(rule.metadata.labels.release).toBe("prom");
  });

  it("refuses bad values, naming them", () => {
    expect(() => template({ replicas: 2 })).toThrow(FILE_BACKEND_ONE_REPLICA);
    expect(() => template({ replicas: "two" })).toThrow(/\/replicas/);
    expect(() => template({ operatorHeapMb: 10 })).toThrow(/\/operatorHeapMb/);
    expect(() => template({ backendUrl: "ftp://x" })).toThrow(/\/backendUrl/);
    expect(() => template({ imag: { tag: "x" } })).toThrow(/additional properties 'imag'/);
  });

  it("installs on the meta-cluster with default values, upgrades, uninstalls keeping the state, and the apiserver accepts every rendering (dry run)", () => {
    const kubeconfig = cluster!.kubeconfig;
    const install = run(helm, ["install", "kube-on-kube", CHART, "--kubeconfig", kubeconfig, "--namespace", "default"]);
    expect(install.stderr).toBe("");
    expect(install.status).toBe(0);
    const kubectl = toolchainBinary("kubectl");
    const get = (...args: string[]) => execFileSync(kubectl, ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8" });
    expect(get("-n", "kube-on-kube-system", "get", "deployment/kube-on-kube-operator", "pvc/kube-on-kube-operator-state", "secret/kube-on-kube-operator-state-passphrase", "-o", "name").split("\n").filter(Boolean)).toHaveLength(3);
    expect(get("get", "crd", "clusters.kubeonkube.io", "-o", "name").trim()).toBe("customresourcedefinition.apiextensions.k8s.io/clusters.kubeonkube.io");
    // An upgrade keeps the generated passphrase: the stacks' secrets stay readable.
    const passphrase = get("-n", "kube-on-kube-system", "get", "secret/kube-on-kube-operator-state-passphrase", "-o", "jsonpath={.data.passphrase}");
    expect(run(helm, ["upgrade", "kube-on-kube", CHART, "--kubeconfig", kubeconfig, "--namespace", "default"]).status).toBe(0);
    expect(get("-n", "kube-on-kube-system", "get", "secret/kube-on-kube-operator-state-passphrase", "-o", "jsonpath={.data.passphrase}")).toBe(passphrase);
    // Uninstall leaves the namespace, the state and the passphrase (it used to delete the
    // namespace, and the "kept" Secret and the state volume with it); a re-install under the same
    // release name takes them back as they are.
    expect(run(helm, ["uninstall", "kube-on-kube", "--kubeconfig", kubeconfig, "--namespace", "default", "--wait", "--timeout", "2m"]).status).toBe(0);
    expect(get("get", "namespace/kube-on-kube-system", "-o", "jsonpath={.status.phase}")).toBe("Active");
    expect(get("-n", "kube-on-kube-system", "get", "pvc/kube-on-kube-operator-state", "secret/kube-on-kube-operator-state-passphrase", "-o", "name").split("\n").filter(Boolean)).toHaveLength(2);
    expect(get("-n", "kube-on-kube-system", "get", "deployments", "-o", "name")).toBe("");
    expect(run(helm, ["install", "kube-on-kube", CHART, "--kubeconfig", kubeconfig, "--namespace", "default"]).status).toBe(0);
    expect(get("-n", "kube-on-kube-system", "get", "secret/kube-on-kube-operator-state-passphrase", "-o", "jsonpath={.data.passphrase}")).toBe(passphrase);

    // In the installed namespace (a dry run creates no Namespace for the objects after it), with the
    // installed claim's size (a claim's size is immutable until it is bound).
    for (const values of [{}, { ...cases[0].values, namespace: { name: "kube-on-kube-system" } }, { ...cases[1].values, stateVolume: undefined }, cases[2].values]) {
      const text = template(values).map((o) => stringify(o)).join("---\n");
      const dryRun = run(kubectl, ["--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", "-"], text);
      // kubectl warns that helm's objects lack its last-applied annotation; nothing else may be said.
      const said = dryRun.stderr.split("\n").filter((l) => l && !/^Warning: resource \S+ is missing the kubectl.kubernetes.io\/last-applied-configuration annotation/.test(l));
      expect(said).toEqual([]);
      expect(dryRun.status).toBe(0);
      expect(dryRun.stdout).toContain("deployment.apps/kube-on-kube-operator");
    }
  }, 300_000);
});
