/**
 * ResilientInformer's field selector and its view of a deleted object, over the real client-node
 * ListWatch and a tiny local HTTP server playing the watch endpoint: a watch of one node's Pods
 * only, and "gone" read from a delete.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { ResilientInformer } from "../../src/runtime/informer";
import { eventually } from "../support/poll";

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? (server.close(() => resolve()), server.closeAllConnections()) : resolve())));

describe("ResilientInformer selectors and deletes", () => {
  it("sends its field selector on the watch, and a delete is reported after the object left the cache", async () => {
    const urls: string[] = [];
    server = createServer((req, res) => {
      urls.push(req.url ?? "");
      res.writeHead(200, { "Content-Type": "application/json" });
      if (urls.length > 1) return; // later watches stay open and quiet
      const pod = { metadata: { namespace: "ns", name: "p1", resourceVersion: "11" }, spec: { nodeName: "n1" } };
      res.write(JSON.stringify({ type: "ADDED", object: pod }) + "\n");
      res.end(JSON.stringify({ type: "DELETED", object: { ...pod, metadata: { ...pod.metadata, resourceVersion: "12" } } }) + "\n");
    });
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      // client-node refuses plain http unless TLS checks are off; this server is loopback-only.
      clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const informer = new ResilientInformer<V1Pod>({
      kubeConfig: kc,
      path: "/api/v1/pods",
      list: async () => ({ apiVersion: "v1", kind: "PodList", metadata: { resourceVersion: "10" }, items: [] }),
      fieldSelector: "spec.nodeName=n1",
      minWatchIntervalMs: 0,
    });
    const seen: string[] = [];
    informer.onChange((key, type) => seen.push(`${type} ${key} ${informer.get(key) ? "cached" : "gone"}`));
    informer.start();
    try {
      await eventually("the add and the delete", () => seen.length >= 2);
      expect(seen.slice(0, 2)).toEqual(["add ns/p1 cached", "delete ns/p1 gone"]);
      const query = new URL(urls[0], "http://x").searchParams;
      expect(query.get("watch")).toBe("true");
      expect(query.get("fieldSelector")).toBe("spec.nodeName=n1");
    } finally {
      await informer.stop();
    }
  });
});
