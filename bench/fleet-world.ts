/**
 * The fleet the fleet-install and drift-sweep benchmarks share, built once: a business Cluster
 * made Ready by the operator on the dev meta-cluster, 2×N real sshd hosts on loopback with the
 * real package mirror, N Machines installed by the operator, and N more installed by a naive loop
 * of one raw stack per machine, one after another (the baseline), on the other N hosts.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation";
import { stringify } from "yaml";
import { API_GROUP, API_VERSION, mastersNamespaceOf } from "../src/api/v1alpha1";
import { toolchainDir } from "../src/dev/toolchain";
import { INSTALL_ROOT_ANNOTATION } from "../src/controllers/machine/context";
import { machineProgram } from "../src/program/machine-program";
import { SANDBOX_WORKER_DEFAULTS, startFleetHosts, type FleetHosts, type SshHost } from "../test/support";
import { startBenchOperator, type BenchOperator } from "./cluster-overhead";
import { clusterResource, nodePortSpec, waitReady } from "./cluster-stack";
import { devEnvironment, type DevEnvironment } from "./dev-environment";
import { sleep, timed, until } from "./harness";
import { NAMESPACE } from "./meta-objects";
import { processUsage } from "./operator-process";

export const BUSINESS = "biz";

export interface FleetWorld {
  readonly env: DevEnvironment;
  readonly fleet: FleetHosts;
  readonly operator: BenchOperator;
  readonly n: number;
  /** The hosts of the operator's Machines (m0…), then those of the raw stacks. */
  readonly operatorHosts: SshHost[];
  readonly rawStacks: Stack[];
  readonly operatorInstallMs: number;
  readonly sequentialInstallMs: number;
  /** CPU seconds on the operator's side (the operator and its engine processes) for the whole install. */
  readonly operatorInstallCpu: number;
  /** CPU seconds of this process and its engine processes for the sequential installs (includes the mirror it serves). */
  readonly sequentialInstallCpu: number;
  stop(): Promise<void>;
}

const base64 = (s: string) => Buffer.from(s, "base64").toString("utf8");

function machineSpec(host: SshHost, i: number, hostname: string) {
  return {
    clusterRef: { name: BUSINESS },
    ip: host.ip,
    hostname,
    idc: "lo-a",
    labels: { pool: "bench" },
    ssh: { port: host.port, user: host.user, credentialsSecretRef: { name: `ssh-${i}` }, hostKey: host.hostKey },
    packageVersionRef: { name: `${BUSINESS}-workers` },
  };
}

interface MachineState {
  items: { metadata: { name: string }; status?: { phase?: string; lastOperation?: { result?: string; message?: string } } }[];
}

async function installWithOperator(env: DevEnvironment, fleet: FleetHosts, hosts: SshHost[]): Promise<number> {
  hosts.forEach((host, i) => env.kubectl("-n", NAMESPACE, "create", "secret", "generic", `ssh-${i}`, `--from-literal=privateKey=${host.privateKey}`));
  env.apply("cpv", [
    { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "ClusterPackageVersion", metadata: { name: `${BUSINESS}-workers`, namespace: NAMESPACE }, spec: { clusterRef: { name: BUSINESS }, packages: fleet.packages("v1.36.3") } },
  ]);
  const machines = hosts.map((host, i) => ({
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: "Machine",
    metadata: { name: `m${i}`, namespace: NAMESPACE, annotations: { [INSTALL_ROOT_ANNOTATION]: host.root } },
    spec: machineSpec(host, i, `${BUSINESS}-m${i}`),
  }));
  const { ms } = await timed(async () => {
    env.apply("machines", machines);
    await until(
      `${hosts.length} Machines Ready`,
      () => {
        const list = JSON.parse(env.kubectl("-n", NAMESPACE, "get", "machines", "-o", "json")) as MachineState;
        const failed = list.items.find((m) => m.status?.lastOperation?.result === "failed");
        if (failed) throw new Error(`Machine ${failed.metadata.name} failed: ${failed.status?.lastOperation?.message}`);
        return list.items.length === hosts.length && list.items.every((m) => m.status?.phase === "Ready") ? true : undefined;
      },
      3_600_000,
      1000,
    );
  });
  return ms;
}

/** What a user without the operator would run: one stack per machine, the same program, in a loop. */
async function installSequentially(env: DevEnvironment, fleet: FleetHosts, hosts: SshHost[]): Promise<{ ms: number; stacks: Stack[] }> {
  const secret = (ns: string, name: string, key: string) => base64(env.kubectl("-n", ns, "get", "secret", name, "-o", `jsonpath={.data.${key.replace(/\./g, "\\.")}}`));
  const endpoint = env.kubectl("-n", NAMESPACE, "get", "cluster", BUSINESS, "-o", "jsonpath={.status.endpoint}");
  // The masters' namespace the operator derived for the business Cluster (src/api/v1alpha1/names.ts).
  const masters = mastersNamespaceOf({ metadata: { namespace: NAMESPACE, name: BUSINESS } });
  const cluster = {
    endpoint,
    caCertificate: secret(masters, `${BUSINESS}-controller-manager-certs`, "ca.crt"),
    caPrivateKey: secret(masters, `${BUSINESS}-controller-manager-certs`, "ca.key"),
    adminKubeconfig: secret(NAMESPACE, `${BUSINESS}-admin-kubeconfig`, "kubeconfig"),
  };
  const backend = mkdtempSync(path.join(tmpdir(), "kok-bench-machines-raw-"));
  const pulumiCommand = await PulumiCommand.get({ root: toolchainDir() });
  const stacks: Stack[] = [];
  const { ms } = await timed(async () => {
    for (const [i, host] of hosts.entries()) {
      const name = `raw${i}`;
      const stack = await LocalWorkspace.createOrSelectStack(
        {
          projectName: "kube-on-kube-bench-machines",
          stackName: name,
          program: async () =>
            machineProgram({
              name,
              spec: machineSpec(host, i, `${BUSINESS}-${name}`),
              packages: fleet.packages("v1.36.3"),
              credentials: { privateKey: host.privateKey },
              cluster,
              defaults: SANDBOX_WORKER_DEFAULTS,
              installRoot: host.root,
            }) as unknown as Record<string, unknown>,
        },
        {
          pulumiCommand,
          workDir: mkdtempSync(path.join(tmpdir(), "kok-bench-machines-work-")),
          projectSettings: { name: "kube-on-kube-bench-machines", runtime: "nodejs", backend: { url: `file://${backend}` } },
          envVars: env.engineEnv(),
        },
      );
      await stack.up();
      stacks.push(stack);
    }
  });
  return { ms, stacks };
}

/**
 * Stops the hosts' services and sshd and removes their roots. The kubelets leave mounts (pod
 * volumes) under the roots; nothing drained them, so unmount those (lazily) and try again.
 */
async function stopHosts(fleet: FleetHosts): Promise<void> {
  try {
    await fleet.stop();
  } catch {
    await sleep(2_000);
    const roots = fleet.hosts.map((h) => h.dir);
    const mounts = readFileSync("/proc/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "");
    for (const m of mounts.filter((m) => roots.some((r) => m.startsWith(r))).reverse()) spawnSync("umount", ["-l", m]);
    for (const dir of new Set(fleet.hosts.map((h) => path.dirname(h.dir)))) rmSync(dir, { recursive: true, force: true });
  }
}

let world: Promise<FleetWorld> | undefined;

export function fleetWorld(n: number, log: (m: string) => void): Promise<FleetWorld> {
  world ??= (async () => {
    const env = await devEnvironment(log);
    const defaults = path.join(env.work, "worker-defaults.yaml");
    writeFileSync(defaults, stringify(SANDBOX_WORKER_DEFAULTS));
    const operator = await startBenchOperator(env, ["--worker-defaults", defaults]);
    let fleet: FleetHosts | undefined;
    try {
      log(`  business Cluster ${BUSINESS} via the operator, ${2 * n} sshd hosts and the mirror`);
      env.apply(BUSINESS, [clusterResource(BUSINESS, nodePortSpec(await env.freeNodePort()))]);
      fleet = await startFleetHosts(2 * n, "bench");
      await waitReady(env, BUSINESS);
    } catch (error) {
      await operator.stop();
      if (fleet) await stopHosts(fleet);
      throw error;
    }
    const hosts = fleet;
    const stop = async () => {
      await operator.stop();
      await stopHosts(hosts);
    };
    const operatorHosts = hosts.hosts.slice(0, n);
    let operatorInstallMs: number;
    let operatorInstallCpu: number;
    let sequential: { ms: number; stacks: Stack[] };
    let sequentialInstallCpu: number;
    try {
      log(`  installing ${n} Machines with the operator`);
      const operatorBefore = operator.op.usage().cpuSeconds;
      operatorInstallMs = await installWithOperator(env, hosts, operatorHosts);
      operatorInstallCpu = operator.op.usage().cpuSeconds - operatorBefore;
      log(`  installing ${n} machines with one stack each, sequentially`);
      const selfBefore = processUsage(process.pid).cpuSeconds;
      sequential = await installSequentially(env, hosts, hosts.hosts.slice(n));
      sequentialInstallCpu = processUsage(process.pid).cpuSeconds - selfBefore;
    } catch (error) {
      await stop();
      throw error;
    }
    return {
      env,
      fleet: hosts,
      operator,
      n,
      operatorHosts,
      rawStacks: sequential.stacks,
      operatorInstallMs,
      sequentialInstallMs: sequential.ms,
      operatorInstallCpu,
      sequentialInstallCpu,
      stop,
    };
  })();
  return world;
}

/** Stops the operator and the hosts (the meta-cluster goes with the dev environment). */
export async function stopFleetWorld(): Promise<void> {
  const w = await world?.catch(() => undefined);
  world = undefined;
  await w?.stop();
}
