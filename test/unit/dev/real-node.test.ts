import { describe, expect, it } from "vitest";
import { defaultConfig } from "../../../src/dev/config";
import { cgroupMounts } from "../../../src/dev/node/cgroups";
import { mountsUnder } from "../../../src/dev/node/cleanup";
import { cniConflist } from "../../../src/dev/node/cni";
import { containerdConfig, hostsToml } from "../../../src/dev/node/containerd";
import { kubeletArgs, kubeletConfiguration, kubeletLeaves } from "../../../src/dev/node/kubelet";
import { clusterDnsAddress, realNodeLayout } from "../../../src/dev/node/layout";

describe("the real dev node's settings", () => {
  const config = defaultConfig("/tmp/kok-a", 20000, "10.77.0.0/16");
  const layout = realNodeLayout(config);

  it("keeps two state directories apart: sockets, bridge, cgroups, ports", () => {
    const other = realNodeLayout(defaultConfig("/tmp/kok-b", 21000, "10.78.0.0/16"));
    for (const key of ["bridge", "cgroupRoot", "netns", "hostVeth", "nodeVeth", "nodeIP"] as const) expect(other[key]).not.toBe(layout[key]);
    expect(other.containerd.socket).not.toBe(layout.containerd.socket);
    expect(layout.containerd.socket.startsWith("/tmp/kok-a/")).toBe(true);
    expect(layout.link).toEqual({ network: "10.77.255.252", host: "10.77.255.254", node: "10.77.255.253", prefix: 30, lastPodAddress: "10.77.255.250" });
    expect(layout.nodeIP).toBe("10.77.255.253");
    expect(layout.podGateway).toBe("10.77.0.1");
    expect(layout.hostVeth.length).toBeLessThanOrEqual(15);
    // A unix socket path must fit sockaddr_un (108 bytes with the NUL), with ".ttrpc" appended.
    expect(`${layout.containerd.socket}.ttrpc`.length).toBeLessThan(108);
  });

  it("gives containerd only paths under the state directory, runc with cgroupfs and the mirror", () => {
    const toml = containerdConfig(layout, "/tc/bin", "/tc/cni/bin");
    expect(toml).toContain(`address = "${layout.containerd.socket}"`);
    expect(toml).toContain(`root = "${layout.containerd.root}"`);
    expect(toml).toContain('BinaryName = "/tc/bin/runc"');
    expect(toml).toContain("SystemdCgroup = false");
    expect(toml).toContain("netns_mounts_under_state_dir = true");
    expect(toml).toContain('bin_dirs = ["/tc/cni/bin"]');
    expect(toml).toContain(`config_path = "${layout.containerd.certsDir}"`);
    expect(toml).toContain("sandbox = \"registry.k8s.io/pause:3.10.2\"");
    expect(toml).toMatch(/nri\.v1\.nri'\]\n {2}disable = true/);
  });

  it("sends registry.k8s.io and docker.io to the local registry over HTTP", () => {
    expect(hostsToml("registry.k8s.io", "127.0.0.1:15000")).toContain('[host."http://127.0.0.1:15000"]');
    expect(hostsToml("docker.io", "127.0.0.1:15000")).toContain('server = "https://registry-1.docker.io"');
    expect(hostsToml("_default", "127.0.0.1:15000")).not.toContain("server =");
  });

  it("configures the kubelet for cgroup v1 with its own cgroup root, TLS and webhook auth", () => {
    const kc = kubeletConfiguration(config, layout);
    expect(kc).toMatchObject({
      failCgroupV1: false,
      cgroupDriver: "cgroupfs",
      cgroupRoot: layout.cgroupRoot,
      address: "10.77.255.253",
      port: 10250,
      readOnlyPort: 0,
      clusterDNS: ["10.0.0.10"],
      clusterDomain: "cluster.local",
      authentication: { anonymous: { enabled: false }, x509: { clientCAFile: "/tmp/kok-a/pki/ca.crt" } },
      authorization: { mode: "Webhook" },
    });
    expect(kc).not.toHaveProperty("staticPodPath");
    expect(kubeletArgs(config, layout)).toContain(`--root-dir=${layout.kubelet.root}`);
    const [client, serving] = kubeletLeaves(config, layout);
    expect(client).toMatchObject({ commonName: "system:node:kok-dev-node", organization: "system:nodes", usage: "client" });
    expect(serving.ipAddresses).toEqual(["10.77.255.253", "127.0.0.1"]);
    expect(clusterDnsAddress(config)).toBe("10.0.0.10");
  });

  it("writes a bridge network without masquerade that never hands out the link's addresses", () => {
    const bridge = (cniConflist(config, layout).plugins as Record<string, unknown>[])[0];
    expect(bridge).toMatchObject({ type: "bridge", bridge: layout.bridge, isGateway: true, ipMasq: false });
    expect(bridge.ipam).toMatchObject({ dataDir: layout.cni.ipamDir, ranges: [[{ subnet: "10.77.0.0/16", gateway: "10.77.0.1", rangeEnd: "10.77.255.250" }]] });
    // Pods reach the link's ends through the gateway, not on the bridge.
    expect((bridge.ipam as { routes: unknown[] }).routes).toContainEqual({ dst: "10.77.255.252/30", gw: "10.77.0.1" });
  });

  it("finds cgroup v1 hierarchies and the mounts under a directory, deepest first", () => {
    const info = [
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
      "90 23 0:50 / /tmp/kok-a/node/real/containerd/state/netns/cni-1 rw - nsfs nsfs rw",
      "91 23 0:51 / /tmp/kok-a/node/real/kubelet/root/pods/u/volumes/x\\040y rw - tmpfs tmpfs rw",
      "92 23 0:52 / /tmp/kok-ab rw - tmpfs tmpfs rw",
    ].join("\n");
    expect(cgroupMounts(info)).toEqual({ v1: ["/sys/fs/cgroup/cpu"], v2: ["/sys/fs/cgroup/unified"] });
    expect(mountsUnder("/tmp/kok-a", info)).toEqual([
      "/tmp/kok-a/node/real/kubelet/root/pods/u/volumes/x y",
      "/tmp/kok-a/node/real/containerd/state/netns/cni-1",
    ]);
  });
});
