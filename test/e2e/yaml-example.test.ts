/**
 * examples/yaml under the real engine: the Pulumi YAML language host (built by the toolchain's
 * yaml-language target) runs the example's Pulumi.yaml, which creates a ControlPlane through the
 * kube-on-kube plugin (src/provider) in a fresh local meta-cluster (`kok dev`), whose node runs
 * the masters for real. The business cluster answers through the admin kubeconfig the YAML
 * program outputs; a preview after is quiet; destroy removes the masters' namespace.
 * The example file is used as it is, but for its plugin path, made absolute for the copy.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LocalWorkspace, type Stack } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toolchainBinary } from "../../src/dev/toolchain";
import { kubectl, serverVersion } from "../support/business-cluster";
import { devUp, freeNodePort, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";
import { assertPlugins, CONTROL_PLANE_PLUGINS, engineEnv } from "../support/engine";

const ROOT = resolve(__dirname, "..", "..");
const work = mkdtempSync(join(tmpdir(), "kok-yaml-"));
let cluster: DevCluster;
let stack: Stack;
const log = (line: string) => process.stdout.write(line);

describe("examples/yaml: a ControlPlane from Pulumi YAML", () => {
  let adminKubeconfig: string;
  let outputs: Record<string, { value: unknown; secret: boolean }>;

  beforeAll(async () => {
    assertPlugins(CONTROL_PLANE_PLUGINS);
    toolchainBinary("pulumi-language-yaml"); // fails naming the toolchain target when it is missing
    cluster = await newDevCluster();
    await devUp(cluster);
    const program = join(work, "program");
    cpSync(join(ROOT, "examples", "yaml"), program, { recursive: true });
    const yaml = readFileSync(join(program, "Pulumi.yaml"), "utf8");
    if (!yaml.includes("path: ../../provider")) throw new Error("examples/yaml/Pulumi.yaml no longer names ../../provider as the plugin path");
    writeFileSync(join(program, "Pulumi.yaml"), yaml.replace("path: ../../provider", `path: ${join(ROOT, "provider")}`));
    const env = engineEnv();
    mkdirSync(join(work, "state"));
    process.env.PATH = env.PATH;
    stack = await LocalWorkspace.createOrSelectStack({ stackName: "yaml", workDir: program }, { envVars: { ...env, PULUMI_BACKEND_URL: `file://${join(work, "state")}` } });
    await stack.setConfig("metaKubeconfig", { value: readFileSync(cluster.kubeconfig, "utf8"), secret: true });
    await stack.setConfig("nodePort", { value: String(await freeNodePort()) });
  });

  afterAll(async () => {
    // Normally destroyed by the last test; this only cleans up after a failure.
    if (stack) await stack.destroy({ onOutput: log }).catch((error: unknown) => console.error(error));
    if (cluster) await kok(["dev", "down", ...cluster.args, "--purge"]);
    rmSync(work, { recursive: true, force: true });
  });

  it("deploys the masters with pulumi up", async () => {
    const started = process.hrtime.bigint();
    const result = await stack.up({ onOutput: log });
    console.log(`pulumi up of examples/yaml: ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s`);
    outputs = result.outputs;
    expect(outputs.namespace.value).toBe("kok-yaml-a");
    expect(outputs.version.value).toBe("v1.36.3");
    expect(outputs.adminKubeconfig.secret).toBe(true);
    expect(String(outputs.endpoint.value)).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    adminKubeconfig = join(work, "admin.kubeconfig");
    writeFileSync(adminKubeconfig, String(outputs.adminKubeconfig.value), { mode: 0o600 });
  });

  it("gives a business cluster that answers through the admin kubeconfig", () => {
    const readyz = kubectl(adminKubeconfig, "get", "--raw", "/readyz?verbose");
    expect(readyz).toContain("[+]etcd ok");
    expect(readyz.trim().split("\n").at(-1)).toBe("readyz check passed");
    expect(serverVersion(adminKubeconfig)).toBe("v1.36.3");
  });

  it("previews no change right after", async () => {
    const preview = await stack.preview({ expectNoChanges: true });
    expect(Object.keys(preview.changeSummary)).toEqual(["same"]);
  });

  it("destroys everything it made", async () => {
    await stack.destroy({ onOutput: log });
    const namespaces = kubectl(cluster.kubeconfig, "get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}");
    expect(namespaces.split(" ")).not.toContain("kok-yaml-a");
  });
});
