/**
 * The component provider (src/provider, plugin provider/pulumi-resource-kube-on-kube) under the
 * real engine: the plugin is started by the engine, serves its schema, and `construct` builds
 * ClusterPki for a program that knows the component only as a remote type token, as a Python, Go
 * or YAML program does. The tls plugin is real; no cluster is needed.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertPlugins, engineEnv, newTestStack, readStateFile, type TestStack } from "../support/engine";

const REPO = path.resolve(__dirname, "..", "..");
const PROVIDER_DIR = path.join(REPO, "provider");

/** ClusterPki as another language sees it: a type token, inputs and outputs, no code. */
class RemoteClusterPki extends pulumi.ComponentResource {
  declare readonly clusterCaCertificate: pulumi.Output<string>;
  declare readonly adminPrivateKey: pulumi.Output<string>;
  declare readonly certificatesExpireAt: pulumi.Output<string>;
  constructor(name: string, args: Record<string, unknown>) {
    super("kube-on-kube:index:ClusterPki", name, { ...args, clusterCaCertificate: undefined, adminPrivateKey: undefined, certificatesExpireAt: undefined }, {}, true);
  }
}

const scenario: { spec: Record<string, unknown> } = {
  spec: { mode: "minimal", kubernetesVersion: "v1.36.3", etcd: { version: "3.6.16", storage: { volumeSource: { emptyDir: {} } } } },
};

describe("the kube-on-kube component provider under the real engine", () => {
  let test: TestStack;

  beforeAll(async () => {
    assertPlugins([{ name: "tls", version: "5.3.0" }]);
    test = await newTestStack("kok-component-provider", async () => {
      const pki = new RemoteClusterPki("remote", { spec: scenario.spec, namespace: "kok-remote" });
      return { ca: pki.clusterCaCertificate, adminKey: pki.adminPrivateKey, expires: pki.certificatesExpireAt };
    });
    // The engine finds the plugin on PATH, as it finds a plugin a user puts there.
    test.stack.workspace.envVars.PATH = `${PROVIDER_DIR}${path.delimiter}${test.stack.workspace.envVars.PATH}`;
  });
  afterAll(async () => {
    await test?.stack.destroy();
    test?.dispose();
  });

  it("builds the component in the provider and returns its outputs, secrets kept secret", async () => {
    const result = await test.stack.up();
    const ca = new X509Certificate(String(result.outputs.ca.value));
    expect(ca.subject).toContain("CN=remote-ca");
    expect(ca.ca).toBe(true);
    expect(result.outputs.adminKey.secret).toBe(true);
    expect(String(result.outputs.expires.value)).toMatch(/^\d{4}-\d\d-\d\dT/);
    // The children were registered by the provider under the component, in this stack.
    const state = await test.stack.exportStack();
    const types = (state.deployment.resources as { type: string; parent?: string }[]).map((r) => r.type);
    expect(types).toContain("kube-on-kube:index:ClusterPki");
    expect(types.filter((t) => t === "tls:index/locallySignedCert:LocallySignedCert").length).toBeGreaterThan(5);
    // The private keys are encrypted at rest like any other secret.
    expect(readStateFile(test.backendDir).includes("PRIVATE KEY")).toBe(false);
  });

  it("previews no change on a second run", async () => {
    const preview = await test.stack.preview();
    expect(Object.keys(preview.changeSummary)).toEqual(["same"]);
  });

  it("refuses an invalid spec naming each property, and changes nothing", async () => {
    scenario.spec = { ...scenario.spec, mode: "tiny", kubernetesVersion: "1.36" };
    let message = "";
    try {
      await test.stack.up();
    } catch (error) {
      message = (error as Error).message;
    }
    // The engine's own rendering of the provider's input errors, one per property.
    expect(message).toContain("property spec.mode with value \"tiny\" has a problem: must be one of standard, minimal");
    expect(message).toContain("property spec.kubernetesVersion with value \"1.36\" has a problem");
    expect(message).toContain("nothing was changed");
  });

  it("serves through the engine the schema that provider/schema.json holds", () => {
    const env = { ...process.env, ...engineEnv() };
    // `package get-schema` starts the plugin and binds the schema it serves (a bad one fails here).
    const served = execFileSync("pulumi", ["package", "get-schema", path.join(PROVIDER_DIR, "pulumi-resource-kube-on-kube")], { env, encoding: "utf8" });
    const committed = JSON.parse(readFileSync(path.join(PROVIDER_DIR, "schema.json"), "utf8")) as Record<string, unknown>;
    expect(JSON.parse(served)).toEqual({ ...committed, config: {} });
  });
});

describe("the plugin as the npm package ships it, installed with pulumi plugin install --file", () => {
  const work = mkdtempSync(path.join(tmpdir(), "kok-plugin-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("runs the compiled provider from an installed copy of the launcher", () => {
    // The package's layout: dist/ compiled now, provider/, package.json; no src/.
    const pkg = path.join(work, "kube-on-kube");
    execFileSync(process.execPath, [path.join(REPO, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(REPO, "tsconfig.build.json"), "--outDir", path.join(pkg, "dist")], { stdio: "pipe" });
    cpSync(path.join(REPO, "package.json"), path.join(pkg, "package.json"));
    cpSync(PROVIDER_DIR, path.join(pkg, "provider"), { recursive: true });
    symlinkSync(path.join(REPO, "node_modules"), path.join(pkg, "node_modules"));
    // A PULUMI_HOME of its own: the shared toolchain's plugin cache stays as it is.
    const env = { ...process.env, ...engineEnv(), PULUMI_HOME: path.join(work, "home") };
    const version = JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")).version as string;
    execFileSync("pulumi", ["plugin", "install", "resource", "kube-on-kube", version, "--file", path.join(pkg, "provider", "pulumi-resource-kube-on-kube")], { env, stdio: "pipe" });
    // The copy in the plugin cache finds the package through KOK_PACKAGE_DIR.
    const served = execFileSync("pulumi", ["package", "get-schema", `kube-on-kube@${version}`], { env: { ...env, KOK_PACKAGE_DIR: pkg }, cwd: work, encoding: "utf8" });
    expect(JSON.parse(served)).toMatchObject({ name: "kube-on-kube", version, resources: { "kube-on-kube:index:ControlPlane": { isComponent: true } } });
  });
});
