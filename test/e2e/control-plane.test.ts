/**
 * A `minimal` ControlPlane's life, driven by the real Pulumi engine (Automation API, inline
 * program, file:// backend) in the local meta-cluster, whose node agent runs the masters for real:
 * deploy at v1.35.4; the business cluster answers /readyz?verbose through the generated admin
 * kubeconfig, its controller-manager and scheduler hold their Leases in its kube-system, and a
 * ServiceAccount token it issued is accepted; preview shows no changes; drift made by hand is
 * repaired by `up` with refresh; the upgrade to v1.36.3 really runs the new binaries; a two-minor
 * jump is refused before anything changes; destroy leaves nothing behind. Needs the toolchain
 * (pulumi, providers, both Kubernetes minors, etcd) and root. The tests run in order, one stack.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { toolchainBinary, toolchainDir } from "../../src/dev/toolchain";
import { clusterProgram } from "../../src/program/cluster-program";
import { devUp, eventually, freeNodePort, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";
import { minimalSpec } from "../support/specs";
import type { ClusterSpec } from "../../src/api/v1alpha1";

let NODE_PORT: number;
const PLUGINS = [
  { name: "kubernetes", version: "4.25.0" },
  { name: "tls", version: "5.3.0" },
];
let cluster: DevCluster;
const work = mkdtempSync(join(tmpdir(), "kok-e2e-"));
mkdirSync(join(work, "state"));
const pulumiHome = join(toolchainDir(), "pulumi-home");
const engineEnv = {
  PULUMI_HOME: pulumiHome,
  PULUMI_CONFIG_PASSPHRASE: "kok-e2e-passphrase",
  PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
  PULUMI_SKIP_UPDATE_CHECK: "true",
};

/** Fails loudly, naming each provider plugin the engine would need and does not have. */
function assertPlugins(): void {
  const listed = JSON.parse(execFileSync(toolchainBinary("pulumi"), ["plugin", "ls", "--json"], { env: { ...process.env, ...engineEnv }, encoding: "utf8" })) as {
    name: string;
    version: string;
  }[];
  const missing = PLUGINS.filter((p) => !listed.some((l) => l.name === p.name && l.version === p.version));
  if (missing.length) {
    throw new Error(`Pulumi plugins missing in ${pulumiHome}: ${missing.map((m) => `${m.name} ${m.version}`).join(", ")}; build them with \`npm run toolchain\``);
  }
}

const kubectl = (kubeconfig: string, ...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8" });

interface KubeconfigDoc {
  clusters: { cluster: { server: string; "certificate-authority-data": string } }[];
}

/** A request authenticated only by a bearer token (no client certificate). */
function postWithToken(kubeconfig: string, path: string, token: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const doc = parse(readFileSync(kubeconfig, "utf8")) as KubeconfigDoc;
  const { server, "certificate-authority-data": ca } = doc.clusters[0].cluster;
  const payload = JSON.stringify(body);
  return new Promise((done, fail) => {
    const req = request(
      `${server}${path}`,
      { method: "POST", ca: Buffer.from(ca, "base64"), headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(payload) } },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => done({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      },
    );
    req.on("error", fail);
    req.end(payload);
  });
}

const specAt = (kubernetesVersion: string) =>
  minimalSpec({
    kubernetesVersion,
    imageRepository: "registry.k8s.io",
    apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort: NODE_PORT, port: 6443 } },
  });

const meta = (...args: string[]) => kubectl(cluster.kubeconfig, ...args);
const serverVersion = (kubeconfig: string) =>
  (JSON.parse(kubectl(kubeconfig, "version", "-o", "json")) as { serverVersion: { gitVersion: string } }).serverVersion.gitVersion;

describe("ControlPlane on the local meta-cluster", () => {
  let stack: Stack;
  let adminKubeconfig: string;
  /** What the inline program deploys next; the tests move it forward. */
  let desired: { spec: ClusterSpec; running?: { kubernetesVersion: string } };
  const log = (line: string) => process.stdout.write(line);

  beforeAll(async () => {
    assertPlugins();
    cluster = await newDevCluster();
    NODE_PORT = await freeNodePort();
    desired = { spec: specAt("v1.35.4") };
    await devUp(cluster);
    const metaKubeconfig = readFileSync(cluster.kubeconfig, "utf8");
    const pulumiCommand = await PulumiCommand.get({ root: toolchainDir() });
    stack = await LocalWorkspace.createOrSelectStack(
      {
        stackName: "e2e",
        projectName: "kok-e2e",
        program: async () => clusterProgram({ name: "e2e", spec: desired.spec, running: desired.running, metaKubeconfig }),
      },
      {
        pulumiCommand,
        workDir: work,
        projectSettings: { name: "kok-e2e", runtime: "nodejs", backend: { url: `file://${join(work, "state")}` } },
        envVars: engineEnv,
      },
    );
    const started = Date.now();
    const result = await stack.up({ onOutput: log });
    console.log(`pulumi up of a minimal ControlPlane: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    adminKubeconfig = join(work, "e2e-admin.kubeconfig");
    writeFileSync(adminKubeconfig, String(result.outputs.adminKubeconfig.value), { mode: 0o600 });
  });

  afterAll(async () => {
    // Normally already destroyed by the last test; this only cleans up after a failure.
    if (stack) await stack.destroy({ onOutput: log }).catch((error: unknown) => console.error(error));
    if (cluster) await kok(["dev", "down", ...cluster.args, "--purge"]);
    rmSync(work, { recursive: true, force: true });
  });

  it("answers /readyz?verbose through the generated admin kubeconfig", () => {
    const readyz = kubectl(adminKubeconfig, "get", "--raw", "/readyz?verbose");
    expect(readyz).toContain("[+]etcd ok");
    expect(readyz.trim().split("\n").at(-1)).toBe("readyz check passed");
    expect(serverVersion(adminKubeconfig)).toBe("v1.35.4");
  });

  it("has the controller-manager and scheduler holding their Leases in kube-system", async () => {
    for (const lease of ["kube-controller-manager", "kube-scheduler"]) {
      const holder = await eventually(`Lease kube-system/${lease} held`, async () => {
        const json = JSON.parse(kubectl(adminKubeconfig, "-n", "kube-system", "get", "lease", lease, "-o", "json")) as { spec?: { holderIdentity?: string } };
        return json.spec?.holderIdentity || undefined;
      });
      expect(holder).toMatch(/^e2e-/);
    }
  });

  it("accepts a ServiceAccount token it issued", async () => {
    kubectl(adminKubeconfig, "-n", "default", "create", "serviceaccount", "e2e-check");
    const token = kubectl(adminKubeconfig, "-n", "default", "create", "token", "e2e-check").trim();
    const review = await postWithToken(adminKubeconfig, "/apis/authentication.k8s.io/v1/selfsubjectreviews", token, {
      apiVersion: "authentication.k8s.io/v1",
      kind: "SelfSubjectReview",
    });
    expect(review.status).toBe(201);
    expect((review.json as { status: { userInfo: { username: string } } }).status.userInfo.username).toBe("system:serviceaccount:default:e2e-check");
  });

  it("shows no changes in a preview right after up", async () => {
    const preview = await stack.preview({ expectNoChanges: true });
    expect(Object.keys(preview.changeSummary).filter((op) => op !== "same")).toEqual([]);
  });

  it("repairs drift made by hand with refresh and up", async () => {
    meta("-n", "e2e", "delete", "deployment", "e2e-apiserver", "--wait=true");
    meta("-n", "e2e", "patch", "service", "e2e-etcd-client", "--type=json", "-p", '[{"op":"replace","path":"/spec/ports/0/name","value":"drifted"}]');
    const drift = await stack.preview({ refresh: true });
    expect(drift.changeSummary.create).toBe(1);
    expect(drift.changeSummary.update).toBe(1);
    // A separate refresh, then up: `up --refresh` tried to update the deleted Deployment
    // ("deployments.apps not found"; see pulumi/pulumi-kubernetes#3089).
    await stack.refresh({ onOutput: log });
    await stack.up({ onOutput: log });
    expect(meta("-n", "e2e", "get", "service", "e2e-etcd-client", "-o", "jsonpath={.spec.ports[0].name}")).toBe("client");
    expect(meta("-n", "e2e", "get", "deployment", "e2e-apiserver", "-o", "jsonpath={.status.availableReplicas}")).toBe("1");
    expect(kubectl(adminKubeconfig, "get", "--raw", "/readyz")).toBe("ok");
  });

  it("upgrades one minor: the masters then run the new binaries", async () => {
    desired = { spec: specAt("v1.36.3"), running: { kubernetesVersion: "v1.35.4" } };
    await stack.up({ onOutput: log });
    expect(serverVersion(adminKubeconfig)).toBe("v1.36.3");
    const images = meta("-n", "e2e", "get", "pods", "-l", "kubeonkube.io/component!=etcd", "-o", "jsonpath={.items[*].spec.containers[0].image}").split(" ");
    expect(new Set(images)).toEqual(
      new Set(["registry.k8s.io/kube-apiserver:v1.36.3", "registry.k8s.io/kube-controller-manager:v1.36.3", "registry.k8s.io/kube-scheduler:v1.36.3"]),
    );
  });

  it("refuses a two-minor jump before anything changes", async () => {
    desired = { spec: specAt("v1.38.0"), running: { kubernetesVersion: "v1.36.3" } };
    await expect(stack.preview()).rejects.toThrow(/v1\.36\.3 → v1\.38\.0 skips 1 minor version/);
    expect(serverVersion(adminKubeconfig)).toBe("v1.36.3");
    desired = { spec: specAt("v1.36.3"), running: { kubernetesVersion: "v1.36.3" } };
  });

  it("destroy leaves nothing behind in the meta-cluster", async () => {
    await stack.destroy({ onOutput: log });
    expect(meta("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}").split(" ")).not.toContain("e2e");
    expect(meta("get", "secrets", "-A", "-l", "kubeonkube.io/cluster=e2e", "-o", "name")).toBe("");
    expect(meta("get", "pods", "-A", "-o", "name")).toBe("");
  });
});
