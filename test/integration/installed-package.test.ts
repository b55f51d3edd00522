/**
 * The package as an application installs it: the tarball `npm pack` writes, unpacked into the
 * application's node_modules beside its dependencies, without the optional peer @pulumi/command.
 * What only shows there: the `exports` map is enforced (deep imports refused), and Pulumi's
 * closure serializer, which writes a module under node_modules as a `require` of its public path,
 * must find that path in the map for the dynamic providers of ControlPlane and SshStep.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installPacked, REPO, stagePackage } from "../support/packed-package";
import { serializedProviderDriver, UNREACHABLE_KUBECONFIG } from "../support/serialized-provider";
import { machine } from "../support/worker-fixtures";

const work = mkdtempSync(path.join(tmpdir(), "kok-installed-"));
let app: string;
let installed: string;

beforeAll(() => {
  app = installPacked(work, stagePackage(work), ["@pulumi/command"]);
  installed = path.join(app, "node_modules", "kube-on-kube");
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs `script` as a file of the application, as Node runs an installed program. */
function runInApp(name: string, script: string, env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const file = path.join(app, `${name}.js`);
  writeFileSync(file, script);
  const r = spawnSync(process.execPath, ["--preserve-symlinks", "--preserve-symlinks-main", file], { cwd: app, encoding: "utf8", timeout: 120_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The lines of `stdout` that start with "RESULT ". */
const results = (stdout: string) => stdout.split("\n").filter((l) => l.startsWith("RESULT ")).map((l) => l.slice(7));

describe("the installed package", () => {
  it("loads by its name without @pulumi/command or the development environment; deep imports are refused", () => {
    const r = runInApp(
      "entry",
      `const kok = require("kube-on-kube");
const loaded = Object.keys(require.cache);
console.log("RESULT " + typeof kok.ControlPlane + " " + typeof kok.WorkerNode);
console.log("RESULT " + require("kube-on-kube/package.json").name);
console.log("RESULT command " + loaded.filter((f) => f.includes("/@pulumi/command/")).length + " dev " + loaded.filter((f) => f.includes("/kube-on-kube/dist/dev/")).length);
try { require("kube-on-kube/dist/dev/meta-cluster.js"); console.log("RESULT deep import allowed"); } catch (e) { console.log("RESULT " + e.code); }`,
    );
    expect(r.stderr).toBe("");
    expect(results(r.stdout)).toEqual(["function function", "kube-on-kube", "command 0 dev 0", "ERR_PACKAGE_PATH_NOT_EXPORTED"]);
  });

  it("a WorkerNode on its default step provider names the package to install; on openssh it needs none", () => {
    const args = {
      machine: machine(),
      credentials: { privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nTEST-ONLY\n-----END OPENSSH PRIVATE KEY-----\n" },
      cluster: { endpoint: "https://prod-a.k8s.example.com:6443", caCertificate: "CA", bootstrapToken: "abcdef.0123456789abcdef" },
    };
    const r = runInApp(
      "worker-node",
      `const pulumi = require("@pulumi/pulumi");
pulumi.runtime.setMocks({ newResource: (a) => ({ id: a.name + "-id", state: a.inputs }), call: (a) => a.inputs }, "project", "stack", false);
const { WorkerNode } = require("kube-on-kube");
const args = ${JSON.stringify(args)};
try { new WorkerNode("default", args); console.log("RESULT created"); } catch (e) { console.log("RESULT " + e.message); }
const node = new WorkerNode("openssh", { ...args, stepProvider: "openssh" });
console.log("RESULT openssh " + Object.keys(node.steps).join(","));`,
    );
    expect(r.stderr).toBe("");
    const [defaultProvider, openssh] = results(r.stdout);
    expect(defaultProvider).toContain("WorkerNode default: stepProvider \"command\" (the default) runs the steps with @pulumi/command");
    expect(defaultProvider).toContain("npm install @pulumi/command");
    expect(openssh).toBe("openssh host,preflight,containerd,kubelet,cni,join,verify");
  });

  /** Serializes a provider of the installed package as Pulumi does, then runs `script` against it in a fresh module, as the dynamic-provider host does. */
  const serialized = (module: string, exportName: string, script: string, env: Record<string, string> = {}) =>
    runInApp(
      `serialize-${exportName}`,
      serializedProviderDriver({
        serializer: "@pulumi/pulumi/runtime/closure/serializeClosure",
        module: path.join(installed, "dist", module),
        exportName,
        resolveFrom: app,
        // Which of the package's public paths the serialized text requires.
        inspect: `const ours = [...sf.text.matchAll(/require\\("(kube-on-kube[^"]*)"\\)/g)].map((m) => m[1]);
  console.log("RESULT requires " + [...new Set(ours)].join(" "));`,
        script,
      }),
      env,
    );

  it("SshStep's provider serializes against the exports map and runs its step", () => {
    const r = serialized("components/ssh-step.js", "sshStepDynamicProvider", `const out = await loaded.create({ create: "echo step-ran; cat", stdin: "from-stdin" });\n  console.log("RESULT " + out.outs.stdout.trim().replace(/\\n/g, " "));`, { KOK_SSH_DIR: work });
    expect(r.stderr).toBe("");
    expect(results(r.stdout)).toEqual(["requires kube-on-kube/internal/ssh-client", "step-ran from-stdin"]);
  });

  it("RolloutGate's provider serializes against the exports map and runs its wait loop", () => {
    const r = serialized(
      "components/rollout-gate.js",
      "rolloutGateProvider",
      `try {
    await loaded.create({ kind: "Deployment", namespace: "ns", name: "apiserver", revision: "r1", timeoutSeconds: 1, kubeconfig: ${JSON.stringify(UNREACHABLE_KUBECONFIG)} });
    console.log("RESULT created");
  } catch (e) {
    console.log("RESULT " + e.message);
  }`,
      { KUBECONFIG: path.join(work, "absent-kubeconfig") },
    );
    expect(r.stderr).toBe("");
    const [requires, outcome] = results(r.stdout);
    expect(requires).toBe("requires kube-on-kube/internal/rollout-status");
    expect(outcome).toMatch(/^Deployment ns\/apiserver did not finish rolling out within 1s/);
  });

  it("its `kok` command runs from the bin path package.json gives", () => {
    const bin = (JSON.parse(readFileSync(path.join(installed, "package.json"), "utf8")) as { bin: Record<string, string> }).bin.kok;
    const r = spawnSync(process.execPath, ["--preserve-symlinks", path.join(installed, bin), "validate", path.join(REPO, "examples", "resources", "cluster.yaml")], { cwd: app, encoding: "utf8", timeout: 120_000 });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});
