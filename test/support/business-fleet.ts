/**
 * The set-up of the e2e tests whose business cluster runs workloads (issue 16): a dev meta-cluster
 * of their own with the CRDs, network hosts on its real node (src/dev/host-netns.ts), the operator
 * in this process, a Cluster with its add-ons, a worker catalog (ClusterPackageVersion) and one
 * Machine per host; then what such a test reads of the business cluster (Nodes, the `hello` Pods
 * of src/dev/hello-workload.ts, a command in a Pod) and a description of it for a failure message.
 *
 * test/e2e/addons-upgrade.test.ts uses it; test/e2e/workloads.test.ts does the same steps inline.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import type { ClusterSpec } from "../../src/api/v1alpha1";
import { loadConfig } from "../../src/dev/config";
import { devAdminPolicy } from "../../src/dev/dev-policy";
import { realNodeLayout } from "../../src/dev/node/layout";
import { toolchainBinary, toolchainEngineEnv } from "../../src/dev/toolchain";
import { startOperator, type OperatorOptions, type RunningOperator } from "../../src/operator/operator";
import { devUp, eventually, freeNodePort, installCrds, kok, newDevCluster, type DevCluster } from "./dev-cluster";
import { startNetnsFleetHosts, type FleetHosts, type SandboxKubelet } from "./fleet-hosts";
import { minimalSpec } from "./specs";

export const FLEET_NAMESPACE = "fleet";

/**
 * kubectl with a timeout: `kubectl exec` of a wget into a black hole would wait as long as the
 * connection does.
 */
export const kubectlWith = (kubeconfig: string, args: readonly string[]) =>
  execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8", stdio: "pipe", timeout: 60_000 });

export interface MachineJson {
  status?: { phase?: string; nodeName?: string; remediationCount?: number; lastOperation?: { result?: string; message?: string } };
}
export interface PodJson {
  metadata: { name: string; uid: string; creationTimestamp: string; deletionTimestamp?: string };
  spec: { nodeName?: string; containers: { image: string }[] };
  status: { podIP?: string; conditions?: { type: string; status: string }[] };
}
export interface NodeJson {
  metadata: { name: string };
  spec: { podCIDR?: string };
  status: { conditions: { type: string; status: string }[]; nodeInfo: { kubeletVersion: string } };
}

export const ready = (conditions: readonly { type: string; status: string }[] | undefined) => conditions?.find((c) => c.type === "Ready")?.status === "True";

export interface BusinessFleetOptions {
  /** Prefix of the scratch directory and of the engine's environment. */
  readonly prefix: string;
  /** Prefix of the hosts' names (`<hostPrefix>-<i>`): short, it names network namespaces. */
  readonly hostPrefix: string;
  /** The Cluster's name (namespace `fleet`). */
  readonly name: string;
  readonly kubernetesVersion: string;
  /** The kubelet of the Machines' catalog. */
  readonly kubelet: SandboxKubelet;
  /** Default 2. */
  readonly machines?: number;
  /** More of the Cluster's spec (its apiServer.service is the fleet's: a NodePort on the real node). */
  readonly spec?: Partial<ClusterSpec>;
  /** More operator options, e.g. `remediation` for a test that repairs Machines. */
  readonly operator?: Partial<Pick<OperatorOptions, "remediation" | "resyncMs" | "concurrency">>;
}

export interface BusinessFleet {
  readonly meta: DevCluster;
  readonly fleet: FleetHosts;
  /** Scratch space: manifests, kubeconfigs, the operator's state. */
  readonly work: string;
  /** The real node's address, where the hosts reach a business apiserver's NodePort. */
  readonly nodeIP: string;
  /** When the Cluster was applied (Date.now()). */
  readonly clusterApplied: number;
  /** The Machines' names, one per host. */
  readonly machines: readonly string[];
  /** kubectl on the meta-cluster. */
  kubectl(...args: string[]): string;
  /** Writes `objects` to `<work>/<file>.yaml` and applies them with kubectl (on the meta-cluster unless `kubeconfig`). */
  apply(file: string, objects: readonly unknown[], kubeconfig?: string): void;
  machine(name: string): MachineJson;
  /** The operator's last log lines, for a failure message. */
  operatorTail(): string;
  /** Waits until every Machine is Ready; a Failed one ends the wait. */
  machinesReady(): Promise<void>;
  /** The admin kubeconfig of a business cluster of the fleet namespace, written to a file. */
  businessKubeconfig(name: string): string;
  /** Stops the operator, the hosts and the meta-cluster; throws what failed after trying all. */
  stop(): Promise<void>;
}

/**
 * A dev meta-cluster, `machines` network hosts, the operator, then the Cluster `fleet/<name>`
 * (add-ons on, its apiserver a NodePort on the real node where the hosts reach it), the catalog
 * `<name>-workers` (the given kubelet, the dev registry as the workers' mirror of registry.k8s.io
 * and docker.io) and Machines `w<i>`. Returns once applied; `machinesReady()` waits for them.
 */
export async function startBusinessFleet(options: BusinessFleetOptions): Promise<BusinessFleet> {
  const work = mkdtempSync(join(tmpdir(), `${options.prefix}-`));
  const meta = await newDevCluster();
  const logs: string[] = [];
  let fleet: FleetHosts | undefined;
  let operator: RunningOperator | undefined;
  const kubectl = (...args: string[]) => kubectlWith(meta.kubeconfig, args);
  const apply = (file: string, objects: readonly unknown[], kubeconfig = meta.kubeconfig) => {
    const path = join(work, `${file}.yaml`);
    writeFileSync(path, objects.map((o) => stringify(o)).join("---\n"));
    kubectlWith(kubeconfig, ["apply", "-f", path]);
  };
  const stop = async () => {
    const steps: [string, () => Promise<unknown>][] = [
      ["stop the operator", async () => operator?.stop()],
      ["stop the hosts", async () => fleet?.stop()],
      ["stop the meta-cluster", async () => kok(["dev", "down", ...meta.args, "--purge"])],
    ];
    const failures: string[] = [];
    for (const [what, step] of steps) await step().catch((e: unknown) => failures.push(`${what}: ${(e as Error).message}`));
    if (failures.length) throw new Error(`teardown: ${failures.join("; ")}`);
    rmSync(work, { recursive: true, force: true });
  };
  try {
    await devUp(meta);
    const config = loadConfig(meta.stateDir)!;
    installCrds(meta, work);
    fleet = await startNetnsFleetHosts(meta.stateDir, options.machines ?? 2, options.hostPrefix);
    kubectl("create", "namespace", FLEET_NAMESPACE);
    fleet.hosts.forEach((host, i) => kubectl("-n", FLEET_NAMESPACE, "create", "secret", "generic", `ssh-${i}`, `--from-literal=privateKey=${host.privateKey}`));
    mkdirSync(join(work, "state"), { recursive: true });
    operator = await startOperator({
      kubeconfigPath: meta.kubeconfig,
      backendUrl: `file://${join(work, "state")}`,
      workRoot: join(work, "work"),
      resyncMs: 60_000,
      concurrency: 2,
      metricsAddr: "127.0.0.1:0",
      engineEnv: toolchainEngineEnv(options.prefix),
      workerDefaults: fleet.workerDefaults,
      policy: devAdminPolicy(config),
      log: (line) => void logs.push(JSON.stringify(line)),
      ...options.operator,
    });
    const nodeIP = realNodeLayout(config).nodeIP;
    const nodePort = await freeNodePort();
    const clusterApplied = Date.now();
    const spec: ClusterSpec = minimalSpec({ ...options.spec, kubernetesVersion: options.kubernetesVersion, apiServer: { service: { type: "NodePort", externalHost: nodeIP, nodePort, port: 6443 } } });
    apply("cluster", [{ apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name: options.name, namespace: FLEET_NAMESPACE }, spec }]);
    const catalog = `${options.name}-workers`;
    const mirror = [`http://${fleet.registry}`];
    apply("catalog", [
      {
        apiVersion: "kubeonkube.io/v1alpha1",
        kind: "ClusterPackageVersion",
        metadata: { name: catalog, namespace: FLEET_NAMESPACE },
        spec: { clusterRef: { name: options.name }, packages: fleet.packages(options.kubelet), registryMirrors: { "registry.k8s.io": mirror, "docker.io": mirror } },
      },
    ]);
    const hosts = fleet.hosts;
    const machines = hosts.map((_, i) => `w${i}`);
    apply(
      "machines",
      hosts.map((host, i) => ({
        apiVersion: "kubeonkube.io/v1alpha1",
        kind: "Machine",
        metadata: { name: machines[i], namespace: FLEET_NAMESPACE, annotations: { "kubeonkube.io/install-root": host.root } },
        spec: {
          clusterRef: { name: options.name },
          ip: host.ip,
          hostname: host.name,
          idc: "netns",
          ssh: { port: host.port, user: host.user, credentialsSecretRef: { name: `ssh-${i}` }, hostKey: host.hostKey },
          packageVersionRef: { name: catalog },
        },
      })),
    );
    const machine = (name: string) => JSON.parse(kubectl("-n", FLEET_NAMESPACE, "get", "machine", name, "-o", "json")) as MachineJson;
    const operatorTail = () => `operator log tail:\n${logs.slice(-40).join("\n")}`;
    return {
      meta,
      fleet,
      work,
      nodeIP,
      clusterApplied,
      machines,
      kubectl,
      apply,
      machine,
      operatorTail,
      async machinesReady() {
        await eventually(
          `Machines ${machines.join(", ")} Ready`,
          async () => {
            const all = machines.map(machine);
            const failed = all.find((m) => m.status?.phase === "Failed");
            if (failed) throw new Error(`a Machine failed: ${JSON.stringify(failed.status)}`);
            return all.every((m) => m.status?.phase === "Ready") ? true : undefined;
          },
          1_200_000,
        ).catch((error: Error) => {
          throw new Error(`${error.message}\n${operatorTail()}`);
        });
      },
      businessKubeconfig(name) {
        const secret = JSON.parse(kubectl("-n", FLEET_NAMESPACE, "get", "secret", `${name}-admin-kubeconfig`, "-o", "json")) as { data: { kubeconfig: string } };
        const file = join(work, `${name}.kubeconfig`);
        writeFileSync(file, Buffer.from(secret.data.kubeconfig, "base64"), { mode: 0o600 });
        return file;
      },
      stop,
    };
  } catch (error) {
    // A failed start leaves nothing behind: operator, hosts, the meta-cluster's processes.
    await stop().catch(() => undefined);
    throw error;
  }
}

/** What a test reads of a business cluster through its admin kubeconfig. */
export interface BusinessView {
  kubectl(...args: string[]): string;
  nodes(): NodeJson[];
  /** The `hello` Pods not being deleted. */
  helloPods(): PodJson[];
  /** Runs `sh -c command` in a Pod (killed after 20 s: busybox 1.35's wget crashes with -T). */
  exec(pod: PodJson, command: string): string;
  /** Nodes, kube-system and the hello Pods, for a failure message. */
  state(): string;
}

export function businessView(kubeconfig: string, extraState: () => string = () => ""): BusinessView {
  const kubectl = (...args: string[]) => kubectlWith(kubeconfig, args);
  const tryRun = (args: string[]) => {
    try {
      return kubectl(...args);
    } catch (e) {
      return `kubectl ${args.join(" ")}: ${(e as Error).message}`;
    }
  };
  return {
    kubectl,
    nodes: () => (JSON.parse(kubectl("get", "nodes", "-o", "json")) as { items: NodeJson[] }).items,
    helloPods: () => (JSON.parse(kubectl("get", "pods", "-l", "app=hello", "-o", "json")) as { items: PodJson[] }).items.filter((p) => !p.metadata.deletionTimestamp),
    exec: (pod, command) =>
      execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", kubeconfig, "exec", pod.metadata.name, "--", "sh", "-c", command], { encoding: "utf8", stdio: "pipe", timeout: 20_000 }),
    state: () =>
      [
        tryRun(["get", "nodes", "-o", "wide"]),
        tryRun(["-n", "kube-system", "get", "daemonsets,deployments,pods", "-o", "wide"]),
        tryRun(["get", "pods", "-o", "wide"]),
        extraState(),
      ].join("\n"),
  };
}

/** Every hello Pod Ready, `count` of them, one on each of `count` nodes. */
export async function helloSpread(view: BusinessView, what: string, count = 2): Promise<PodJson[]> {
  return eventually(
    what,
    async () => {
      const pods = view.helloPods();
      const onNodes = new Set(pods.map((p) => p.spec.nodeName));
      return pods.length === count && onNodes.size === count && pods.every((p) => ready(p.status.conditions)) ? pods : undefined;
    },
    300_000,
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n${view.state()}`);
  });
}

/**
 * `wget http://hello` from `from`: the Service by name (CoreDNS, kube-proxy and the pod network
 * at once). A fresh Pod's rules or CoreDNS may still be coming: a few tries within a minute.
 */
export async function wgetHello(view: BusinessView, from: PodJson): Promise<string> {
  return eventually(
    `wget http://hello from ${from.metadata.name}`,
    async () => {
      const answer = view.exec(from, "wget -qO- http://hello");
      return /^hello from hello-/.test(answer) ? answer : undefined;
    },
    60_000,
  );
}
