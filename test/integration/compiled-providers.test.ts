/**
 * The dynamic providers as the published package runs them: compiled to CommonJS (`dist/`),
 * serialized by Pulumi's closure serializer and loaded in a fresh Node process, as the engine's
 * dynamic-provider host does. The tsx-run suites cannot see what compilation changes: a
 * provider method that reached the provider through its own export compiled to
 * `exports.rolloutGateProvider`, which the serializer does not carry, and the compiled operator
 * failed every Cluster with "Cannot read properties of undefined (reading 'waitForRollout')".
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serializedProviderDriver, UNREACHABLE_KUBECONFIG } from "../support/serialized-provider";

const REPO = path.resolve(__dirname, "..", "..");
const work = mkdtempSync(path.join(tmpdir(), "kok-compiled-"));

beforeAll(() => {
  // The code under test is the working tree, compiled now (a stale dist/ would prove nothing).
  execFileSync(process.execPath, [path.join(REPO, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(REPO, "tsconfig.build.json")], { cwd: REPO, stdio: "pipe" });
}, 120_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Serializes `exportName` of a compiled module as Pulumi's dynamic resources do, then runs `script` against the loaded provider in a child process. */
function runSerialized(module: string, exportName: string, script: string, env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const driver = path.join(work, `driver-${exportName}.js`);
  writeFileSync(
    driver,
    serializedProviderDriver({
      serializer: path.join(REPO, "node_modules/@pulumi/pulumi/runtime/closure/serializeClosure"),
      module: path.join(REPO, "dist", module),
      exportName,
      resolveFrom: REPO,
      script,
    }),
  );
  const r = spawnSync(process.execPath, [driver], { encoding: "utf8", timeout: 60_000, env: { ...process.env, KUBECONFIG: path.join(work, "absent-kubeconfig"), ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("dynamic providers, compiled and serialized", () => {
  it("RolloutGate's create runs its wait loop in the provider process (and reports the unreachable cluster, not a missing function)", () => {
    const r = runSerialized(
      "components/rollout-gate.js",
      "rolloutGateProvider",
      `try {
    await loaded.create({ kind: "Deployment", namespace: "ns", name: "apiserver", revision: "r1", timeoutSeconds: 1, kubeconfig: ${JSON.stringify(UNREACHABLE_KUBECONFIG)} });
    console.log("RESULT created");
  } catch (e) {
    console.log("RESULT " + e.message);
  }`,
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^RESULT Deployment ns\/apiserver did not finish rolling out within 1s; still waiting for a readable Deployment/m);
  });

  it("SshStep's create runs its step in the provider process, in a private directory, without the engine's passphrase", () => {
    const r = runSerialized(
      "components/ssh-step.js",
      "sshStepDynamicProvider",
      `const out = await loaded.create({ create: 'echo "passphrase=\${PULUMI_CONFIG_PASSPHRASE:-none} tmp=$TMPDIR"; cat' , stdin: "from-stdin" });
  console.log("RESULT " + out.outs.stdout.replace(/\\n/g, " "));`,
      { PULUMI_CONFIG_PASSPHRASE: "engine-only", KOK_SSH_DIR: work },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(new RegExp(`^RESULT passphrase=none tmp=${work}/\\S+ from-stdin`, "m"));
  });
});
