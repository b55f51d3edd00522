/**
 * The real Pulumi engine for the worker integration tests: the CLI and Pulumi home built by
 * `npm run toolchain` (never downloaded), a `file://` backend in a temp directory, and inline
 * Automation API programs. A missing piece fails the test with a message naming it.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import * as path from "node:path";
import { LocalWorkspace, PulumiCommand, type PulumiFn, type Stack } from "@pulumi/pulumi/automation";

export const TOOLCHAIN = process.env.KOK_TOOLCHAIN_DIR ?? path.join(homedir(), ".cache", "kube-on-kube", "toolchain");
export const PULUMI_BIN = path.join(TOOLCHAIN, "bin", "pulumi");
export const PULUMI_HOME = path.join(TOOLCHAIN, "pulumi-home");

/** Throws unless the engine (and the named resource plugins, e.g. ["command-1.2.1"]) are installed. */
export function requireEngine(plugins: string[] = []): void {
  if (!existsSync(PULUMI_BIN)) {
    throw new Error(`the Pulumi CLI is missing: ${PULUMI_BIN} does not exist. Build it with \`npm run toolchain\` (real-engine tests never download it).`);
  }
  const installed = existsSync(path.join(PULUMI_HOME, "plugins")) ? readdirSync(path.join(PULUMI_HOME, "plugins")) : [];
  const missing = plugins.filter((p) => !installed.some((dir) => dir.startsWith("resource-") && dir.replace(/^resource-/, "").replace(/-v(\d)/, "-$1") === p));
  if (missing.length > 0) {
    throw new Error(`Pulumi resource plugin(s) missing from ${path.join(PULUMI_HOME, "plugins")}: ${missing.join(", ")}. Build them with \`npm run toolchain\` (see docs/toolchain.md; automatic plugin downloads are off).`);
  }
}

/** A private bin directory with the dynamic-provider plugin shim, which the CLI looks up on PATH. */
function dynamicProviderShim(): string {
  const bin = mkdtempSync(path.join(tmpdir(), "kok-plugin-bin-"));
  const script = path.resolve(__dirname, "../../node_modules/@pulumi/pulumi/cmd/dynamic-provider");
  const shim = path.join(bin, "pulumi-resource-pulumi-nodejs");
  writeFileSync(shim, `#!/bin/sh\nexec node ${JSON.stringify(script)} "$@"\n`);
  chmodSync(shim, 0o755);
  return bin;
}

export interface EngineStack {
  readonly stack: Stack;
  readonly backend: string;
  /** Removes the state, work and plugin directories (after the test is done with the stack). */
  remove(): void;
}

export async function engineStack(name: string, program: PulumiFn): Promise<EngineStack> {
  requireEngine();
  const backend = mkdtempSync(path.join(tmpdir(), "kok-state-"));
  const work = mkdtempSync(path.join(tmpdir(), "kok-work-"));
  mkdirSync(path.join(work, ".pulumi"), { recursive: true });
  const pluginBin = dynamicProviderShim();
  const pulumiCommand = await PulumiCommand.get({ root: TOOLCHAIN, skipVersionCheck: true });
  const envVars = {
    PULUMI_HOME,
    PULUMI_BACKEND_URL: `file://${backend}`,
    PULUMI_CONFIG_PASSPHRASE: "kube-on-kube integration tests",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PATH: `${pluginBin}:${path.join(TOOLCHAIN, "bin")}:${process.env.PATH ?? ""}`,
  };
  const stack = await LocalWorkspace.createOrSelectStack(
    { stackName: name, projectName: "kok-workers-it", program },
    { workDir: work, pulumiCommand, envVars, projectSettings: { name: "kok-workers-it", runtime: "nodejs", backend: { url: `file://${backend}` } } },
  );
  return { stack, backend, remove: () => [backend, work, pluginBin].forEach((d) => rmSync(d, { recursive: true, force: true })) };
}
