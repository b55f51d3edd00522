/**
 * A business cluster runs workloads (issue 16), with nothing mocked: the operator (in this process)
 * brings up Cluster `biz` with its add-ons (flannel, kube-proxy, CoreDNS) and installs two Machines
 * on two network hosts (src/dev/host-netns.ts); the product alone gives them a pod network (flannel
 * writes each host's CNI configuration), Services and DNS. `hello` (src/dev/hello-workload.ts) runs
 * a Pod on each node, and from the Pod on one node: DNS, the Service by name, the other node's Pod
 * by IP, the headless Service and the `kubernetes` Service; `kubectl logs`, `exec` and `port-forward` reach the
 * kubelet of each node; the Cluster's AddonsReady turns True. A Node deleted and its Machine
 * repaired by the operator keeps all of it working, and so does a Machine deleted (its teardown
 * leaves no container of the removed Node running on the host) and applied again: a reinstall of
 * the host. A second Cluster with its add-ons disabled has none of them.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { loadConfig } from "../../src/dev/config";
import { devAdminPolicy } from "../../src/dev/dev-policy";
import { helloWorkload, HELLO_PORT } from "../../src/dev/hello-workload";
import { realNodeLayout } from "../../src/dev/node/layout";
import { toolchainBinary, toolchainEngineEnv } from "../../src/dev/toolchain";
import { startOperator, type RunningOperator } from "../../src/operator/operator";
import { devUp, eventually, freeNodePort, installCrds, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";
import { startNetnsFleetHosts, type FleetHosts } from "../support/fleet-hosts";
import { minimalSpec } from "../support/specs";

const work = mkdtempSync(join(tmpdir(), "kok-workloads-"));
const started = Date.now();
let cluster: DevCluster;
let fleet: FleetHosts | undefined;
let operator: RunningOperator | undefined;
const logs: string[] = [];
let clusterApplied = 0;
const seconds = (from: number) => `${((Date.now() - from) / 1000).toFixed(0)}s`;
// A timeout: `kubectl exec` of a wget into a black hole would wait as long as the connection does.
const run = (kubeconfig: string, args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8", stdio: "pipe", timeout: 60_000 });
const kubectl = (...args: string[]) => run(cluster.kubeconfig, args);
const applyFile = (kubeconfig: string, name: string, objects: unknown[]) => {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, objects.map((o) => stringify(o)).join("---\n"));
  run(kubeconfig, ["apply", "-f", file]);
};
const apply = (name: string, object: unknown) => applyFile(cluster.kubeconfig, name, [object]);
/** The operator's last words, for a failure message. */
const operatorTail = () => `operator log tail:\n${logs.slice(-40).join("\n")}`;

interface Machine {
  status?: { phase?: string; nodeName?: string; remediationCount?: number; lastOperation?: { result?: string; message?: string } };
}
interface Pod {
  metadata: { name: string; creationTimestamp: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status: { podIP?: string; conditions?: { type: string; status: string }[] };
}
interface Node {
  metadata: { name: string };
  spec: { podCIDR?: string };
  status: { conditions: { type: string; status: string }[] };
}

/** Machine `w<i>` on the i-th network host. */
function machineObject(i: number): unknown {
  const host = fleet!.hosts[i];
  return {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Machine",
    metadata: { name: `w${i}`, namespace: "fleet", annotations: { "kubeonkube.io/install-root": host.root } },
    spec: {
      clusterRef: { name: "biz" },
      ip: host.ip,
      hostname: host.name,
      idc: "netns",
      ssh: { port: host.port, user: host.user, credentialsSecretRef: { name: `ssh-${i}` }, hostKey: host.hostKey },
      packageVersionRef: { name: "biz-workers" },
    },
  };
}

beforeAll(async () => {
  cluster = await newDevCluster();
  await devUp(cluster);
  const config = loadConfig(cluster.stateDir)!;
  installCrds(cluster, work);
  fleet = await startNetnsFleetHosts(cluster.stateDir, 2, "wl");
  kubectl("create", "namespace", "fleet");
  fleet.hosts.forEach((host, i) => kubectl("-n", "fleet", "create", "secret", "generic", `ssh-${i}`, `--from-literal=privateKey=${host.privateKey}`));
  mkdirSync(join(work, "state"), { recursive: true });
  operator = await startOperator({
    kubeconfigPath: cluster.kubeconfig,
    backendUrl: `file://${join(work, "state")}`,
    workRoot: join(work, "work"),
    resyncMs: 60_000,
    concurrency: 2,
    metricsAddr: "127.0.0.1:0",
    engineEnv: toolchainEngineEnv("kok-workloads-e2e"),
    workerDefaults: fleet.workerDefaults,
    policy: devAdminPolicy(config),
    // A missing Node is repaired after 60 s, not 5 min: still after the controller-manager's Pod
    // garbage collector has removed the deleted Node's Pods (40 s), as with the default. One of two
    // machines down is repaired.
    remediation: { notReadyTimeoutMs: 60_000, maxRemediations: 5, minHealthyPeriodMs: 20_000, maxUnhealthyShare: 0.5 },
    log: (line) => void logs.push(JSON.stringify(line)),
  });
  const nodeIP = realNodeLayout(config).nodeIP;
  const [bizPort, barePort] = [await freeNodePort(), await freeNodePort()];
  clusterApplied = Date.now();
  apply("cluster", {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Cluster",
    metadata: { name: "biz", namespace: "fleet" },
    spec: minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: nodeIP, nodePort: bizPort, port: 6443 } } }),
  });
  apply("cpv", {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "ClusterPackageVersion",
    metadata: { name: "biz-workers", namespace: "fleet" },
    spec: { clusterRef: { name: "biz" }, packages: fleet.packages("v1.36.3"), registryMirrors: { "registry.k8s.io": [`http://${fleet.registry}`], "docker.io": [`http://${fleet.registry}`] } },
  });
  fleet.hosts.forEach((_, i) => apply(`machine-${i}`, machineObject(i)));
  apply("bare", {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Cluster",
    metadata: { name: "bare", namespace: "fleet" },
    spec: minimalSpec({
      apiServer: { service: { type: "NodePort", externalHost: nodeIP, nodePort: barePort, port: 6443 } },
      addons: { network: { enabled: false }, kubeProxy: { enabled: false }, coreDNS: { enabled: false } },
    }),
  });
}, 900_000);

afterAll(async () => {
  const steps: [string, () => Promise<unknown>][] = [
    ["stop the operator", async () => operator?.stop()],
    ["stop the hosts", async () => fleet?.stop()],
    ["stop the meta-cluster", async () => cluster && kok(["dev", "down", ...cluster.args, "--purge"])],
  ];
  const failures: string[] = [];
  for (const [what, step] of steps) await step().catch((e: unknown) => failures.push(`${what}: ${(e as Error).message}`));
  console.log(`whole test: ${seconds(started)}`);
  if (failures.length) throw new Error(`teardown: ${failures.join("; ")}`);
  rmSync(work, { recursive: true, force: true });
}, 300_000);

/** The admin kubeconfig of a business cluster, written to a file. */
function businessKubeconfig(name: string): string {
  const secret = JSON.parse(kubectl("-n", "fleet", "get", "secret", `${name}-admin-kubeconfig`, "-o", "json")) as { data: { kubeconfig: string } };
  const file = join(work, `${name}.kubeconfig`);
  writeFileSync(file, Buffer.from(secret.data.kubeconfig, "base64"), { mode: 0o600 });
  return file;
}

let bizKubeconfig = "";
const biz = (...args: string[]) => run(bizKubeconfig, args);
const ready = (conditions: { type: string; status: string }[] | undefined) => conditions?.find((c) => c.type === "Ready")?.status === "True";
const helloPods = () => (JSON.parse(biz("get", "pods", "-l", "app=hello", "-o", "json")) as { items: Pod[] }).items.filter((p) => !p.metadata.deletionTimestamp);
const nodes = () => (JSON.parse(biz("get", "nodes", "-o", "json")) as { items: Node[] }).items;
const machine = (name: string) => JSON.parse(kubectl("-n", "fleet", "get", "machine", name, "-o", "json")) as Machine;
const condition = (cluster: string, type: string) =>
  (JSON.parse(kubectl("-n", "fleet", "get", "cluster", cluster, "-o", "json")) as { status?: { conditions?: { type: string; status: string; reason: string; message: string }[] } }).status?.conditions?.find((c) => c.type === type);

/** The Cluster's AddonsReady condition True (refreshed at each drift check: resyncMs 60 s here). */
async function addonsReady(what: string): Promise<void> {
  const since = Date.now();
  let last: unknown;
  await eventually(
    what,
    async () => {
      const c = (last = condition("biz", "AddonsReady"));
      return c?.status === "True" ? c : undefined;
    },
    300_000,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; AddonsReady: ${JSON.stringify(last)}\n${clusterState()}`);
  });
  console.log(`${what} in ${seconds(since)}: ${JSON.stringify(condition("biz", "AddonsReady"))}`);
}

/** The names of the processes left in a network host's namespace (its sshd aside). */
function processesOf(netns: string): string[] {
  const pids = execFileSync("ip", ["netns", "pids", netns], { encoding: "utf8" }).split("\n").filter(Boolean);
  return pids.flatMap((pid) => {
    try {
      return [readFileSync(`/proc/${pid}/comm`, "utf8").trim()];
    } catch {
      return [];
    }
  });
}

/** What the cluster looks like, for a failure message: nodes, kube-system and the hello Pods described. */
function clusterState(): string {
  const tryRun = (args: string[]) => {
    try {
      return biz(...args);
    } catch (e) {
      return `kubectl ${args.join(" ")}: ${(e as Error).message}`;
    }
  };
  return [
    tryRun(["get", "nodes", "-o", "wide"]),
    tryRun(["-n", "kube-system", "get", "pods", "-o", "wide"]),
    tryRun(["get", "pods", "-o", "wide"]),
    tryRun(["describe", "pods", "-l", "app=hello"]),
    tryRun(["-n", "kube-system", "describe", "pods", "-l", "k8s-app=flannel"]),
    operatorTail(),
  ].join("\n");
}

/** Whether `ip` is in `cidr` (a.b.c.0/24, what the controller-manager gives a node). */
const inRange = (ip: string | undefined, cidr: string | undefined) => !!ip && !!cidr && cidr.endsWith(".0/24") && ip.startsWith(cidr.replace(/0\/24$/, ""));

/** Every hello Pod Ready, one on each of the two nodes, each with an address of its node's range. */
async function helloSpread(what: string): Promise<Pod[]> {
  return eventually(
    what,
    async () => {
      const pods = helloPods();
      const onNodes = new Set(pods.map((p) => p.spec.nodeName));
      const ranges = new Map(nodes().map((n) => [n.metadata.name, n.spec.podCIDR]));
      const placed = pods.every((p) => inRange(p.status.podIP, ranges.get(p.spec.nodeName ?? "")));
      return pods.length === 2 && onNodes.size === 2 && placed && pods.every((p) => ready(p.status.conditions)) ? pods : undefined;
    },
    300_000,
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n${clusterState()}`);
  });
}

/** From the hello Pod on `from`: DNS, the Service by name, `other` by IP, the headless Service, the `kubernetes` Service. */
async function networkChecks(from: Pod, other: Pod): Promise<void> {
  // busybox 1.35's wget crashes with -T (a timeout): a kill after 20 s instead.
  const exec = (command: string) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", bizKubeconfig, "exec", from.metadata.name, "--", "sh", "-c", command], { encoding: "utf8", stdio: "pipe", timeout: 20_000 });
  const kubernetesIP = biz("get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}");
  // CoreDNS may still be starting or a fresh Pod's iptables rules still coming: a few tries.
  const retry = (what: string, check: () => void) =>
    eventually(
      what,
      async () => {
        check();
        return true;
      },
      60_000,
    );
  await retry("nslookup kubernetes.default.svc.cluster.local", () => expect(exec("nslookup kubernetes.default.svc.cluster.local")).toContain(kubernetesIP));
  await retry("wget http://hello", () => expect(exec("wget -qO- http://hello")).toMatch(/^hello from hello-/));
  await retry(`wget the other node's Pod ${other.status.podIP}`, () => expect(exec(`wget -qO- http://${other.status.podIP}:${HELLO_PORT}`)).toContain(`hello from ${other.metadata.name} on ${other.spec.nodeName}`));
  await retry("nslookup hello-headless", () => {
    const answer = exec("nslookup hello-headless.default.svc.cluster.local");
    expect(answer).toContain(from.status.podIP);
    expect(answer).toContain(other.status.podIP);
  });
  // Through the Service to the apiserver's TLS port, a plain HTTP request: Go's TLS server answers
  // it with an HTTP 400, so the apiserver itself answered (a timeout would say the route is
  // missing). Not HTTPS: busybox 1.35's own TLS (wget without an `openssl` binary to delegate to,
  // as in this image) fails the handshake with the apiserver's ECDSA P-256 serving certificate
  // ("TLS error from peer (alert code 40)"; the same wget with openssl in PATH gets its 403).
  await retry("the kubernetes Service", () => {
    let out = "";
    try {
      out = exec("wget -S -O- http://kubernetes.default.svc:443/ 2>&1");
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? "") + String((e as { stderr?: string }).stderr ?? "");
    }
    // The whole answer in the failure: a routing error is told only there.
    if (!/400 Bad Request/.test(out)) throw new Error(`no 400 from the apiserver through http://kubernetes.default.svc:443/: ${JSON.stringify(out)}`);
  });
}

/** `kubectl logs` and `exec` of each hello Pod: the apiserver reaches each node's kubelet. */
function logsAndExec(pods: Pod[]): void {
  for (const pod of pods) {
    expect(biz("exec", pod.metadata.name, "--", "cat", "/www/index.html")).toBe(`hello from ${pod.metadata.name} on ${pod.spec.nodeName}\n`);
    // httpd -v logs each request's response; the readiness probes make some.
    expect(biz("logs", pod.metadata.name)).toMatch(/response:200/);
  }
}

/**
 * `kubectl port-forward` to a hello Pod: the apiserver's stream to the kubelet, and from it into
 * the Pod's network namespace (containerd's own forwarder). A local port of kubectl's choosing,
 * read from its first line; the page is the Pod's own.
 */
async function portForwarded(pod: Pod): Promise<string> {
  const child = spawn(toolchainBinary("kubectl"), ["--kubeconfig", bizKubeconfig, "port-forward", `pod/${pod.metadata.name}`, `:${HELLO_PORT}`], { stdio: ["ignore", "pipe", "pipe"] });
  let said = "";
  child.stdout.on("data", (c: Buffer) => (said += c.toString()));
  child.stderr.on("data", (c: Buffer) => (said += c.toString()));
  try {
    const port = await eventually(`kubectl port-forward to ${pod.metadata.name} listening`, async () => {
      if (child.exitCode !== null) throw new Error(`kubectl port-forward exited ${child.exitCode}: ${said}`);
      return /Forwarding from 127\.0\.0\.1:(\d+) ->/.exec(said)?.[1];
    }, 60_000);
    const answer = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(20_000) });
    return await answer.text();
  } finally {
    child.kill("SIGTERM");
  }
}

describe("a business cluster with its add-ons", () => {
  let podA: Pod;
  let podB: Pod;

  it("brings two Machines' Nodes Ready, with Pod ranges from the controller-manager and the CNI config from flannel", async () => {
    await eventually(
      "Machines w0 and w1 Ready",
      async () => {
        const all = ["w0", "w1"].map(machine);
        const failed = all.find((m) => m.status?.phase === "Failed");
        if (failed) throw new Error(`a Machine failed: ${JSON.stringify(failed.status)}`);
        return all.every((m) => m.status?.phase === "Ready") ? all : undefined;
      },
      1_200_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${operatorTail()}`);
    });
    console.log(`Cluster applied → both Machines Ready in ${seconds(clusterApplied)}`);
    bizKubeconfig = businessKubeconfig("biz");
    const all = await eventually("both Nodes Ready", async () => {
      const n = nodes();
      return n.length === 2 && n.every((x) => ready(x.status.conditions)) ? n : undefined;
    }).catch((error: Error) => {
      throw new Error(`${error.message}\n${clusterState()}`);
    });
    console.log(`Cluster applied → both Nodes Ready in ${seconds(clusterApplied)}`);
    for (const node of all) expect(node.spec.podCIDR, node.metadata.name).toMatch(/^10\.244\.\d+\.0\/24$/);
    expect(new Set(all.map((n) => n.spec.podCIDR)).size).toBe(2);
  });

  it("runs hello spread over both nodes", async () => {
    applyFile(bizKubeconfig, "hello", helloWorkload());
    const pods = await helloSpread("both hello Pods Ready on different nodes");
    console.log(`Cluster applied → first workload Pod Ready in ${seconds(clusterApplied)}`);
    [podA, podB] = pods.sort((a, b) => (a.spec.nodeName ?? "").localeCompare(b.spec.nodeName ?? ""));
  });

  it("reports AddonsReady on the Cluster once flannel, kube-proxy and CoreDNS run, while Ready stays the masters'", async () => {
    await addonsReady("hello running → Cluster biz AddonsReady True");
    expect(condition("biz", "AddonsReady")?.message).toMatch(/flannel 2\/2, kube-proxy 2\/2, coredns 2\/2/);
    expect(condition("biz", "Ready")?.status).toBe("True");
  });

  it("serves DNS, Services and Pods across nodes to a Pod", async () => {
    await networkChecks(podA, podB);
    await networkChecks(podB, podA);
  });

  it("reads logs, execs and port-forwards to a Pod on each node", async () => {
    logsAndExec([podA, podB]);
    for (const pod of [podA, podB]) expect(await portForwarded(pod)).toBe(`hello from ${pod.metadata.name} on ${pod.spec.nodeName}\n`);
  });

  it("keeps the network working after a Node is deleted and its Machine repaired", async () => {
    const nodeB = podB.spec.nodeName!;
    const oldCIDR = nodes().find((n) => n.metadata.name === nodeB)?.spec.podCIDR;
    const machineB = ["w0", "w1"].find((m) => machine(m).status?.nodeName === nodeB) ?? (fleet!.hosts[0].name === nodeB ? "w0" : "w1");
    const before = machine(machineB).status?.remediationCount ?? 0;
    const deleted = Date.now();
    biz("delete", "node", nodeB);
    await eventually(
      `Machine ${machineB} repaired and its Node ${nodeB} Ready again`,
      async () => {
        const m = machine(machineB);
        const node = nodes().find((n) => n.metadata.name === nodeB);
        return (m.status?.remediationCount ?? 0) > before && m.status?.phase === "Ready" && node && ready(node.status.conditions) ? node : undefined;
      },
      900_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${clusterState()}`);
    });
    console.log(`Node deleted → repaired and Ready in ${seconds(deleted)} (Pod range ${oldCIDR} → ${nodes().find((n) => n.metadata.name === nodeB)?.spec.podCIDR})`);
    // While node B was gone the Deployment may have put its replacement on node A; the scheduler
    // does not move Pods, so a second one there is deleted and comes back on B.
    const extra = helloPods()
      .filter((p) => p.spec.nodeName === podA.spec.nodeName)
      .sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp))
      .slice(1);
    for (const p of extra) biz("delete", "pod", p.metadata.name, "--wait=false");
    // Ready on both nodes, each Pod in its node's range: the one on B in B's new range. Whether it is
    // a new Pod or the old one in a new sandbox depends on whether the Pod garbage collector removed
    // the deleted Node's Pods before the kubelet registered again; the repair ended their containers
    // either way (a deleted Node's Pods belong to no Node), so none keeps an address of the old range.
    const pods = await helloSpread(`hello Pods Ready on both nodes after ${nodeB} came back`);
    console.log(`Node deleted → its hello Pod back Ready in ${seconds(deleted)}`);
    const a = pods.find((p) => p.spec.nodeName !== nodeB)!;
    const b = pods.find((p) => p.spec.nodeName === nodeB)!;
    await networkChecks(a, b);
    await networkChecks(b, a);
    logsAndExec([a, b]);
    [podA, podB] = [a, b];
  });

  it("keeps the network working after a Machine is deleted and re-applied (a reinstall of the host)", async () => {
    const nodeB = podB.spec.nodeName!;
    const index = fleet!.hosts.findIndex((h) => h.name === nodeB);
    expect(index, `the host of Node ${nodeB}`).toBeGreaterThanOrEqual(0);
    const name = `w${index}`;
    const deleted = Date.now();
    // The Machine's finalizer drains and removes the Node, then cleans the host (its stack's destroy).
    kubectl("-n", "fleet", "delete", "machine", name, "--wait=false");
    await eventually(
      `Machine ${name} and its Node ${nodeB} gone`,
      async () => {
        const machines = (JSON.parse(kubectl("-n", "fleet", "get", "machines", "-o", "json")) as { items: { metadata: { name: string } }[] }).items;
        return !machines.some((m) => m.metadata.name === name) && !nodes().some((n) => n.metadata.name === nodeB) ? true : undefined;
      },
      600_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${clusterState()}`);
    });
    console.log(`Machine deleted → Machine and Node gone in ${seconds(deleted)}`);
    // The teardown ended the host's Pods too: no container of the removed Node runs on.
    const netns = fleet!.hosts[index].netns?.name;
    if (netns) expect(processesOf(netns).filter((p) => /^(containerd|kubelet|flanneld|kube-proxy|pause|httpd)/.test(p))).toEqual([]);
    const reapplied = Date.now();
    apply(`machine-${index}-again`, machineObject(index));
    await eventually(
      `Machine ${name} re-installed and its Node ${nodeB} Ready`,
      async () => {
        const m = machine(name);
        if (m.status?.phase === "Failed") throw new Error(`Machine ${name} failed: ${JSON.stringify(m.status)}`);
        const node = nodes().find((n) => n.metadata.name === nodeB);
        return m.status?.phase === "Ready" && node && ready(node.status.conditions) ? node : undefined;
      },
      900_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${clusterState()}`);
    });
    console.log(`Machine re-applied → Node Ready in ${seconds(reapplied)}`);
    // The Deployment put the Pod of the removed Node on the other one: moved back by a delete.
    const extra = helloPods()
      .filter((p) => p.spec.nodeName === podA.spec.nodeName)
      .sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp))
      .slice(1);
    for (const p of extra) biz("delete", "pod", p.metadata.name, "--wait=false");
    const pods = await helloSpread(`hello Pods Ready on both nodes after ${nodeB} was re-installed`);
    expect(pods.map((p) => p.metadata.name)).not.toContain(podB.metadata.name);
    console.log(`Machine re-applied → its hello Pod back Ready in ${seconds(reapplied)}`);
    const a = pods.find((p) => p.spec.nodeName !== nodeB)!;
    const b = pods.find((p) => p.spec.nodeName === nodeB)!;
    await networkChecks(a, b);
    await networkChecks(b, a);
    logsAndExec([a, b]);
    await addonsReady("Machine re-installed → Cluster biz AddonsReady True");
  });
});

describe("a business cluster with its add-ons disabled", () => {
  it("has no flannel, kube-proxy or CoreDNS", async () => {
    await eventually(
      "Cluster bare Ready",
      async () => ((JSON.parse(kubectl("-n", "fleet", "get", "cluster", "bare", "-o", "json")) as { status?: { phase?: string } }).status?.phase === "Ready" ? true : undefined),
      900_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${operatorTail()}`);
    });
    const kubeconfig = businessKubeconfig("bare");
    const names = run(kubeconfig, ["-n", "kube-system", "get", "daemonsets,deployments,services,configmaps", "-o", "name"]);
    expect(names).not.toMatch(/flannel|kube-proxy|coredns|kube-dns/);
  });
});
