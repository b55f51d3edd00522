/**
 * Machines of a MetaCluster (operator-e2e.ts) on network hosts (fleet-hosts.ts), made the way a
 * platform team makes them: the SSH key in a Secret, the host key pinned in the Machine, a worker
 * catalog (ClusterPackageVersion) with the dev registry as the hosts' image mirror. For an operator
 * that runs elsewhere than this process (a Pod): the waits read only what kubectl shows.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { eventually } from "./poll";
import type { FleetHosts, SandboxKubelet } from "./fleet-hosts";
import type { MetaCluster } from "./operator-e2e";

export interface MachineOperationJson {
  kind: string;
  result: string;
  startedAt?: string;
  finishedAt?: string;
  message?: string;
}

export interface MetaMachineJson {
  metadata: { name: string; generation: number };
  status?: {
    phase?: string;
    nodeName?: string;
    observedVersions?: Record<string, string>;
    lastOperation?: MachineOperationJson;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

export interface MachineEventJson {
  reason: string;
  message: string;
  count?: number;
  involvedObject: { kind: string; name: string };
}

const applyObject = (meta: MetaCluster, file: string, object: unknown) => {
  const path = join(meta.work, `${file}.yaml`);
  writeFileSync(path, stringify(object));
  meta.kubectl("apply", "-f", path);
};

/** The SSH key Secret `ssh-<i>` of each host and the catalog `<cluster>-workers` in namespace `fleet`. */
export function applyWorkerCatalog(meta: MetaCluster, fleet: FleetHosts, cluster: string, kubelet: SandboxKubelet): void {
  fleet.hosts.forEach((host, i) => meta.kubectl("-n", "fleet", "create", "secret", "generic", `ssh-${i}`, `--from-literal=privateKey=${host.privateKey}`));
  if (!fleet.registry) throw new Error("the catalog's registry mirror is the network hosts' view of the dev registry: start network hosts (startNetnsFleetHosts)");
  const mirror = [`http://${fleet.registry}`];
  applyObject(meta, `${cluster}-workers`, {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "ClusterPackageVersion",
    metadata: { name: `${cluster}-workers`, namespace: "fleet" },
    spec: { clusterRef: { name: cluster }, packages: fleet.packages(kubelet), registryMirrors: { "registry.k8s.io": mirror, "docker.io": mirror } },
  });
}

/** The Machine `fleet/<name>` on the fleet's i-th host, in `cluster` with the catalog `<cluster>-workers`. */
export function applyMachine(meta: MetaCluster, fleet: FleetHosts, name: string, i: number, cluster: string): void {
  const host = fleet.hosts[i];
  if (!host) throw new Error(`Machine ${name}: the fleet has ${fleet.hosts.length} hosts, no host ${i}`);
  applyObject(meta, `machine-${name}`, {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Machine",
    // The hosts share this machine's filesystem: each installs under its own root.
    metadata: { name, namespace: "fleet", annotations: { "kubeonkube.io/install-root": host.root } },
    spec: {
      clusterRef: { name: cluster },
      ip: host.ip,
      hostname: host.name,
      idc: "netns",
      ssh: { port: host.port, user: host.user, credentialsSecretRef: { name: `ssh-${i}` }, hostKey: host.hostKey },
      packageVersionRef: { name: `${cluster}-workers` },
    },
  });
}

/** `kubectl get` of the Machine; undefined while the apiserver does not answer. */
export function machineOf(meta: MetaCluster, name: string): MetaMachineJson | undefined {
  try {
    return meta.json<MetaMachineJson>("-n", "fleet", "get", "machine", name);
  } catch {
    return undefined;
  }
}

/**
 * Polls `fleet/<name>` until `done` holds. A Failed Machine ends the wait at once with its status
 * and `explain()` (the operator's log tail): the install of a healthy run never fails.
 */
export function waitForMachine(meta: MetaCluster, name: string, what: string, done: (m: MetaMachineJson) => boolean, explain: () => string, deadlineMs = 1_200_000): Promise<MetaMachineJson> {
  return eventually(
    `Machine fleet/${name} ${what}`,
    () => {
      const m = machineOf(meta, name);
      if (m?.status?.phase === "Failed") throw new Error(`Machine fleet/${name} failed: ${JSON.stringify(m.status)}\n${explain()}`);
      return m && done(m) ? m : undefined;
    },
    { timeoutMs: deadlineMs, everyMs: 500 },
  ).catch((error: Error) => {
    throw error.message.includes(" failed: ") ? error : new Error(`${error.message}\n${explain()}`);
  });
}

/** The Events of `fleet/<name>` with `reason`, each counted as often as it was recorded. */
export function eventCount(meta: MetaCluster, name: string, reason: string): number {
  return meta
    .json<{ items: MachineEventJson[] }>("-n", "fleet", "get", "events")
    .items.filter((e) => e.involvedObject.kind === "Machine" && e.involvedObject.name === name && e.reason === reason)
    .reduce((sum, e) => sum + (e.count ?? 1), 0);
}

/** The operator's JSON log lines (in a Pod's log text) that tell `msg` about the object `fleet/<name>`. */
export function logLinesAbout(log: string, msg: string, name: string): { msg?: string; key?: string; controller?: string; result?: string }[] {
  return log
    .split("\n")
    .flatMap((line): { msg?: string; key?: string; controller?: string; result?: string }[] => {
      try {
        // Not every line is the operator's (kubectl's own words, a line cut short).
        return line.startsWith("{") ? [JSON.parse(line)] : [];
      } catch {
        return [];
      }
    })
    .filter((l) => l.msg === msg && l.key === `fleet/${name}`);
}
