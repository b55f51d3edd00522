import { afterEach, describe, expect, it } from "vitest";
import { operatorReadiness, parseListenAddress, startOperatorServer, type OperatorServer } from "../../src/runtime/http-server";
import { OperatorMetrics } from "../../src/runtime/metrics";

describe("parseListenAddress", () => {
  it("reads host:port, :port and [v6]:port", () => {
    expect(parseListenAddress(":8080")).toEqual({ host: "0.0.0.0", port: 8080 });
    expect(parseListenAddress("127.0.0.1:9090")).toEqual({ host: "127.0.0.1", port: 9090 });
    expect(parseListenAddress("localhost:0")).toEqual({ host: "localhost", port: 0 });
    expect(parseListenAddress("[::1]:8443")).toEqual({ host: "::1", port: 8443 });
  });

  it("rejects anything else, naming the flag and the forms it takes", () => {
    for (const bad of ["8080", "host", ":", ":99999", "a:b", "::1:80", "[::1]", ""]) {
      expect(() => parseListenAddress(bad)).toThrow(/--metrics-addr: .* write host:port, :port or \[ipv6\]:port/);
    }
  });
});

describe("OperatorMetrics", () => {
  it("exposes every metric with its labels in the Prometheus text format", async () => {
    const metrics = new OperatorMetrics({ processMetrics: false });
    const hook = metrics.reconcileHook();
    hook({ kind: "Cluster", key: "ns/a", durationMs: 1500, result: "success" });
    hook({ kind: "Cluster", key: "ns/a", durationMs: 20, result: "error", error: new Error("x") });
    const queue = metrics.queueHooks("Cluster");
    queue.onDepth(4);
    queue.onRetry();
    metrics.recordStackOperation("Cluster", "up", "success", 90_000);
    metrics.leader.set(1);
    const text = await metrics.text();
    expect(text).toContain('kube_on_kube_reconciles_total{kind="Cluster",result="success"} 1');
    expect(text).toContain('kube_on_kube_reconciles_total{kind="Cluster",result="error"} 1');
    expect(text).toContain('kube_on_kube_reconcile_duration_seconds_bucket{le="5",kind="Cluster"} 2');
    expect(text).toContain('kube_on_kube_reconcile_duration_seconds_bucket{le="1",kind="Cluster"} 1');
    expect(text).toContain('kube_on_kube_workqueue_depth{kind="Cluster"} 4');
    expect(text).toContain('kube_on_kube_workqueue_retries_total{kind="Cluster"} 1');
    expect(text).toContain('kube_on_kube_stack_operations_total{kind="Cluster",operation="up",result="success"} 1');
    expect(text).toContain('kube_on_kube_stack_operation_duration_seconds_sum{operation="up"} 90');
    expect(text).toContain("kube_on_kube_leader 1");
    expect(text).not.toContain("process_cpu");
  });

  it("starts the drift series at zero and counts checks and corrections per kind", async () => {
    const metrics = new OperatorMetrics({ processMetrics: false });
    const hooks = metrics.driftHooks("Cluster");
    let text = await metrics.text();
    expect(text).toContain('kube_on_kube_drift_corrections_total{kind="Cluster"} 0');
    for (const result of ["in-sync", "drifted", "error"]) expect(text).toContain(`kube_on_kube_drift_checks_total{kind="Cluster",method="preview",result="${result}"} 0`);
    expect(text).toContain('kube_on_kube_drift_checks_total{kind="Cluster",method="fingerprint",result="in-sync"} 0');
    hooks.driftChecked("drifted", "preview");
    hooks.driftCorrected();
    hooks.driftChecked("in-sync", "preview");
    hooks.driftChecked("in-sync", "fingerprint");
    hooks.driftChecked("in-sync", "fingerprint");
    text = await metrics.text();
    expect(text).toContain('kube_on_kube_drift_checks_total{kind="Cluster",method="preview",result="drifted"} 1');
    expect(text).toContain('kube_on_kube_drift_checks_total{kind="Cluster",method="preview",result="in-sync"} 1');
    expect(text).toContain('kube_on_kube_drift_checks_total{kind="Cluster",method="fingerprint",result="in-sync"} 2');
    expect(text).toContain('kube_on_kube_drift_corrections_total{kind="Cluster"} 1');
  });

  it("keeps one certificate-expiry series per Cluster, in unix seconds, and drops it when told the Cluster is gone", async () => {
    const metrics = new OperatorMetrics({ processMetrics: false });
    metrics.setCertificatesExpireAt("fleet", "a", new Date("2027-11-25T00:00:00Z"));
    metrics.setCertificatesExpireAt("fleet", "b", new Date("2027-12-01T00:00:00Z"));
    metrics.setCertificatesExpireAt("fleet", "a", new Date("2028-11-25T00:00:00Z"));
    let text = await metrics.text();
    expect(text).toContain('kube_on_kube_certificates_expire_at_seconds{namespace="fleet",name="a"} 1858723200');
    expect(text).toContain('kube_on_kube_certificates_expire_at_seconds{namespace="fleet",name="b"} 1827619200');
    metrics.setCertificatesExpireAt("fleet", "a", undefined);
    metrics.setCertificatesExpireAt("fleet", "b", new Date("not a date"));
    metrics.setCertificatesExpireAt("fleet", "never-seen", undefined);
    text = await metrics.text();
    expect(text).not.toContain("kube_on_kube_certificates_expire_at_seconds{");
  });

  it("two instances do not share series", async () => {
    const a = new OperatorMetrics({ processMetrics: false });
    const b = new OperatorMetrics({ processMetrics: false });
    a.leader.set(1);
    expect(await b.text()).toContain("kube_on_kube_leader 0");
  });

  it("includes process metrics by default", async () => {
    expect(await new OperatorMetrics().text()).toContain("kube_on_kube_process_cpu_seconds_total");
  });
});

describe("operator HTTP server", () => {
  let server: OperatorServer | undefined;
  afterEach(async () => server?.close());

  it("serves /metrics, /healthz always, and /readyz only once ready", async () => {
    const metrics = new OperatorMetrics({ processMetrics: false });
    let synced = false;
    let leader: string | undefined = undefined;
    const readiness = operatorReadiness({ cachesSynced: () => synced, election: { isLeader: () => false, leader: () => leader } });
    server = await startOperatorServer({ address: parseListenAddress("127.0.0.1:0"), registry: metrics.registry, readiness });
    const base = `http://127.0.0.1:${server.address.port}`;
    const get = async (p: string) => {
      const res = await fetch(base + p);
      return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
    };
    expect(await get("/healthz")).toMatchObject({ status: 200, body: "ok\n" });
    expect(await get("/readyz")).toMatchObject({ status: 503, body: "not ready: informer caches have not synced yet\n" });
    synced = true;
    expect((await get("/readyz")).body).toContain("leader election has not observed a leader yet");
    leader = "other-replica";
    expect(await get("/readyz")).toMatchObject({ status: 200 });
    const m = await get("/metrics");
    expect(m.status).toBe(200);
    expect(m.type).toContain("text/plain");
    expect(m.body).toContain("kube_on_kube_leader 0");
    expect((await get("/nope")).status).toBe(404);
  });
});
