/**
 * The real Pulumi engine for integration and e2e tests: the CLI and plugins built by
 * `npm run toolchain`, a `file://` backend in a temp dir, a passphrase, no plugin downloads.
 * A missing tool fails the test at once with the command that builds it; nothing is skipped.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import * as path from "node:path";
import { LocalWorkspace, type PulumiFn, type Stack } from "@pulumi/pulumi/automation";

const REPO = path.resolve(__dirname, "..", "..");
export const TOOLCHAIN_DIR = process.env.KOK_TOOLCHAIN_DIR ?? path.join(homedir(), ".cache", "kube-on-kube", "toolchain");

/** Environment of every engine process the tests start. */
export function engineEnv(): Record<string, string> {
  const cli = path.join(TOOLCHAIN_DIR, "bin", "pulumi");
  if (!existsSync(cli)) {
    throw new Error(`the Pulumi CLI is missing at ${cli}: build it with \`npm run toolchain\` (see docs/toolchain.md)`);
  }
  return {
    PATH: [path.join(TOOLCHAIN_DIR, "bin"), path.join(REPO, "tools", "bin"), process.env.PATH ?? ""].join(path.delimiter),
    PULUMI_HOME: path.join(TOOLCHAIN_DIR, "pulumi-home"),
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_CONFIG_PASSPHRASE: "kok-test-passphrase",
    KOK_NODE_MODULES: path.join(REPO, "node_modules"),
  };
}

export interface TestStack {
  readonly stack: Stack;
  readonly backendDir: string;
  /** Removes the stack's state (after a destroy, or to discard it). */
  dispose(): void;
}

/** A stack of an inline program on a fresh file backend. */
export async function newTestStack(projectName: string, program: PulumiFn, stackName = "test"): Promise<TestStack> {
  const env = engineEnv();
  // The Automation API finds the CLI on the test process's own PATH.
  process.env.PATH = env.PATH;
  const backendDir = mkdtempSync(path.join(tmpdir(), `kok-state-${projectName}-`));
  const stack = await LocalWorkspace.createOrSelectStack(
    { projectName, stackName, program },
    {
      projectSettings: { name: projectName, runtime: "nodejs", backend: { url: `file://${backendDir}` } },
      envVars: env,
    },
  );
  return { stack, backendDir, dispose: () => rmSync(backendDir, { recursive: true, force: true }) };
}

/** The raw text of every stack state file in a file backend, as stored at rest. */
export function readStateFile(backendDir: string): string {
  const root = path.join(backendDir, ".pulumi", "stacks");
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith(".json")) files.push(full);
    }
  };
  walk(root);
  if (files.length === 0) throw new Error(`no stack state under ${root}`);
  return files.map((f) => readFileSync(f, "utf8")).join("\n");
}

/** The provider plugins a ControlPlane needs, at the versions the pinned npm SDKs ask for. */
export const CONTROL_PLANE_PLUGINS = [
  { name: "kubernetes", version: "4.25.0" },
  { name: "tls", version: "5.3.0" },
];

/** Fails loudly, naming each provider plugin the engine would need and does not have. */
export function assertPlugins(plugins: readonly { name: string; version: string }[]): void {
  const env = engineEnv();
  const listed = JSON.parse(execFileSync(path.join(TOOLCHAIN_DIR, "bin", "pulumi"), ["plugin", "ls", "--json"], { env: { ...process.env, ...env }, encoding: "utf8" })) as {
    name: string;
    version: string;
  }[];
  const missing = plugins.filter((p) => !listed.some((l) => l.name === p.name && l.version === p.version));
  if (missing.length) {
    throw new Error(`Pulumi plugins missing in ${env.PULUMI_HOME}: ${missing.map((m) => `${m.name} ${m.version}`).join(", ")}; build them with \`npm run toolchain\``);
  }
}
