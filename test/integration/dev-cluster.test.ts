/**
 * `kok dev` for real: `up` without `--node` brings up the meta-cluster's processes and the real
 * node (kubelet + containerd; its workloads are tested in dev-real-node.test.ts), is idempotent
 * and lists everything in status; then `--node agent`, asked for explicitly because those tests are
 * about the agent's own mechanics (a Deployment's Pod as a local process in its own network
 * namespace, DNS and NodePort through the agent, `kok dev logs`, the agent's restart, agent.pid),
 * which a later `up` without `--node` keeps; `down` leaving nothing behind. Needs root, the
 * toolchain (`npm run toolchain`) and the images; fails, never skips, without them.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stateTag } from "../../src/dev/config";
import { clientFor, devUp, eventually, freeNodePort, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";

let cluster: DevCluster;
let tag: string;
let NODE_PORT: number;

function netnsOfThisCluster(): string[] {
  return execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.split(" ")[0])
    .filter((n) => n.startsWith(`kok${tag}-`));
}

/** Alive and not a zombie (an exited child its reaper has not collected yet is gone for us). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Live processes whose command line contains `text` (as `pgrep -f`, without needing procps). */
function pidsMatching(text: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry) && running(Number(entry)))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

function httpGet(url: string): Promise<string> {
  return new Promise((done, fail) => {
    request(url, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => done(body));
    })
      .on("error", fail)
      .end();
  });
}

/** A single-member etcd: the same local binary the masters use, probes on its metrics port. */
const deployment = {
  metadata: { name: "kv", namespace: "default" },
  spec: {
    replicas: 1,
    selector: { matchLabels: { app: "kv" } },
    template: {
      metadata: { labels: { app: "kv" } },
      spec: {
        nodeSelector: { "node-role.kubeonkube.io/master": "true" },
        containers: [
          {
            name: "etcd",
            image: "registry.k8s.io/etcd:3.6.16-0",
            command: [
              "etcd",
              "--name=$(POD_NAME)",
              "--data-dir=/var/lib/etcd/data",
              "--listen-client-urls=http://0.0.0.0:2379",
              "--advertise-client-urls=http://$(POD_IP):2379",
              "--listen-peer-urls=http://0.0.0.0:2380",
              "--initial-advertise-peer-urls=http://$(POD_IP):2380",
              "--initial-cluster=$(POD_NAME)=http://$(POD_IP):2380",
              "--listen-metrics-urls=http://0.0.0.0:2381",
            ],
            env: [
              { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
              { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
            ],
            volumeMounts: [{ name: "data", mountPath: "/var/lib/etcd" }],
            readinessProbe: { httpGet: { path: "/readyz", port: 2381 }, periodSeconds: 2 },
            livenessProbe: { httpGet: { path: "/livez", port: 2381 }, periodSeconds: 10 },
          },
        ],
        volumes: [{ name: "data", emptyDir: {} }],
      },
    },
  },
};

const MASTERS_AND_SERVICES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "registry", "object store"];

describe("kok dev up without --node: the real node", () => {
  let real: DevCluster;
  let upOutput = "";

  beforeAll(async () => {
    real = await newDevCluster();
    upOutput = (await devUp(real)).stdout;
  });

  afterAll(async () => {
    if (!real) return;
    const down = await kok(["dev", "down", ...real.args, "--purge"]);
    if (down.code !== 0) console.error(`kok dev down failed:\n${down.stdout}\n${down.stderr}`);
  });

  it("brings up the meta-cluster and a Ready master node run by a kubelet on containerd", async () => {
    expect(upOutput).toMatch(/kube-apiserver: healthy/);
    expect(upOutput).toMatch(/node kok-dev-node: Ready/);
    expect(upOutput).not.toContain("node agent");
    const { core } = clientFor(real.kubeconfig);
    const node = await core.readNode({ name: "kok-dev-node" });
    expect(node.metadata?.labels?.["node-role.kubeonkube.io/master"]).toBe("true");
    expect(node.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(Number(node.status?.capacity?.cpu)).toBeGreaterThan(0);
    expect(node.status?.nodeInfo?.kubeletVersion).toBe("v1.36.3");
    expect(node.status?.nodeInfo?.containerRuntimeVersion).toMatch(/^containerd:\/\//);
  });

  it("is idempotent: a second up finds everything running", async () => {
    const again = await devUp(real);
    for (const component of [...MASTERS_AND_SERVICES, "containerd", "kubelet"]) expect(again.stdout).toContain(`${component}: already running`);
  });

  it("status lists every process as healthy", async () => {
    const status = await kok(["dev", "status", ...real.args]);
    expect(status.code).toBe(0);
    for (const name of [...MASTERS_AND_SERVICES, "containerd", "kubelet", "node forwarder"]) {
      expect(status.stdout).toMatch(new RegExp(`^${name} +pid \\d+ +healthy$`, "m"));
    }
  });

  it("env prints the admin kubeconfig export first", async () => {
    const env = await kok(["dev", "env", ...real.args]);
    expect(env.stdout.split("\n")[0]).toBe(`export KUBECONFIG=${real.kubeconfig}`);
  });

  it("refuses a taken port, naming it and what to do", async () => {
    const other = await newDevCluster();
    const result = await kok(["dev", "up", ...other.args, "--port-base", String(real.portBase), "--no-node"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`port ${real.portBase + 2379} (etcd) on 127.0.0.1 is in use`);
    expect(result.stderr).toContain("--port-base");
    rmSync(other.stateDir, { recursive: true, force: true });
  });

  it("names a missing binary and how to build it", async () => {
    const other = await newDevCluster();
    const result = await kok(["dev", "up", ...other.args, "--no-node"], { KOK_TOOLCHAIN_DIR: join(other.stateDir, "no-toolchain") });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/etcd not found at .*no-toolchain\/bin\/etcd: build it with `npm run toolchain`/);
    expect(result.stderr).toMatch(/kube-apiserver not found/);
    rmSync(other.stateDir, { recursive: true, force: true });
  });
});

// Everything below is the node agent's own mechanics (per-Pod network namespaces on the machine,
// `kok dev logs`, its supervisor, agent.pid): asked for with --node agent while it still exists.
describe("kok dev up --node agent", () => {
  let upOutput = "";

  beforeAll(async () => {
    cluster = await newDevCluster();
    tag = stateTag(cluster.stateDir);
    NODE_PORT = await freeNodePort();
    upOutput = (await devUp(cluster, ["--node", "agent"])).stdout;
  });

  afterAll(async () => {
    if (!cluster) return;
    // Whatever a failed test left running is stopped; the last test checks that down is clean.
    await kok(["dev", "down", ...cluster.args, "--purge"]);
  });

  it("brings up a Ready master node run by the agent", async () => {
    expect(upOutput).toMatch(/node agent: started/);
    expect(upOutput).toMatch(/node kok-dev-node: Ready/);
    const node = await clientFor(cluster.kubeconfig).core.readNode({ name: "kok-dev-node" });
    expect(node.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
  });

  it("a second up without --node keeps the running agent", async () => {
    const again = await devUp(cluster);
    for (const component of MASTERS_AND_SERVICES) expect(again.stdout).toContain(`${component}: already running`);
    expect(again.stdout).toContain("node agent: already running");
    const status = await kok(["dev", "status", ...cluster.args]);
    expect(status.stdout).toMatch(/^node agent +pid \d+ +healthy$/m);
  });

  it("runs a Deployment's Pod through the node agent until the Deployment is Available", async () => {
    const { apps, core } = clientFor(cluster.kubeconfig);
    await core.createNamespacedService({
      namespace: "default",
      body: {
        metadata: { name: "kv" },
        spec: { type: "NodePort", selector: { app: "kv" }, ports: [{ name: "client", port: 2379, targetPort: 2379, nodePort: NODE_PORT }] },
      },
    });
    const started = Date.now();
    await apps.createNamespacedDeployment({ namespace: "default", body: deployment });
    const available = await eventually("Deployment kv Available", async () => {
      const d = await apps.readNamespacedDeployment({ name: "kv", namespace: "default" });
      return d.status?.conditions?.find((c) => c.type === "Available" && c.status === "True");
    });
    console.log(`Deployment kv Available ${Date.now() - started} ms after create`);
    expect(available.status).toBe("True");

    const pods = await core.listNamespacedPod({ namespace: "default", labelSelector: "app=kv" });
    const pod = pods.items[0];
    expect(pod.status?.podIP).toMatch(new RegExp(`^${cluster.podCIDR.split(".").slice(0, 2).join("\\.")}\\.`));
    expect(pod.status?.containerStatuses?.[0]?.ready).toBe(true);
    expect(netnsOfThisCluster()).toHaveLength(1);
    // The pod's mounts stay in its own mount namespace.
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(pod.metadata?.uid ?? "no-uid");
  });

  it("serves the Service by DNS inside pods and by NodePort on the host's loopback", async () => {
    const [netns] = netnsOfThisCluster();
    const resolved = execFileSync("ip", ["netns", "exec", netns, "getent", "hosts", "kv.default.svc.cluster.local"], { encoding: "utf8" });
    const { core } = clientFor(cluster.kubeconfig);
    const pod = (await core.listNamespacedPod({ namespace: "default", labelSelector: "app=kv" })).items[0];
    expect(resolved.split(/\s+/)[0]).toBe(pod.status?.podIP);
    const health = await eventually("NodePort proxy", async () => JSON.parse(await httpGet(`http://127.0.0.1:${NODE_PORT}/health`)) as { health: string });
    expect(health.health).toBe("true");
  });

  it("prints a Pod container's output with kok dev logs", async () => {
    const { core } = clientFor(cluster.kubeconfig);
    const pod = (await core.listNamespacedPod({ namespace: "default", labelSelector: "app=kv" })).items[0];
    const logs = await kok(["dev", "logs", pod.metadata?.name ?? "", ...cluster.args]);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain("kok dev node: starting etcd");
    // etcd's own output, with the env-expanded member name
    expect(logs.stdout).toContain(pod.metadata?.name ?? "no-name");
  });

  it("restarts a crashed node agent, which starts the Pod's process again", async () => {
    const etcdPid = () => pidsMatching("etcd --name=kv-").join(" ");
    const before = etcdPid();
    const workerPid = () => pidsMatching(`worker --state-dir ${cluster.stateDir}`).join(" ");
    const worker = workerPid();
    process.kill(Number(worker), "SIGKILL");
    const after = await eventually("etcd started again by a new agent", async () => {
      const pid = etcdPid();
      return pid && pid !== before ? pid : undefined;
    });
    expect(after).not.toBe(before);
    expect(workerPid()).not.toBe(worker);
    const health = await eventually("NodePort answers again", async () => JSON.parse(await httpGet(`http://127.0.0.1:${NODE_PORT}/health`)) as { health: string });
    expect(health.health).toBe("true");
  });

  it("stops the Pod's process and removes its namespace when the Pod goes away", async () => {
    const { apps, core } = clientFor(cluster.kubeconfig);
    await apps.deleteNamespacedDeployment({ name: "kv", namespace: "default", propagationPolicy: "Foreground" });
    await eventually("pods of kv deleted", async () => {
      const pods = await core.listNamespacedPod({ namespace: "default", labelSelector: "app=kv" });
      return pods.items.length === 0 ? true : undefined;
    });
    await eventually("netns removed", async () => (netnsOfThisCluster().length === 0 ? true : undefined));
  });

  it("down stops every process and leaves no namespace or bridge behind", async () => {
    const pidsDir = join(cluster.stateDir, "pids");
    const pids = readdirSync(pidsDir).map((f) => (JSON.parse(readFileSync(join(pidsDir, f), "utf8")) as { pid: number }).pid);
    const agentPid = (JSON.parse(readFileSync(join(cluster.stateDir, "node", "agent.pid"), "utf8")) as { pid: number }).pid;
    const down = await kok(["dev", "down", ...cluster.args]);
    expect(down.code).toBe(0);
    for (const pid of [...pids, agentPid]) expect(running(pid)).toBe(false);
    expect(netnsOfThisCluster()).toEqual([]);
    expect(execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" })).not.toContain(`kok${tag}`);
  });
});
