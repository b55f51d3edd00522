/**
 * The conflist the flannel DaemonSet's install-cni script writes, executed by the real CNI plugins
 * the worker install lays down (the toolchain's bridge, host-local and portmap), as the container
 * runtime chains them: in a throwaway network namespace standing for the node, for a Pod in
 * another. The subnet.env is what flanneld v0.28.10 writes (pkg/subnet WriteSubnetFile: the
 * range's first address). Needs root, like the other tests that make network namespaces.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FLANNEL_CONFLIST_NAME, FLANNEL_INSTALL_CNI_SCRIPT } from "../../src/components/addons/flannel-cni-script";
import { TOOLCHAIN_DIR } from "../support/engine";

const CNI_BIN = path.join(TOOLCHAIN_DIR, "cni", "bin");
const tag = `kokcni${process.pid}`;
const NODE_NS = `${tag}-node`;
const POD_NS = `${tag}-pod`;

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe("the rendered conflist under the real CNI plugins", () => {
  let dir: string;
  let conflist: Obj;
  const runPlugin = (command: "ADD" | "DEL", config: Obj) =>
    spawnSync("ip", ["netns", "exec", NODE_NS, path.join(CNI_BIN, config.type)], {
      input: JSON.stringify(config),
      encoding: "utf8",
      env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: "pod-1", CNI_NETNS: `/var/run/netns/${POD_NS}`, CNI_IFNAME: "eth0", CNI_PATH: CNI_BIN },
    });
  const plugin = (command: "ADD" | "DEL", config: Obj): Obj | undefined => {
    const out = runPlugin(command, config);
    expect(out.status, `${config.type} ${command}: ${out.stdout}${out.stderr}`).toBe(0);
    return out.stdout.trim() ? (JSON.parse(out.stdout) as Obj) : undefined;
  };
  /** The install-cni script once, in the node's namespace (it may clear the node's cni0). */
  const installCni = (subnet: string) => {
    writeFileSync(path.join(dir, "subnet.env"), `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${subnet}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`);
    const out = spawnSync("ip", ["netns", "exec", NODE_NS, "sh", "-c", FLANNEL_INSTALL_CNI_SCRIPT], { env: { PATH: process.env.PATH, SUBNET_ENV: path.join(dir, "subnet.env"), CNI_CONF_DIR: path.join(dir, "net.d"), ONCE: "1" }, encoding: "utf8" });
    expect(out.status, out.stderr).toBe(0);
    conflist = JSON.parse(readFileSync(path.join(dir, "net.d", FLANNEL_CONFLIST_NAME), "utf8")) as Obj;
    return out.stderr;
  };
  /** What the runtime passes each plugin of a list: the list's name and version, the previous result. */
  const configOf = (index: number, prevResult?: Obj): Obj => {
    const p = { ...conflist.plugins[index], cniVersion: conflist.cniVersion, name: conflist.name, ...(prevResult ? { prevResult } : {}) };
    // host-local's leases in the test's directory, not the machine's /var/lib/cni.
    return p.ipam ? { ...p, ipam: { ...p.ipam, dataDir: path.join(dir, "ipam") } } : p;
  };

  beforeAll(() => {
    for (const name of ["bridge", "host-local", "portmap"]) {
      if (!existsSync(path.join(CNI_BIN, name))) throw new Error(`the CNI plugin ${name} is missing in ${CNI_BIN}: build it with \`npm run toolchain\``);
    }
    if (process.getuid?.() !== 0) throw new Error("this test makes network namespaces: run it as root");
    dir = mkdtempSync(path.join(tmpdir(), "kok-flannel-cni-"));
    execFileSync("ip", ["netns", "add", NODE_NS]);
    execFileSync("ip", ["netns", "add", POD_NS]);
    installCni("10.244.7.1/24");
  });
  afterAll(() => {
    for (const ns of [POD_NS, NODE_NS]) spawnSync("ip", ["netns", "delete", ns]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("gives the Pod an address of the node's range behind cni0, routes to the Pod network and a default route, and tears down", () => {
    const result = plugin("ADD", configOf(0))!;
    expect(result.ips).toEqual([expect.objectContaining({ address: "10.244.7.2/24", gateway: "10.244.7.1" })]);
    // portmap, chained on bridge's result (no port mappings asked: it passes the result on).
    expect(plugin("ADD", configOf(1, result))!.ips).toEqual(result.ips);
    const routes = execFileSync("ip", ["netns", "exec", POD_NS, "ip", "-4", "route"], { encoding: "utf8" });
    expect(routes).toContain("default via 10.244.7.1 dev eth0");
    expect(routes).toContain("10.244.0.0/16 via 10.244.7.1 dev eth0");
    const bridge = execFileSync("ip", ["netns", "exec", NODE_NS, "ip", "-4", "-o", "addr", "show", "cni0"], { encoding: "utf8" });
    expect(bridge).toContain("inet 10.244.7.1/24");
    expect(execFileSync("ip", ["netns", "exec", NODE_NS, "ip", "-o", "link", "show", "cni0"], { encoding: "utf8" })).toContain("mtu 1450");
    plugin("DEL", configOf(1, result));
    plugin("DEL", configOf(0));
    expect(execFileSync("ip", ["netns", "exec", POD_NS, "ip", "-o", "link"], { encoding: "utf8" })).not.toContain("eth0");
  });

  it("clears cni0's address when the node's range changes (a Node registered again), so the next Pod gets the new range", () => {
    // cni0 keeps 10.244.7.1/24 from the Pod above. The new range's conflist alone: the classic failure.
    const stale = { ...conflist, plugins: conflist.plugins.map((p: Obj) => (p.ipam ? { ...p, ipam: { ...p.ipam, ranges: [[{ subnet: "10.244.9.0/24" }]] } } : p)) };
    const [before, current] = [conflist, stale];
    conflist = current;
    const failed = runPlugin("ADD", configOf(0));
    expect(failed.status).not.toBe(0);
    expect(failed.stdout + failed.stderr).toMatch(/already has an IP address different from/);
    // The plugin had made the Pod's veth before it failed on the bridge's address.
    spawnSync("ip", ["netns", "exec", POD_NS, "ip", "link", "delete", "eth0"]);
    conflist = before;
    expect(installCni("10.244.9.1/24")).toContain("cni0 has 10.244.7.1/24, not 10.244.9.1/24");
    const result = plugin("ADD", configOf(0))!;
    // (.2 is leased to the failed attempt: host-local keeps it until a DEL.)
    expect(result.ips).toEqual([expect.objectContaining({ address: expect.stringMatching(/^10\.244\.9\.\d+\/24$/) as unknown, gateway: "10.244.9.1" })]);
    expect(execFileSync("ip", ["netns", "exec", NODE_NS, "ip", "-4", "-o", "addr", "show", "cni0"], { encoding: "utf8" })).not.toContain("10.244.7.1");
    // The right address stays: a second run clears nothing.
    expect(installCni("10.244.9.1/24")).not.toContain("clearing");
    plugin("DEL", configOf(0));
  });
});
