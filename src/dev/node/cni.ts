/**
 * The real dev node's Pod network: one CNI conflist (bridge + host-local, portmap chained;
 * containerd adds loopback). The bridge carries the state tag and holds the node's address (made
 * by ensureBridge before the kubelet starts), so Pods reach the node and the host reaches Pods.
 * No machine setting is changed: not a gateway (the bridge plugin would turn on ip_forward), no
 * masquerade (no iptables rules); host-local keeps its leases under the state directory.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DevConfig } from "../config";
import type { RealNodeLayout } from "./layout";

export function cniConflist(config: DevConfig, layout: RealNodeLayout): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: `kok-${layout.tag}`,
    plugins: [
      {
        type: "bridge",
        bridge: layout.bridge,
        isGateway: false,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir: layout.cni.ipamDir,
          ranges: [[{ subnet: config.podCIDR, gateway: layout.nodeIP }]],
          routes: [{ dst: "0.0.0.0/0", gw: layout.nodeIP }],
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  };
}

export function writeCniConfig(config: DevConfig, layout: RealNodeLayout): void {
  mkdirSync(layout.cni.confDir, { recursive: true });
  mkdirSync(layout.cni.ipamDir, { recursive: true });
  writeFileSync(join(layout.cni.confDir, "10-kok.conflist"), JSON.stringify(cniConflist(config, layout), null, 2) + "\n");
}
