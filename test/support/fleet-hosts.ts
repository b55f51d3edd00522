/**
 * The operator tests' worker hosts: the demo's sandbox fleet (src/dev/sandbox-fleet.ts) on
 * throwaway SSH hosts and a temporary mirror directory, both removed by `stop()`; and what the
 * tests do to a host's services.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { loadConfig } from "../../src/dev/config";
import { netnsHosts, servicePidFile, startFleetHosts as startFleet, type FleetHosts, type SandboxService } from "../../src/dev/sandbox-fleet";
import type { SshHost } from "../../src/dev/sshd-hosts";
import { startSshHosts, stopSshHosts } from "./sshd-hosts";

export { NETNS_WORKER_DEFAULTS, SANDBOX_WORKER_DEFAULTS, type FleetHosts, type SandboxKubelet } from "../../src/dev/sandbox-fleet";

/** `count` throwaway hosts named `<prefix>-<i>` with their mirror (on a free port unless `mirrorPort`). */
export function startFleetHosts(count: number, prefix: string, options: { readonly mirrorPort?: number } = {}): Promise<FleetHosts> {
  const hosts = {
    kept: false,
    mirrorDir: mkdtempSync(path.join(tmpdir(), "kok-mirror-")),
    start: (names: readonly string[]) => startSshHosts(names.length, prefix),
    stop: stopSshHosts,
  };
  return startFleet(count, prefix, { ...options, hosts });
}

/**
 * `count` throwaway network hosts (src/dev/host-netns.ts) named `<prefix>-<i>` on the real node of
 * the running dev cluster in `stateDir`, with their mirror on the machine's end of the node link.
 * `stop()` ends their processes, removes their namespaces and their directory.
 */
export async function startNetnsFleetHosts(stateDir: string, count: number, prefix: string): Promise<FleetHosts> {
  const config = loadConfig(stateDir);
  if (!config) throw new Error(`no dev cluster in ${stateDir}: start it first`);
  const home = mkdtempSync(path.join(tmpdir(), "kok-netns-hosts-"));
  const fleet = await startFleet(count, prefix, { hosts: netnsHosts(config, home) }).catch((error: unknown) => {
    rmSync(home, { recursive: true, force: true });
    throw error;
  });
  return {
    ...fleet,
    async stop() {
      await fleet.stop();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** The pid a "process" service manager recorded for a service on a host, if it runs. */
export function servicePid(host: SshHost, service: SandboxService): number | undefined {
  const file = servicePidFile(host.root, service);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").trim());
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** Kills a host's service the way a crash would (SIGKILL, pid file left behind). */
export function crashService(host: SshHost, service: SandboxService): void {
  const pid = servicePid(host, service);
  if (pid) process.kill(pid, "SIGKILL");
}
