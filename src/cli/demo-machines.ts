/**
 * The demo's worker side: two kept network hosts on the meta-cluster's real node (each its own
 * network namespace and address in the hosts subnet, sshd on port 22: dev/host-netns.ts,
 * dev/sandbox-fleet.ts) and the package mirror on the machine's end of the node link, their SSH
 * Secrets, a ClusterPackageVersion with kubelet v1.35.4 (canary 1, maxUnavailable 1; images pulled
 * through the dev registry as its registryMirrors) and one Machine per host, followed until every
 * Machine and its Node are Ready. The manifests are written to the demo's directory, with a
 * catalog for each kubelet the mirror serves: applying the other one is a gray release.
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { API_GROUP_VERSION, type WorkerPackages } from "../api/v1alpha1";
import { INSTALL_ROOT_ANNOTATION } from "../controllers/machine/context";
import { packagesRevision } from "../controllers/packageversion/revision";
import type { DevConfig } from "../dev/config";
import { netnsHosts, startFleetHosts, type FleetHosts, type SandboxKubelet } from "../dev/sandbox-fleet";
import type { SshHost } from "../dev/sshd-hosts";

export const DEMO_MIRROR_PORT = 18099;
const NAMESPACE = "fleet";
const CLUSTER = "demo";
const CATALOG = "demo-workers";
const HOSTS = 2;
/** The host whose Machine is the canary of every rollout. */
const CANARY = 1;

type DemoHost = Pick<SshHost, "name" | "ip" | "port" | "user" | "hostKey" | "root">;

const secretName = (host: Pick<SshHost, "name">) => `${host.name}-ssh`;

/** What the hosts' containerd pulls through instead of the public registries: the dev registry, as the workers reach it. */
export const demoRegistryMirrors = (registry: string): Record<string, string[]> => ({ "registry.k8s.io": [`http://${registry}`], "docker.io": [`http://${registry}`] });

/**
 * The catalog: the mirror's packages with one of its kubelets; rolled out canary first, then one
 * machine at a time; images through `registry` (host:port) when given.
 */
export function demoCatalog(packages: WorkerPackages, registry?: string): Record<string, unknown> {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: "ClusterPackageVersion",
    metadata: { name: CATALOG, namespace: NAMESPACE },
    spec: {
      clusterRef: { name: CLUSTER },
      packages,
      ...(registry ? { registryMirrors: demoRegistryMirrors(registry) } : {}),
      rollout: { canary: { selector: { matchLabels: { canary: "true" } }, count: 1 }, maxUnavailable: 1, healthGate: { readyTimeoutSeconds: 300 }, haltOnFailure: true, rollbackOnFailure: true },
    },
  };
}

/** One Machine per host; the install root annotation puts each host's files under its own directory. */
export function demoMachines(hosts: readonly DemoHost[]): Record<string, unknown>[] {
  return hosts.map((host, i) => ({
    apiVersion: API_GROUP_VERSION,
    kind: "Machine",
    metadata: { name: host.name, namespace: NAMESPACE, annotations: { [INSTALL_ROOT_ANNOTATION]: host.root } },
    spec: {
      clusterRef: { name: CLUSTER },
      ip: host.ip,
      hostname: host.name,
      idc: "netns",
      labels: { pool: "demo", ...(i === CANARY ? { canary: "true" } : {}) },
      ssh: { port: host.port, user: host.user, credentialsSecretRef: { name: secretName(host) }, hostKey: host.hostKey },
      packageVersionRef: { name: CATALOG },
    },
  }));
}

export interface DemoContext {
  /** The demo's directory (~/.kube-on-kube/demo): manifests are written here. */
  readonly work: string;
  /** Where the hosts are kept (the meta-cluster's state directory's hosts/). */
  readonly hostsHome: string;
  readonly kubectl: (args: string[], input?: string) => Promise<string>;
  /** kubectl against the business cluster; killed after `timeoutMs` when given. */
  readonly business: (args: string[], input?: string, timeoutMs?: number) => Promise<string>;
  readonly say: (line: string) => void;
  readonly elapsed: () => string;
  /** Resolves (and stays resolved) once the user asked to stop. */
  readonly interrupted: Promise<void>;
}

export interface DemoFleet {
  readonly fleet: FleetHosts;
  /** The kubelet of the catalog the Machines run now. */
  readonly kubelet: SandboxKubelet;
  /** A ready-to-apply catalog per kubelet: applying the other one is a gray release. */
  readonly catalogFiles: Record<SandboxKubelet, string>;
}

const KUBELETS: readonly SandboxKubelet[] = ["v1.35.4", "v1.36.3"];

/** Starts the hosts and the mirror, applies the Secrets, the catalog and the Machines. */
export async function startDemoFleet(ctx: DemoContext, config: DevConfig): Promise<DemoFleet> {
  const fleet = await startFleetHosts(HOSTS, CLUSTER, { hosts: netnsHosts(config, ctx.hostsHome, { kept: true }), mirrorPort: DEMO_MIRROR_PORT, log: (line) => ctx.say(`    ${line}`) });
  try {
    await reportMovedMachines(ctx, fleet.hosts);
    ctx.say(`    hosts ${fleet.hosts.map((h) => `${h.name} (sshd ${h.ip}:${h.port})`).join(", ")}; mirror ${fleet.mirror.url} (${fleet.mirror.artifacts.length} artifacts)`);
    for (const host of fleet.hosts) {
      const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: secretName(host), namespace: NAMESPACE }, type: "Opaque", stringData: { privateKey: host.privateKey } };
      // Server-side apply: client-side apply would copy the private key into an annotation.
      await ctx.kubectl(["apply", "--server-side", "--field-manager=kok-demo", "-f", "-"], JSON.stringify(secret));
    }
    const header = (what: string, file: string) => `# ${what}, written by \`npm start\` for the hosts and the mirror it runs:\n#   kubectl apply -f ${file}\n`;
    const machinesFile = join(ctx.work, "machines.yaml");
    writeFileSync(machinesFile, header("The demo's Machines", machinesFile) + demoMachines(fleet.hosts).map((o) => stringify(o)).join("---\n"));
    const catalogFiles = Object.fromEntries(
      KUBELETS.map((kubelet) => {
        const file = join(ctx.work, `cpv-${kubelet}.yaml`);
        writeFileSync(file, header(`The demo's catalog with kubelet ${kubelet}`, file) + stringify(demoCatalog(fleet.packages(kubelet), fleet.registry)));
        return [kubelet, file];
      }),
    ) as Record<SandboxKubelet, string>;
    const kept = await keptCatalog(ctx, fleet);
    const kubelet = kept ?? "v1.35.4";
    // Applied again when kept: the same packages, and the registry mirrors an older demo's catalog lacked.
    const files = [catalogFiles[kubelet], machinesFile];
    ctx.say(`    kubectl apply ${files.map((f) => `-f ${f}`).join(" ")}${kept ? ` (the kubelet of an earlier run's catalog is kept: ${kept})` : ""}`);
    await ctx.kubectl(["apply", ...files.flatMap((f) => ["-f", f])]);
    return { fleet, kubelet, catalogFiles };
  } catch (error) {
    await fleet.stop();
    throw error;
  }
}

/**
 * Machines an earlier demo left on other addresses (before the demo's hosts were network hosts,
 * they were sshd on 127.0.1.10-11:2222): a Machine's ip and ssh port may change, and applying the
 * new ones makes the operator install it again on the host's new address (its kept install root
 * is the same directory). Said here, so the re-install that follows is no surprise.
 */
async function reportMovedMachines(ctx: DemoContext, hosts: readonly DemoHost[]): Promise<void> {
  for (const host of hosts) {
    const old = await ctx.kubectl(["-n", NAMESPACE, "get", "machine", host.name, "-o", "jsonpath={.spec.ip}:{.spec.ssh.port}"]).catch(() => "");
    if (old && old !== `${host.ip}:${host.port}`) {
      ctx.say(`    Machine ${NAMESPACE}/${host.name} was on ${old} (an earlier demo's host): applied again on ${host.ip}:${host.port}, the operator installs it there again`);
    }
  }
}

/**
 * The kubelet version of a catalog an earlier run left (the user may have rolled it forward), when
 * it still matches what the mirror serves; otherwise undefined and the demo's catalog replaces it.
 */
async function keptCatalog(ctx: DemoContext, fleet: FleetHosts): Promise<SandboxKubelet | undefined> {
  let existing: { spec?: { packages?: WorkerPackages } };
  try {
    existing = JSON.parse(await ctx.kubectl(["-n", NAMESPACE, "get", "clusterpackageversion", CATALOG, "-o", "json"]));
  } catch {
    return undefined;
  }
  const revision = existing.spec?.packages && packagesRevision(existing.spec.packages);
  return KUBELETS.find((v) => revision === packagesRevision(fleet.packages(v)));
}

interface MachineJson {
  metadata: { name: string };
  status?: { phase?: string; observedVersions?: Record<string, string>; lastOperation?: { result?: string; message?: string }; conditions?: { type: string; status: string; message?: string }[] };
}
interface CatalogJson {
  status?: { phase?: string; updated?: number; ready?: number; total?: number; failedMachines?: string[] };
}
interface NodeJson {
  metadata: { name: string };
  status: { nodeInfo: { kubeletVersion: string }; conditions?: { type: string; status: string }[] };
}

/** The business cluster's Nodes as "Ready"/"NotReady" by name; empty while it does not answer. */
async function nodeStates(ctx: DemoContext): Promise<Map<string, string>> {
  try {
    const nodes = JSON.parse(await ctx.business(["get", "nodes", "-o", "json"])) as { items: NodeJson[] };
    return new Map(nodes.items.map((n) => [n.metadata.name, n.status.conditions?.find((c) => c.type === "Ready")?.status === "True" ? "Ready" : "NotReady"]));
  } catch {
    return new Map();
  }
}

function machineLine(m: MachineJson, node: string | undefined): string {
  const s = m.status ?? {};
  const versions = s.observedVersions ? `, ${Object.entries(s.observedVersions).map(([k, v]) => `${k} ${v}`).join(", ")}` : "";
  const failure = s.phase === "Failed" ? `: ${(s.lastOperation?.message ?? s.conditions?.find((c) => c.type === "Ready")?.message ?? "").slice(0, 400)}` : "";
  return `${s.phase ?? "Pending"}${failure}${versions}${node ? `; Node ${node}` : ""}`;
}

/** Prints each Machine's and the catalog's changes until all are Ready; false if interrupted first. */
export async function followDemoMachines(ctx: DemoContext, fleet: FleetHosts): Promise<boolean> {
  let stop = false;
  void ctx.interrupted.then(() => (stop = true));
  const names = fleet.hosts.map((h) => h.name);
  const last = new Map<string, string>();
  const report = (subject: string, line: string) => {
    if (last.get(subject) !== line) ctx.say(`    ${subject}: ${line} (${ctx.elapsed()})`);
    last.set(subject, line);
  };
  const hinted = new Set<string>();
  while (!stop) {
    const machines = (JSON.parse(await ctx.kubectl(["-n", NAMESPACE, "get", "machines", ...names, "-o", "json"])) as { items: MachineJson[] }).items;
    const catalog = JSON.parse(await ctx.kubectl(["-n", NAMESPACE, "get", "clusterpackageversion", CATALOG, "-o", "json"])) as CatalogJson;
    const nodes = await nodeStates(ctx);
    for (const m of machines) {
      report(`Machine ${NAMESPACE}/${m.metadata.name}`, machineLine(m, nodes.get(m.metadata.name)));
      if (m.status?.phase === "Failed" && !hinted.has(m.metadata.name)) {
        hinted.add(m.metadata.name);
        const host = fleet.hosts.find((h) => h.name === m.metadata.name);
        ctx.say(`      the operator retries with backoff; to see why: kubectl -n ${NAMESPACE} describe machine ${m.metadata.name}, and the host's logs in ${host?.root}/var/log/kube-on-kube/`);
      }
    }
    const c = catalog.status ?? {};
    report(`ClusterPackageVersion ${NAMESPACE}/${CATALOG}`, `${c.phase ?? "Pending"}, ${c.updated ?? 0}/${c.total ?? 0} updated, ${c.ready ?? 0} ready${c.failedMachines?.length ? `, failed: ${c.failedMachines.join(", ")}` : ""}`);
    if (c.phase === "Halted" && !hinted.has(CATALOG)) {
      hinted.add(CATALOG);
      ctx.say(`      the rollout halted: kubectl -n ${NAMESPACE} describe clusterpackageversion ${CATALOG} says why; fix the catalog and apply it again`);
    }
    const ready = machines.length === names.length && machines.every((m) => m.status?.phase === "Ready" && nodes.get(m.metadata.name) === "Ready");
    if (ready && c.phase === "Complete") return true;
    await Promise.race([new Promise((r) => setTimeout(r, 2000)), ctx.interrupted]);
  }
  return false;
}

/**
 * Runs kubectl without blocking this process (the operator and the mirror live in it too); with
 * `timeoutMs`, kills it after that long (an exec whose command hangs).
 */
export function runKubectl(binary: string, kubeconfig: string, args: string[], input?: string, timeoutMs = 0): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(binary, ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`kubectl ${args.join(" ")}: ${stderr.trim() || (error.killed ? `no answer within ${timeoutMs / 1000}s` : error.message)}`));
      else resolve(stdout);
    });
    child.stdin?.end(input ?? "");
  });
}
