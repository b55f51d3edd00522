/**
 * The flannel DaemonSet's install-cni script, run for real: /bin/sh (and the busybox the images
 * are built from, when its Debian package has been unpacked here) in a temporary directory standing
 * for the node's /run/flannel and /etc/cni/net.d.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FLANNEL_CONFLIST_NAME, FLANNEL_INSTALL_CNI_SCRIPT } from "../../src/components/addons/flannel-cni-script";

const BUSYBOX = join(homedir(), ".cache/kube-on-kube/images/debs/busybox-static_1%3a1.35.0-4+deb12u1+b1/tree/bin/busybox");
const SHELLS: [string, string[]][] = [["/bin/sh", ["/bin/sh"]], ...(existsSync(BUSYBOX) ? ([["busybox sh", [BUSYBOX, "sh"]]] as [string, string[]][]) : [])];

const subnetEnv = (o: { network?: string; subnet?: string; mtu?: string; ipmasq?: string }) =>
  [
    o.network === undefined ? "" : `FLANNEL_NETWORK=${o.network}`,
    o.subnet === undefined ? "" : `FLANNEL_SUBNET=${o.subnet}`,
    o.mtu === undefined ? "" : `FLANNEL_MTU=${o.mtu}`,
    o.ipmasq === undefined ? "" : `FLANNEL_IPMASQ=${o.ipmasq}`,
  ]
    .filter(Boolean)
    .join("\n") + "\n";
const FLANNELD = { network: "10.244.0.0/16", subnet: "10.244.1.1/24", mtu: "1450", ipmasq: "true" };

describe.each(SHELLS)("install-cni script under %s", (_name, shell) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const conflist = () => join(dir, "net.d", FLANNEL_CONFLIST_NAME);
  const runOnce = () => spawnSync(shell[0], [...shell.slice(1), "-c", FLANNEL_INSTALL_CNI_SCRIPT], { env: { ...env, ONCE: "1" }, encoding: "utf8", timeout: 10_000 });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "kok-install-cni-"));
    env = { PATH: process.env.PATH, SUBNET_ENV: join(dir, "subnet.env"), CNI_CONF_DIR: join(dir, "net.d"), POLL_SECONDS: "1", CNI_BRIDGE: "kok-test-none" };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("renders what the flannel plugin would delegate: bridge with host-local on the node's range, then portmap", () => {
    writeFileSync(env.SUBNET_ENV!, subnetEnv(FLANNELD));
    const run = runOnce();
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(readFileSync(conflist(), "utf8"))).toEqual({
      cniVersion: "1.0.0",
      name: "cbr0",
      plugins: [
        {
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          isDefaultGateway: true,
          // flanneld masquerades (--ip-masq), so the bridge does not.
          ipMasq: false,
          hairpinMode: true,
          mtu: 1450,
          // flanneld writes the range's first address; host-local wants the network.
          ipam: { type: "host-local", ranges: [[{ subnet: "10.244.1.0/24" }]], routes: [{ dst: "10.244.0.0/16" }] },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    });
    // Only the conflist: the temporary file was renamed over it.
    expect(readdirSync(join(dir, "net.d"))).toEqual([FLANNEL_CONFLIST_NAME]);
    expect(run.stderr).toContain(`wrote ${conflist()}`);
  });

  it("masks any prefix length and lets the bridge masquerade when flanneld does not", () => {
    writeFileSync(env.SUBNET_ENV!, subnetEnv({ network: "10.0.0.0/8", subnet: "10.255.255.129/25", mtu: "8950", ipmasq: "false" }));
    expect(runOnce().status).toBe(0);
    const bridge = JSON.parse(readFileSync(conflist(), "utf8")).plugins[0];
    expect(bridge.ipam.ranges).toEqual([[{ subnet: "10.255.255.128/25" }]]);
    expect(bridge.ipam.routes).toEqual([{ dst: "10.0.0.0/8" }]);
    expect(bridge.ipMasq).toBe(true);
    expect(bridge.mtu).toBe(8950);
  });

  it("waits for subnet.env, and writes nothing from an incomplete or malformed one", () => {
    let run = runOnce();
    expect(run.status).toBe(0);
    expect(run.stderr).toContain("waiting for flanneld to write");
    expect(existsSync(conflist())).toBe(false);
    for (const [broken, says] of [
      [{ ...FLANNELD, mtu: undefined }, "FLANNEL_MTU is not a number"],
      [{ ...FLANNELD, subnet: "10.244.1.300/24" }, "FLANNEL_SUBNET is not an IPv4 CIDR"],
      [{ ...FLANNELD, network: 'x", "evil": "1' }, "FLANNEL_NETWORK is not an IPv4 CIDR"],
      [{ ...FLANNELD, ipmasq: "yes" }, "FLANNEL_IPMASQ is not true or false"],
    ] as const) {
      writeFileSync(env.SUBNET_ENV!, subnetEnv(broken));
      run = runOnce();
      expect(run.status, says).toBe(0);
      expect(run.stderr).toContain(says);
      expect(existsSync(conflist()), says).toBe(false);
    }
  });

  it("keeps running, re-renders when subnet.env changes and puts back a conflist edited on the host", async () => {
    const child = spawn(shell[0], [...shell.slice(1), "-c", FLANNEL_INSTALL_CNI_SCRIPT], { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += String(d)));
    const until = async (what: string, check: () => boolean) => {
      for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 100));
      expect(check(), `${what}; stderr: ${stderr}`).toBe(true);
    };
    const mtu = () => (existsSync(conflist()) ? JSON.parse(readFileSync(conflist(), "utf8")).plugins?.[0]?.mtu : undefined);
    try {
      await until("waiting", () => stderr.includes("waiting"));
      writeFileSync(env.SUBNET_ENV!, subnetEnv(FLANNELD));
      await until("first render", () => mtu() === 1450);
      writeFileSync(env.SUBNET_ENV!, subnetEnv({ ...FLANNELD, mtu: "1400" }));
      await until("re-render", () => mtu() === 1400);
      writeFileSync(conflist(), "{}");
      await until("repair", () => mtu() === 1400);
      expect(child.exitCode).toBeNull();
      // Stopped (its Pod deleted): the node's conflist goes with it, at once, not after a poll.
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(existsSync(conflist()), stderr).toBe(false);
      expect(stderr).toContain("stopped: removed");
    } finally {
      child.kill();
    }
  }, 30_000);
});
