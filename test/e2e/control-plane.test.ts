/**
 * A `minimal` ControlPlane deployed by the real Pulumi engine (Automation API, inline program,
 * file:// backend) into the local meta-cluster, whose node agent runs the masters for real. Then
 * the business cluster must answer: /readyz?verbose through the generated admin kubeconfig, the
 * controller-manager and scheduler holding their Leases in its kube-system, and a ServiceAccount
 * token it issued accepted. Needs the toolchain (pulumi, providers, Kubernetes, etcd) and root.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { toolchainBinary, toolchainDir } from "../../src/dev/toolchain";
import { clusterProgram } from "../../src/program/cluster-program";
import { devUp, eventually, kok, newDevCluster } from "../support/dev-cluster";
import { minimalSpec } from "../support/specs";

const NODE_PORT = 31643;
const PLUGINS = [
  { name: "kubernetes", version: "4.25.0" },
  { name: "tls", version: "5.3.0" },
];
const cluster = newDevCluster(12000, "10.90.0.0/16");
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

describe("ControlPlane on the local meta-cluster", () => {
  let stack: Stack;
  let adminKubeconfig: string;

  beforeAll(async () => {
    assertPlugins();
    await devUp(cluster);
    const metaKubeconfig = readFileSync(cluster.kubeconfig, "utf8");
    const spec = minimalSpec({
      imageRepository: "registry.k8s.io",
      apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort: NODE_PORT, port: 6443 } },
    });
    const pulumiCommand = await PulumiCommand.get({ root: toolchainDir() });
    stack = await LocalWorkspace.createOrSelectStack(
      { stackName: "e2e", projectName: "kok-e2e", program: async () => clusterProgram({ name: "e2e", spec, metaKubeconfig }) },
      {
        pulumiCommand,
        workDir: work,
        projectSettings: { name: "kok-e2e", runtime: "nodejs", backend: { url: `file://${join(work, "state")}` } },
        envVars: engineEnv,
      },
    );
    const started = Date.now();
    const result = await stack.up({ onOutput: (line) => process.stdout.write(line) });
    console.log(`pulumi up of a minimal ControlPlane: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    adminKubeconfig = join(work, "e2e-admin.kubeconfig");
    writeFileSync(adminKubeconfig, String(result.outputs.adminKubeconfig.value), { mode: 0o600 });
  });

  afterAll(async () => {
    if (stack) await stack.destroy({ onOutput: (line) => process.stdout.write(line) });
    await kok(["dev", "down", ...cluster.args, "--purge"]);
  });

  it("answers /readyz?verbose through the generated admin kubeconfig", () => {
    const readyz = kubectl(adminKubeconfig, "get", "--raw", "/readyz?verbose");
    expect(readyz).toContain("[+]etcd ok");
    expect(readyz.trim().split("\n").at(-1)).toBe("readyz check passed");
    const version = JSON.parse(kubectl(adminKubeconfig, "version", "-o", "json")) as { serverVersion: { gitVersion: string } };
    expect(version.serverVersion.gitVersion).toBe("v1.36.3");
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
});
