/**
 * The real dev node's Pod network: one CNI conflist (bridge + host-local, portmap chained;
 * containerd adds loopback), run by containerd inside the node's network namespace: the bridge
 * (named with the state tag) holds the Pods' gateway, the pod range's first address, and the node
 * routes between it and the link to the machine. No masquerade: the machine routes the pod range
 * to the node, so Pod addresses are seen as they are. host-local keeps its leases under the state
 * directory and never hands out the link's last /30.
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
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir: layout.cni.ipamDir,
          ranges: [[{ subnet: config.podCIDR, gateway: layout.podGateway, rangeEnd: layout.link.lastPodAddress }]],
          // The link's /30 lies inside the pod range: without its own route a Pod would look for
          // the node's and the machine's ends on the bridge (ARP, "No route to host").
          routes: [
            { dst: "0.0.0.0/0", gw: layout.podGateway },
            { dst: `${layout.link.network}/${layout.link.prefix}`, gw: layout.podGateway },
          ],
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
