/**
 * `kok dev up` for real (its default node): the toolchain's kubelet v1.36.3 on containerd 2.4 + runc
 * 1.5 + the CNI plugins (cgroup v1, cgroupfs) in the node's own network namespace, pulling
 * through containerd's mirror config from the dev registry; a busybox Pod runs to completion and
 * `kubectl logs` reads it, `kubectl exec` runs in a running one; CoreDNS, kube-proxy and a
 * local-path PVC work; after containerd and the kubelet are killed, `up` cleans up and runs the
 * Pods again; `down --purge` leaves no process, mount, link, namespace, route or cgroup. Needs
 * root, the toolchain and the images (`kok images build`); fails, never skips, without them.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, stateTag } from "../../src/dev/config";
import { cgroupMounts } from "../../src/dev/node/cgroups";
import { mountsUnder } from "../../src/dev/node/cleanup";
import { realNodeLayout } from "../../src/dev/node/layout";
import { toolchainBinary } from "../../src/dev/toolchain";
import { clientFor, devUp, eventually, freeNodePort, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";
import { processesMentioning } from "../support/proc";

let cluster: DevCluster;
let tag: string;
let upOutput = "";

const kubectl = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args], { encoding: "utf8", stdio: "pipe" });

beforeAll(async () => {
  cluster = await newDevCluster();
  tag = stateTag(cluster.stateDir);
  upOutput = (await devUp(cluster)).stdout;
});

afterAll(async () => {
  if (!cluster) return;
  // Normally already down (the last test); after a failure this cleans up, and says when it cannot.
  const down = await kok(["dev", "down", ...cluster.args, "--purge"]);
  if (down.code !== 0) console.error(`kok dev down failed:\n${down.stdout}\n${down.stderr}`);
});

describe("kok dev up: the real node", () => {
  it("registers a Ready node running containerd 2.4 and kubelet v1.36.3", async () => {
    expect(upOutput).toMatch(/node kok-dev-node: Ready/);
    expect(upOutput).toMatch(/node kok-dev-node \(kubelet\) with kube-proxy, CoreDNS and local-path-provisioner: ready/);
    const node = await clientFor(cluster.kubeconfig).core.readNode({ name: "kok-dev-node" });
    expect(node.status?.nodeInfo?.containerRuntimeVersion).toMatch(/^containerd:\/\/2\.4\.\d+$/);
    expect(node.status?.nodeInfo?.kubeletVersion).toBe("v1.36.3");
    expect(node.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(node.metadata?.labels?.["node-role.kubeonkube.io/master"]).toBe("true");
    expect(kubectl("get", "nodes", "-o", "wide")).toMatch(/kok-dev-node +Ready .* containerd:\/\/2\.4\.\d+/);
  });

  it("lists containerd and the kubelet in status", async () => {
    const status = await kok(["dev", "status", ...cluster.args]);
    for (const name of ["containerd", "kubelet", "node forwarder"]) expect(status.stdout).toMatch(new RegExp(`^${name} +pid \\d+ +healthy$`, "m"));
  });

  it("runs busybox from the registry to completion and serves its log", async () => {
    kubectl("run", "once", "--image=busybox", "--restart=Never", "--command", "--", "sh", "-c", "echo hello from $(hostname) as $(id -u)");
    // A pull that fails (no registry, no image) ends the wait with containerd's message.
    const outcome = await eventually("Pod once finished", async () => {
      const state = "{.status.containerStatuses[0].state.waiting}";
      const [phase, waiting] = kubectl("get", "pod", "once", "-o", `jsonpath={.status.phase}|${state}`).split("|");
      if (phase === "Succeeded" || phase === "Failed") return phase;
      return /ErrImagePull|ImagePullBackOff/.test(waiting) ? waiting : undefined;
    });
    expect(outcome).toBe("Succeeded");
    expect(kubectl("logs", "once").trim()).toBe("hello from once as 0");
    // `kok dev logs` on the real node is the kubelet's log through kubectl.
    expect((await kok(["dev", "logs", ...cluster.args, "once"])).stdout.trim()).toBe("hello from once as 0");
    const podIP = kubectl("get", "pod", "once", "-o", "jsonpath={.status.podIP}");
    expect(podIP.startsWith(cluster.podCIDR.split(".").slice(0, 2).join(".") + ".")).toBe(true);
  });

  it("execs into a running Pod, which runs in the node's own cgroup tree", async () => {
    kubectl("run", "sleeper", "--image=docker.io/library/busybox:1.35.0", "--command", "--", "sleep", "3600");
    kubectl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=120s");
    expect(kubectl("exec", "sleeper", "--", "cat", "/proc/self/cgroup")).toContain(`memory:/kok-${tag}/kubepods/`);
  });

  it("answers a NodePort on the machine's loopback as on the node's address (the forwarder follows Services)", async () => {
    const nodePort = await freeNodePort();
    const web = {
      apiVersion: "v1",
      kind: "List",
      items: [
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "web", namespace: "default", labels: { app: "web" } },
          spec: { containers: [{ name: "httpd", image: "docker.io/library/busybox:1.35.0", command: ["sh", "-c", "mkdir /www && echo served-by-web > /www/index.html && httpd -f -p 8080 -h /www"] }] },
        },
        { apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: "default" }, spec: { type: "NodePort", selector: { app: "web" }, ports: [{ port: 80, targetPort: 8080, nodePort }] } },
      ],
    };
    const file = join(cluster.stateDir, "web.json");
    writeFileSync(file, JSON.stringify(web));
    kubectl("apply", "-f", file);
    kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=120s");
    const nodeIP = realNodeLayout(loadConfig(cluster.stateDir)!).nodeIP;
    const get = (host: string) => eventually(`http://${host}:${nodePort}/`, async () => {
      const response = await fetch(`http://${host}:${nodePort}/`).catch(() => undefined);
      return response?.ok ? response.text() : undefined;
    }, 60_000);
    expect(await get(nodeIP)).toBe("served-by-web\n");
    expect(await get("127.0.0.1")).toBe("served-by-web\n");
    kubectl("delete", "service", "web");
    // Deleted: the loopback listener closes with the Service.
    await eventually(`127.0.0.1:${nodePort} closed`, async () => ((await fetch(`http://127.0.0.1:${nodePort}/`).catch(() => undefined)) === undefined ? true : undefined), 60_000);
  });

  it("resolves Service names through CoreDNS, routes Service IPs through kube-proxy and binds a PVC under the state", async () => {
    const claim = { apiVersion: "v1", kind: "PersistentVolumeClaim", metadata: { name: "data", namespace: "default" }, spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "10Mi" } } } };
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "dns-pvc", namespace: "default" },
      spec: {
        restartPolicy: "Never",
        containers: [
          {
            name: "c",
            image: "docker.io/library/busybox:1.35.0",
            // A TCP connection to the `kubernetes` Service (the apiserver, through kube-proxy and the node's forwarder).
            command: ["sh", "-c", "nslookup kubernetes.default.svc.cluster.local && echo | nc -w 5 kubernetes.default.svc.cluster.local 443 >/dev/null && echo reached && echo kept > /data/f"],
            volumeMounts: [{ name: "d", mountPath: "/data" }],
          },
        ],
        volumes: [{ name: "d", persistentVolumeClaim: { claimName: "data" } }],
      },
    };
    const file = join(cluster.stateDir, "dns-pvc.json");
    writeFileSync(file, JSON.stringify({ apiVersion: "v1", kind: "List", items: [claim, pod] }));
    kubectl("apply", "-f", file);
    const phase = await eventually("Pod dns-pvc finished", async () => {
      const p = kubectl("get", "pod", "dns-pvc", "-o", "jsonpath={.status.phase}");
      return p === "Succeeded" || p === "Failed" ? p : undefined;
    });
    const log = kubectl("logs", "dns-pvc");
    expect(phase, log).toBe("Succeeded");
    expect(log).toMatch(/Name:\s+kubernetes\.default\.svc\.cluster\.local\s+Address: 10\.0\.0\.1/);
    expect(log).toContain("reached");
    expect(kubectl("get", "pvc", "data", "-o", "jsonpath={.status.phase} {.spec.storageClassName}")).toBe("Bound local-path");
    const volumes = join(cluster.stateDir, "node", "real", "local-path");
    const [dir] = readdirSync(volumes);
    expect(readFileSync(join(volumes, dir, "f"), "utf8")).toBe("kept\n");
  });

  it("after containerd and the kubelet are killed, up removes what they left and runs the Pods again", async () => {
    const layout = realNodeLayout(loadConfig(cluster.stateDir)!);
    for (const file of [layout.kubelet.pid, layout.containerd.pid]) process.kill((JSON.parse(readFileSync(file, "utf8")) as { pid: number }).pid, "SIGKILL");
    const again = await devUp(cluster);
    expect(again.stdout).toMatch(/node: removed what a stopped node left \(\d+ processes/);
    expect(again.stdout).toContain("containerd: started");
    kubectl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=120s");
    expect(kubectl("exec", "sleeper", "--", "echo", "back")).toBe("back\n");
  });

  it("down --purge stops everything and leaves no process, mount, link, namespace, route or cgroup", async () => {
    const down = await kok(["dev", "down", ...cluster.args, "--purge"]);
    expect(down.code, down.stderr).toBe(0);
    expect(processesMentioning(cluster.stateDir)).toEqual([]);
    expect(mountsUnder(cluster.stateDir)).toEqual([]);
    expect(execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" })).not.toContain(`kok${tag}`);
    expect(execFileSync("ip", ["netns", "list"], { encoding: "utf8" })).not.toContain(tag);
    expect(execFileSync("ip", ["-4", "route", "show"], { encoding: "utf8" })).not.toContain(cluster.podCIDR.replace("/16", ""));
    const { v1, v2 } = cgroupMounts();
    expect([...v1, ...v2].filter((m) => existsSync(`${m}/kok-${tag}`))).toEqual([]);
    expect(existsSync(cluster.stateDir)).toBe(false);
  });
});
