/**
 * Sandbox worker hosts that are real network hosts (src/dev/host-netns.ts): a dev meta-cluster on
 * its real node plus two hosts on the node's hosts bridge, proved with real commands: OpenSSH from
 * the machine to each host's address:22; inside a host its own hostname and its own
 * /etc/cni/net.d; host → host, host → node IP, host → the registry and the package mirror on the
 * machine's end of the node link, host → a Pod of the meta-cluster (CoreDNS); a hosts subnet that
 * overlaps a range or a route is refused by name; stopping the hosts and `kok dev down` leave no
 * namespace, veth, route or process. Needs root, the toolchain and the images; fails, never skips.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, type DevConfig } from "../../src/dev/config";
import { ensureHostNetns, existingHostNetns, hostMac, workersRegistry } from "../../src/dev/host-netns";
import { realNodeLayout } from "../../src/dev/node/layout";
import { netnsHosts } from "../../src/dev/sandbox-fleet";
import { toolchainBinary } from "../../src/dev/toolchain";
import { devUp, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";
import { startNetnsFleetHosts, type FleetHosts } from "../support/fleet-hosts";
import { sshRun } from "../support/sshd-hosts";
import { processesMentioning } from "../support/proc";

let cluster: DevCluster;
let config: DevConfig;
let fleet: FleetHosts | undefined;
let hostsStartSeconds = 0;

const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8" });
const kubectl = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args], { encoding: "utf8", stdio: "pipe" });

/** Runs `command` on host i over SSH and expects it to succeed. */
async function onHost(i: number, command: string): Promise<string> {
  const result = await sshRun(fleet!.hosts[i], command);
  if (result.status !== 0) throw new Error(`${fleet!.hosts[i].name}: \`${command}\` exited ${result.status}: ${result.stderr}`);
  return result.stdout;
}

/** A TCP connect from host i to ip:port within 5 s (bash's /dev/tcp: no ping or nc needed). */
const tcpFrom = (i: number, address: string, port: number) => onHost(i, `timeout 5 bash -c 'exec 3<>/dev/tcp/${address}/${port}' && echo connected`);

beforeAll(async () => {
  cluster = await newDevCluster();
  await devUp(cluster);
  config = loadConfig(cluster.stateDir)!;
  const started = Date.now();
  fleet = await startNetnsFleetHosts(cluster.stateDir, 2, "hn");
  hostsStartSeconds = (Date.now() - started) / 1000;
  console.log(`two network hosts (with the mirror) started in ${hostsStartSeconds.toFixed(1)}s`);
}, 900_000);

afterAll(async () => {
  await fleet?.stop();
  if (cluster) {
    await kok(["dev", "down", ...cluster.args, "--purge"]);
    rmSync(cluster.stateDir, { recursive: true, force: true });
  }
}, 300_000);

describe("network hosts on the real node", () => {
  it("each host answers SSH on its own address:22 with its own name and interface", async () => {
    const net = config.hostsCIDR.split(".").slice(0, 3).join(".");
    for (const [i, host] of fleet!.hosts.entries()) {
      expect(host.ip.startsWith(`${net}.`)).toBe(true);
      expect(host.port).toBe(22);
      const [hostname, addr] = (await onHost(i, "cat /proc/sys/kernel/hostname; ip -o -4 addr show dev eth0")).split("\n");
      expect(hostname).toBe(host.name);
      expect(addr).toContain(` ${host.ip}/24 `);
      // Through netlink: /sys is still the machine's sysfs in a host (docs/dev-cluster.md).
      expect(await onHost(i, "ip -o link show dev eth0")).toContain(`link/ether ${hostMac(config, host.netns!.index)} `);
      // Forwarding and bridged traffic through iptables, as a Kubernetes host has them.
      expect((await onHost(i, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/bridge/bridge-nf-call-iptables")).split("\n").slice(0, 2)).toEqual(["1", "1"]);
    }
  });

  it("/etc/cni/net.d, /opt/cni/bin and /run/flannel of a host are its own directories under its root", async () => {
    const probe = `probe-${process.pid}`;
    await onHost(0, `echo hi > /etc/cni/net.d/${probe} && touch /run/flannel/${probe} /opt/cni/bin/${probe}`);
    const root = fleet!.hosts[0].root;
    expect(readFileSync(join(root, "etc/cni/net.d", probe), "utf8")).toBe("hi\n");
    expect(existsSync(join(root, "run/flannel", probe))).toBe(true);
    expect(existsSync(join(root, "opt/cni/bin", probe))).toBe(true);
    for (const dir of ["/etc/cni/net.d", "/run/flannel", "/opt/cni/bin"]) expect(existsSync(join(dir, probe))).toBe(false);
    expect(await onHost(1, `ls /etc/cni/net.d`)).not.toContain(probe);
  });

  it("a host reaches the other host, the node, the registry and the mirror on the machine, and a meta-cluster Pod", async () => {
    const layout = realNodeLayout(config);
    expect(await tcpFrom(0, fleet!.hosts[1].ip, 22)).toContain("connected");
    // The node's kubelet: any HTTP answer proves the path (it wants a client certificate).
    expect(await onHost(0, `curl -sk -o /dev/null -w '%{http_code}' https://${layout.nodeIP}:${layout.kubeletPort}/healthz`)).toMatch(/^[1-5]\d\d$/);
    expect(workersRegistry(config)).toBe(`${layout.link.host}:${config.ports.registry}`);
    expect(await onHost(0, `curl -s -o /dev/null -w '%{http_code}' http://${workersRegistry(config)}/v2/`)).toBe("200");
    const artifact = fleet!.mirror.artifacts[0];
    expect(artifact.url.startsWith(`http://${layout.link.host}:`)).toBe(true);
    expect(await onHost(1, `curl -sI -o /dev/null -w '%{http_code}' ${artifact.url}`)).toBe("200");
    const podIP = kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o", "jsonpath={.items[0].status.podIP}");
    expect(podIP).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(await tcpFrom(1, podIP, 53)).toContain("connected");
  });

  it("refuses a hosts subnet that overlaps the meta-cluster's ranges or a route of the machine, naming it", async () => {
    const insidePods = config.podCIDR.replace(/\.0\.0\/16$/, ".7.0/24");
    await expect(ensureHostNetns({ ...config, hostsCIDR: insidePods }, 0)).rejects.toThrow(`the hosts subnet ${insidePods} overlaps the meta-cluster's pod range (podCIDR) ${config.podCIDR}`);
    await expect(ensureHostNetns({ ...config, hostsCIDR: "10.244.3.0/24" }, 0)).rejects.toThrow("overlaps the business clusters' default pod range 10.244.0.0/16");
    // A route someone else owns (here a blackhole of ours, removed at once).
    const taken = ip("-o", "-4", "route", "show");
    let third = 200;
    while (taken.includes(`10.250.${third}.`)) third++;
    ip("route", "add", "blackhole", `10.250.${third}.0/25`);
    try {
      await expect(ensureHostNetns({ ...config, hostsCIDR: `10.250.${third}.0/24` }, 0)).rejects.toThrow(`the hosts subnet 10.250.${third}.0/24 overlaps routes of this machine:\n  blackhole 10.250.${third}.0/25`);
    } finally {
      ip("route", "del", "blackhole", `10.250.${third}.0/25`);
    }
    // Through a fleet: the namespace it reserved for the host is gone again.
    const home = mkdtempSync(join(tmpdir(), "kok-bad-hosts-"));
    try {
      await expect(netnsHosts({ ...config, hostsCIDR: insidePods }, home).start(["bad-0"])).rejects.toThrow("overlaps the meta-cluster's pod range");
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
    expect(existingHostNetns(config)).toEqual([0, 1]);
  });

  it("a kept host keeps its address and keys from one start to the next, also after its process was killed", async () => {
    const home = mkdtempSync(join(tmpdir(), "kok-kept-hosts-"));
    try {
      const first = await netnsHosts(config, home, { kept: true }).start(["kept-0"]);
      // No stop, as when the process that started it was killed: the next start takes over.
      const again = await netnsHosts(config, home, { kept: true }).start(["kept-0"]);
      expect(again[0].ip).toBe(first[0].ip);
      expect(again[0].hostKey).toBe(first[0].hostKey);
      expect(first[0].process?.exitCode !== null || first[0].process?.signalCode !== null).toBe(true);
      expect((await sshRun(again[0], "cat /proc/sys/kernel/hostname")).stdout).toBe("kept-0\n");
      await netnsHosts(config, home, { kept: true }).stop(again);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
    expect(existingHostNetns(config)).toEqual([0, 1]);
  });

  it("stopping the hosts and `kok dev down` leave no namespace, veth, route or process", async () => {
    const layout = realNodeLayout(config);
    const dirs = fleet!.hosts.map((h) => h.dir);
    await fleet!.stop();
    fleet = undefined;
    expect(ip("netns", "list")).not.toContain(`kokh-${layout.tag}-`);
    expect(ip("-n", layout.netns, "-o", "link", "show")).not.toMatch(/ h\d+@/);
    for (const dir of dirs) expect(processesMentioning(dir)).toEqual([]);
    // Hosts left running when the dev cluster goes down are taken down with it.
    fleet = await startNetnsFleetHosts(cluster.stateDir, 1, "left");
    const left = fleet.hosts[0];
    expect((await onHost(0, "cat /proc/sys/kernel/hostname")).trim()).toBe("left-0");
    const down = await kok(["dev", "down", ...cluster.args]);
    expect(down.code, down.stderr).toBe(0);
    expect(ip("netns", "list")).not.toMatch(new RegExp(`kok[hn]-${layout.tag}`));
    expect(ip("-o", "link", "show")).not.toContain(layout.hostVeth);
    expect(ip("-4", "route", "show")).not.toContain(config.hostsCIDR);
    expect(processesMentioning(left.dir)).toEqual([]);
    // What is left of the fleet itself: its mirror and its directory.
    await fleet.stop();
    fleet = undefined;
  });
});
