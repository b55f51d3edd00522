import { describe, expect, it } from "vitest";
import { buildResponse, parseQuery } from "../../../src/dev/node-agent/dns";
import { ServiceRegistry } from "../../../src/dev/node-agent/service-registry";

/** A query packet as a stub resolver sends it. */
function query(name: string, type = 1, id = 0x1234): Buffer {
  const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "ascii")]));
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, type, 0, 1])]);
}

function answers(response: Buffer): { rcode: number; addresses: string[] } {
  const count = response.readUInt16BE(6);
  const questionEnd = response.indexOf(0, 12) + 5;
  const addresses: string[] = [];
  for (let i = 0, at = questionEnd; i < count; i++, at += 16) addresses.push([...response.subarray(at + 12, at + 16)].join("."));
  return { rcode: response.readUInt16BE(2) & 0xf, addresses };
}

describe("dev node DNS wire format", () => {
  it("answers A queries with every address and echoes id and question", () => {
    const q = parseQuery(query("kv.default.svc.cluster.local"));
    expect(q?.name).toBe("kv.default.svc.cluster.local");
    const response = buildResponse(q!, ["10.88.0.2", "10.88.0.3"]);
    expect(response.readUInt16BE(0)).toBe(0x1234);
    expect(answers(response)).toEqual({ rcode: 0, addresses: ["10.88.0.2", "10.88.0.3"] });
  });

  it("says NXDOMAIN for unknown names and NODATA for AAAA of known ones", () => {
    expect(answers(buildResponse(parseQuery(query("nope.svc"))!, undefined)).rcode).toBe(3);
    expect(answers(buildResponse(parseQuery(query("kv.default.svc", 28))!, ["10.88.0.2"]))).toEqual({ rcode: 0, addresses: [] });
  });

  it("rejects truncated packets", () => {
    expect(parseQuery(query("kv.default.svc").subarray(0, 20))).toBeUndefined();
    expect(parseQuery(Buffer.alloc(5))).toBeUndefined();
  });
});

describe("ServiceRegistry names", () => {
  const registry = new ServiceRegistry("cluster.local");
  registry.upsertService({ metadata: { name: "e2e-etcd", namespace: "e2e" }, spec: { clusterIP: "None" } });
  registry.upsertSlice({
    metadata: { name: "e2e-etcd-abc", namespace: "e2e", labels: { "kubernetes.io/service-name": "e2e-etcd" } },
    addressType: "IPv4",
    ports: [{ name: "client", port: 2379 }],
    endpoints: [
      { addresses: ["10.88.0.5"], hostname: "e2e-etcd-0", conditions: { ready: true } },
      { addresses: ["10.88.0.6"], hostname: "e2e-etcd-1", conditions: { ready: false } },
    ],
  });

  it("resolves a Service to its ready endpoints, with or without the cluster domain", () => {
    expect(registry.lookup("e2e-etcd.e2e.svc")).toEqual(["10.88.0.5"]);
    expect(registry.lookup("e2e-etcd.e2e.svc.cluster.local.")).toEqual(["10.88.0.5"]);
  });

  it("resolves StatefulSet members by hostname and refuses search-list detours", () => {
    expect(registry.lookup("e2e-etcd-0.e2e-etcd.e2e.svc.cluster.local")).toEqual(["10.88.0.5"]);
    expect(registry.lookup("e2e-etcd-0.e2e-etcd.e2e.svc.e2e.svc.cluster.local")).toBeUndefined();
    expect(registry.lookup("other.e2e.svc")).toBeUndefined();
    expect(registry.lookup("example.com")).toBeUndefined();
  });

  it("copes with a Service whose slice has no endpoints (the API sends null)", () => {
    const empty = new ServiceRegistry("cluster.local");
    empty.upsertService({ metadata: { name: "api", namespace: "e2e" }, spec: {} });
    empty.upsertSlice({ metadata: { name: "api-x", namespace: "e2e", labels: { "kubernetes.io/service-name": "api" } }, addressType: "IPv4", endpoints: null as never });
    expect(empty.lookup("api.e2e.svc")).toEqual([]);
    expect(empty.backends("e2e", "api", "https")).toEqual([]);
  });

  it("gives NodePort proxies the ready backends of the named port", () => {
    expect(registry.backends("e2e", "e2e-etcd", "client")).toEqual([{ address: "10.88.0.5", port: 2379 }]);
    expect(registry.backends("e2e", "e2e-etcd", "peer")).toEqual([]);
  });
});
