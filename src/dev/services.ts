/**
 * The dev cluster's services beside the masters: the image registry and the S3 object store.
 * Each is a background process with a pid file and a log like the masters (processes.ts), on a
 * loopback port derived from the port base, with its data under the state directory so `down`
 * (without `--purge`) keeps pushed images and stored objects.
 */
import { join } from "node:path";
import { statePaths, type DevConfig } from "./config";
import { waitFor } from "./health";
import { exitedWithLog } from "./log-tail";
import { objectStoreService } from "./object-store";
import { runningFromPidFile, startBackground, stopFromPidFile } from "./processes";
import { registryService } from "./registry";
import { toolchainBinary } from "./toolchain";

export interface Probe {
  /** The server answers (and accepts our credentials): `up` may finish setting it up. */
  readonly serving: boolean;
  /** Serving and set up (the bucket exists): what `status` reports. */
  readonly healthy: boolean;
  /** Why not, for `status`: the error or the answer. Never holds a credential. */
  readonly detail?: string;
  /** Waiting will not help (the server refuses our credentials): `up` stops at once with `detail`. */
  readonly fatal?: boolean;
}

export interface DevService {
  /** As `status` and `up` print it. */
  readonly name: string;
  /** pids/<file>.pid, logs/<file>.log */
  readonly file: string;
  /** Binary name in the toolchain's bin/. */
  readonly binary: string;
  readonly args: readonly string[];
  /**
   * Added to the inherited environment, read after `prepare` (credentials go here, never into
   * args: /proc/<pid>/cmdline is world-readable, /proc/<pid>/environ only to the owner).
   */
  env(): Readonly<Record<string, string>>;
  /** Variables of the inherited environment the process must not see (they would override its config). */
  readonly dropEnv?: (name: string) => boolean;
  readonly port: number;
  /** Where it listens, for `up`'s log line. */
  readonly address: string;
  /** Writes what the process reads at start: config file, data directory, credentials. Idempotent. */
  prepare(): void;
  probe(): Promise<Probe>;
  /** Once serving on `up`: finishes the setup (creates the bucket); returns a note for the log. */
  ready?(): Promise<string | undefined>;
}

export interface ServiceStatus {
  readonly name: string;
  readonly pid?: number;
  readonly healthy: boolean;
  readonly detail?: string;
}

export function devServices(config: DevConfig): DevService[] {
  return [registryService(config), objectStoreService(config)];
}

const pidFile = (config: DevConfig, service: DevService) => join(statePaths(config.stateDir).pids, `${service.file}.pid`);
const logFile = (config: DevConfig, service: DevService) => join(statePaths(config.stateDir).logs, `${service.file}.log`);

/** The services whose process is not running (their ports must be free before `up` starts anything). */
export function servicesToStart(config: DevConfig): DevService[] {
  return devServices(config).filter((s) => !runningFromPidFile(pidFile(config, s)));
}

async function probe(service: DevService): Promise<Probe> {
  try {
    return await service.probe();
  } catch (error) {
    return { serving: false, healthy: false, detail: error instanceof Error ? error.message : String(error) };
  }
}

/** Starts what is not running, waits until each serves, finishes its setup; a running one is reused. */
export async function startServices(config: DevConfig, log: (line: string) => void, elapsed: () => string): Promise<void> {
  for (const service of devServices(config)) {
    service.prepare();
    const pids = pidFile(config, service);
    const logs = logFile(config, service);
    if (runningFromPidFile(pids)) {
      log(`  ${service.name}: already running`);
    } else {
      const inherited = Object.entries(process.env).filter(([name]) => !service.dropEnv?.(name));
      startBackground({ command: toolchainBinary(service.binary), args: service.args, env: { ...Object.fromEntries(inherited), ...service.env() }, pidFile: pids, logFile: logs });
      log(`  ${service.name}: started on ${service.address} (log ${logs})`);
    }
    let last: Probe | undefined;
    await waitFor(
      `${service.name} (${service.address})`,
      async () => {
        last = await service.probe();
        // Ends the wait through isDead below, with the probe's explanation.
        if (last.fatal) return false;
        if (!last.serving && last.detail) throw new Error(last.detail);
        return last.serving;
      },
      {
        timeoutMs: 60_000,
        isDead: () => {
          if (last?.fatal) return last.detail;
          return exitedWithLog(pids, logs)();
        },
      },
    );
    const note = await service.ready?.();
    const final = await probe(service);
    if (!final.healthy) throw new Error(`${service.name} (${service.address}): not healthy after setup: ${final.detail ?? "no detail"}`);
    log(`  ${service.name}: healthy${note ? `, ${note}` : ""} (${elapsed()})`);
  }
}

/** Stops the services' processes; their data stays unless the caller purges the state directory. */
export async function stopServices(config: DevConfig, log: (line: string) => void): Promise<void> {
  for (const service of devServices(config).reverse()) {
    if (await stopFromPidFile(pidFile(config, service))) log(`  ${service.name}: stopped`);
  }
}

export async function serviceStatuses(config: DevConfig): Promise<ServiceStatus[]> {
  const statuses: ServiceStatus[] = [];
  for (const service of devServices(config)) {
    const record = runningFromPidFile(pidFile(config, service));
    if (!record) {
      statuses.push({ name: service.name, healthy: false, detail: `not running (no live process in ${pidFile(config, service)})` });
      continue;
    }
    const result = await probe(service);
    statuses.push({ name: service.name, pid: record.pid, healthy: result.healthy, detail: result.healthy ? undefined : result.detail });
  }
  return statuses;
}
