import type { V1Service } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { wantedNodePorts } from "../../../src/dev/node/node-ports";

const svc = (type: string, ports: { nodePort?: number; protocol?: string }[]): V1Service => ({ spec: { type, ports: ports.map((p, i) => ({ port: 80 + i, ...p })) } });

describe("wantedNodePorts", () => {
  it("takes the TCP nodePorts of NodePort and LoadBalancer Services only", () => {
    const wanted = wantedNodePorts([
      svc("NodePort", [{ nodePort: 31000 }, { nodePort: 31001, protocol: "UDP" }]),
      svc("LoadBalancer", [{ nodePort: 31002, protocol: "TCP" }]),
      svc("ClusterIP", [{ nodePort: 31003 }]),
      svc("NodePort", [{}]),
    ]);
    expect([...wanted].sort()).toEqual([31000, 31002]);
  });
});
