/**
 * A real registry for tests: the toolchain's distribution `registry` binary on a free loopback
 * port, storing into a temporary directory, stopped (by its own pid) when the test is done.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import * as path from "node:path";
import { toolchainDir } from "../../src/dev/toolchain";

export interface TestRegistry {
  /** "127.0.0.1:<port>". */
  readonly address: string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

export function registryBinary(): string {
  const bin = path.join(toolchainDir(), "bin", "registry");
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`the push tests need distribution's registry at ${bin}: build it with \`bash tools/toolchain.sh registry\``);
  }
  return bin;
}

/** Starts a registry in `dir` (storage and log there); `readOnly` refuses every upload, as in maintenance. */
export async function startRegistry(dir: string, opts: { readOnly?: boolean } = {}): Promise<TestRegistry> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const maintenance = opts.readOnly ? "  maintenance:\n    readonly:\n      enabled: true\n" : "";
  const config = path.join(dir, "config.yml");
  writeFileSync(config, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(dir, "data")}\n${maintenance}http:\n  addr: ${address}\n`);
  const logFile = path.join(dir, "registry.log");
  const log = openSync(logFile, "a");
  const child: ChildProcess = spawn(registryBinary(), ["serve", config], { stdio: ["ignore", log, log] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`registry exited (${child.exitCode}): ${readFileSync(logFile, "utf8").slice(-2000)}`);
    const ok = await fetch(`http://${address}/v2/`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (i >= 200) {
      child.kill("SIGKILL");
      throw new Error(`registry on ${address} did not answer /v2/ in 20s: ${readFileSync(logFile, "utf8").slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
