/**
 * The real client-node ListWatch under ResilientInformer, against a tiny local HTTP server that
 * plays the watch endpoint: it sends one event and ends the response cleanly, so ListWatch
 * re-watches by itself — and then the credentials fail before the request is sent.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { ResilientInformer } from "../../src/runtime/informer";
import { eventually } from "../support/poll";

class FlakyCredentials extends KubeConfig {
  failing = false;
  override async applyToFetchOptions(opts: Parameters<KubeConfig["applyToFetchOptions"]>[0]) {
    if (this.failing) throw new Error("exec plugin: credentials unavailable");
    return super.applyToFetchOptions(opts);
  }
}

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

describe("ResilientInformer over the real ListWatch", () => {
  it("spaces re-watches after clean closes, and restarts after a credential failure instead of crashing", async () => {
    let watches = 0;
    server = createServer((_req, res) => {
      watches++;
      res.writeHead(200, { "Content-Type": "application/json" });
      const cm = { metadata: { namespace: "ns", name: `w${watches}`, resourceVersion: String(10 + watches) } };
      // One event, then a clean end of the watch: ListWatch re-watches by itself.
      res.end(JSON.stringify({ type: "ADDED", object: cm }) + "\n");
    });
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const kc = new FlakyCredentials();
    kc.loadFromOptions({
      // client-node refuses plain http unless TLS checks are off; this server is loopback-only.
      clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const errors: string[] = [];
    const keys: string[] = [];
    const waits: number[] = [];
    const informer = new ResilientInformer<V1ConfigMap>({
      kubeConfig: kc,
      path: "/api/v1/configmaps",
      list: async () => ({ apiVersion: "v1", kind: "ConfigMapList", metadata: { resourceVersion: "10" }, items: [] }),
      restartBackoff: { baseMs: 10, capMs: 50 },
      minWatchIntervalMs: 60_000,
      // Every wait is recorded and cut to 5 ms, so the test sees what was asked without waiting it.
      sleep: (ms) => {
        waits.push(ms);
        return new Promise((r) => setTimeout(r, 5));
      },
      onError: (err) => {
        errors.push(String(err));
        kc.failing = false;
      },
    });
    informer.onChange((key) => keys.push(key));
    informer.start();
    await eventually("two watch events", () => keys.includes("ns/w1") && keys.includes("ns/w2"));
    // The re-watch after the first clean close asked to wait out most of the minimum interval.
    expect(waits.some((ms) => ms > 50_000)).toBe(true);
    expect(errors).toEqual([]);

    kc.failing = true;
    const before = keys.length;
    await eventually("a restart after the credential failure, and events again", () => errors.length > 0 && keys.length > before + 1);
    expect(errors[0]).toContain("credentials unavailable");
    expect(informer.restarts).toBeGreaterThan(0);
    await informer.stop();
  });
});
