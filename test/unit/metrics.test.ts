import { afterEach, describe, expect, it } from "vitest";
import { operatorReadiness, parseListenAddress, startOperatorServer, type OperatorServer } from "../../src/runtime/http-server";
import { Registry } from "prom-client";
import { ClusterMetrics } from "../../src/controllers/cluster/metrics";
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
  it("exposes controller-runtime's controller and client-go's work queue metrics, by kind", async () => {
    const metrics = new OperatorMetrics({ processMetrics: false });
    metrics.registerController("Cluster", 4);
    const hook = metrics.reconcileHook();
    hook({ kind: "Cluster", key: "ns/a", durationMs: 1500, result: "success" });
    hook({ kind: "Cluster", key: "ns/a", durationMs: 20, result: "error", error: new Error("x") });
    hook({ kind: "Cluster", key: "ns/b", durationMs: 5, result: "terminal", error: new Error("bad spec") });
    hook({ kind: "Cluster", key: "ns/c", durationMs: 5, result: "requeue", retryAfterMs: 1000 });
    const queue = metrics.queueHooks("Cluster");
    queue.onDepth(4);
    queue.onRetry("ns/a");
    queue.onAdd("ns/a");
    queue.onGet("ns/a", 250);
    let text = await metrics.text();
    expect(text).toContain('controller_runtime_active_workers{controller="Cluster"} 1');
    queue.onDone("ns/a", 2000);
    metrics.recordStackOperation("Cluster", "up", "success", 90_000);
    metrics.setLeader("kube-on-kube-operator", true);
    text = await metrics.text();
    expect(text).toContain('controller_runtime_reconcile_total{controller="Cluster",result="success"} 1');
    expect(text).toContain('controller_runtime_reconcile_total{controller="Cluster",result="error"} 2');
    expect(text).toContain('controller_runtime_reconcile_total{controller="Cluster",result="requeue_after"} 1');
    expect(text).toContain('controller_runtime_reconcile_errors_total{controller="Cluster"} 2');
    expect(text).toContain('controller_runtime_terminal_reconcile_errors_total{controller="Cluster"} 1');
    expect(text).toContain('controller_runtime_reconcile_time_seconds_bucket{le="5",controller="Cluster"} 4');
    expect(text).toContain('controller_runtime_reconcile_time_seconds_bucket{le="1",controller="Cluster"} 3');
    expect(text).toContain('controller_runtime_max_concurrent_reconciles{controller="Cluster"} 4');
    expect(text).toContain('controller_runtime_active_workers{controller="Cluster"} 0');
    expect(text).toContain('workqueue_depth{name="Cluster"} 4');
    expect(text).toContain('workqueue_retries_total{name="Cluster"} 1');
    expect(text).toContain('workqueue_adds_total{name="Cluster"} 1');
    expect(text).toContain('workqueue_queue_duration_seconds_sum{name="Cluster"} 0.25');
    expect(text).toContain('workqueue_work_duration_seconds_sum{name="Cluster"} 2');
    expect(text).toContain('kube_on_kube_stack_operations_total{kind="Cluster",operation="up",result="success"} 1');
    expect(text).toContain('kube_on_kube_stack_operation_duration_seconds_sum{operation="up"} 90');
    expect(text).toContain('leader_election_master_status{name="kube-on-kube-operator"} 1');
    expect(text).not.toContain("process_cpu");
  });

  it("starts a registered controller's series at zero, before any reconcile", async () => {
    const metrics = new OperatorMetrics({ processMetrics: false });
    metrics.registerController("Machine", 16);
    const text = await metrics.text();
    for (const result of ["success", "error", "requeue_after"]) expect(text).toContain(`controller_runtime_reconcile_total{controller="Machine",result="${result}"} 0`);
    expect(text).toContain('controller_runtime_reconcile_errors_total{controller="Machine"} 0');
    expect(text).toContain('workqueue_depth{name="Machine"} 0');
    expect(text).toContain('workqueue_retries_total{name="Machine"} 0');
  });

  it("two instances do not share series", async () => {
    const a = new OperatorMetrics({ processMetrics: false });
    const b = new OperatorMetrics({ processMetrics: false });
    a.setLeader("x", true);
    b.setLeader("x", false);
    expect(await b.text()).toContain('leader_election_master_status{name="x"} 0');
  });

  it("includes process and Node.js metrics by default, under their usual names", async () => {
    const text = await new OperatorMetrics().text();
    for (const name of ["process_cpu_seconds_total", "process_resident_memory_bytes", "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes"]) {
      expect(text).toMatch(new RegExp(`^${name}[ {]`, "m"));
    }
    expect(text).not.toContain("kube_on_kube_process_");
  });
});

describe("ClusterMetrics", () => {
  it("starts the drift series at zero and counts checks and corrections per kind", async () => {
    const registry = new Registry();
    const hooks = new ClusterMetrics(registry, () => []).hooks("Cluster");
    let text = await registry.metrics();
    expect(text).toContain('kube_on_kube_drift_corrections_total{kind="Cluster"} 0');
    for (const result of ["in-sync", "drifted", "error"]) expect(text).toContain(`kube_on_kube_drift_checks_total{kind="Cluster",method="preview",result="${result}"} 0`);
    expect(text).toContain('kube_on_kube_drift_checks_total{kind="Cluster",method="fingerprint",result="in-sync"} 0');
    hooks.driftChecked("drifted", "preview");
    hooks.driftCorrected();
    hooks.driftChecked("in-sync", "preview");
    hooks.driftChecked("in-sync", "fingerprint");
    hooks.driftChecked("in-sync", "fingerprint");
    text = await registry.metrics();
    expect(text).toContain('kube_on_kube_drift_checks_total{kind="Cluster",method="preview",result="drifted"} 1');
    expect(text).toContain('kube_on_kube_drift_checks_total{kind="Cluster",method="preview",result="in-sync"} 1');
    expect(text).toContain('kube_on_kube_drift_checks_total{kind="Cluster",method="fingerprint",result="in-sync"} 2');
    expect(text).toContain('kube_on_kube_drift_corrections_total{kind="Cluster"} 1');
  });

  it("keeps one certificate-expiry series per Cluster, in unix seconds, and drops it when told the Cluster is gone", async () => {
    const registry = new Registry();
    const { certificatesExpireAt: set } = new ClusterMetrics(registry, () => []).hooks("Cluster");
    set("fleet", "a", new Date("2027-11-25T00:00:00Z"));
    set("fleet", "b", new Date("2027-12-01T00:00:00Z"));
    set("fleet", "a", new Date("2028-11-25T00:00:00Z"));
    let text = await registry.metrics();
    expect(text).toContain('kube_on_kube_certificates_expire_at_seconds{namespace="fleet",name="a"} 1858723200');
    expect(text).toContain('kube_on_kube_certificates_expire_at_seconds{namespace="fleet",name="b"} 1827619200');
    set("fleet", "a", undefined);
    set("fleet", "b", new Date("not a date"));
    set("fleet", "never-seen", undefined);
    text = await registry.metrics();
    expect(text).not.toContain("kube_on_kube_certificates_expire_at_seconds{");
  });

  it("exports each Cluster's CA expiry by authority from the cache at scrape time, and nothing for a Cluster gone", async () => {
    const registry = new Registry();
    const fingerprint = `sha256:${"b".repeat(64)}`;
    const cluster = (name: string, authorities?: { name: "cluster" | "etcd" | "front-proxy" | "service-account"; notAfter?: string }[]) => ({
      metadata: { namespace: "fleet", name },
      status: authorities ? { certificates: { authorities: authorities.map((a) => ({ ...a, fingerprint })) } } : {},
    });
    const clusters = [
      cluster("a", [
        { name: "cluster", notAfter: "2036-12-01T00:00:00Z" },
        { name: "etcd", notAfter: "2036-12-02T00:00:00Z" },
        { name: "front-proxy", notAfter: "2036-12-03T00:00:00Z" },
        { name: "service-account" },
      ]),
      cluster("b"),
      cluster("c", [{ name: "cluster", notAfter: "not a date" }]),
    ];
    new ClusterMetrics(registry, () => clusters);
    let text = await registry.metrics();
    expect(text).toContain(`kube_on_kube_cluster_ca_expiry_timestamp_seconds{namespace="fleet",cluster="a",authority="cluster"} ${Date.parse("2036-12-01T00:00:00Z") / 1000}`);
    expect(text).toContain(`kube_on_kube_cluster_ca_expiry_timestamp_seconds{namespace="fleet",cluster="a",authority="etcd"} ${Date.parse("2036-12-02T00:00:00Z") / 1000}`);
    expect(text).toContain(`kube_on_kube_cluster_ca_expiry_timestamp_seconds{namespace="fleet",cluster="a",authority="front-proxy"} ${Date.parse("2036-12-03T00:00:00Z") / 1000}`);
    expect(text).not.toContain('authority="service-account"');
    expect(text).not.toContain('cluster="b"');
    expect(text).not.toContain('cluster="c"');
    // A rotation's phase 2 moves the signing CA: the next scrape reads the new expiry.
    clusters[0] = cluster("a", [{ name: "cluster", notAfter: "2037-01-01T00:00:00Z" }]);
    text = await registry.metrics();
    expect(text).toContain(`kube_on_kube_cluster_ca_expiry_timestamp_seconds{namespace="fleet",cluster="a",authority="cluster"} ${Date.parse("2037-01-01T00:00:00Z") / 1000}`);
    expect(text).not.toContain('authority="etcd"');
    clusters.shift();
    text = await registry.metrics();
    expect(text).not.toContain("kube_on_kube_cluster_ca_expiry_timestamp_seconds{");
    // The family is still exported, so the alert's metric is found before any Cluster has CAs (test/integration/monitoring.test.ts).
    expect(text).toContain("# TYPE kube_on_kube_cluster_ca_expiry_timestamp_seconds gauge");
  });

  it("keeps a Cluster's last etcd backup time and failure count, the count from zero, both dropped when its backups go", async () => {
    const registry = new Registry();
    const hooks = new ClusterMetrics(registry, () => []).backupHooks();
    hooks.lastSuccess("fleet", "a", undefined);
    let text = await registry.metrics();
    expect(text).toContain('kube_on_kube_etcd_backup_failures_total{namespace="fleet",name="a"} 0');
    expect(text).not.toContain("kube_on_kube_etcd_backup_last_success_timestamp_seconds{");
    hooks.failed("fleet", "a");
    hooks.lastSuccess("fleet", "a", new Date("2026-12-04T06:00:00Z"));
    text = await registry.metrics();
    expect(text).toContain('kube_on_kube_etcd_backup_failures_total{namespace="fleet",name="a"} 1');
    expect(text).toContain('kube_on_kube_etcd_backup_last_success_timestamp_seconds{namespace="fleet",name="a"} 1796364000');
    hooks.gone("fleet", "a");
    text = await registry.metrics();
    expect(text).not.toContain('name="a"');
  });
});

describe("operator HTTP server", () => {
  let server: OperatorServer | undefined;
  afterEach(async () => server?.close());

  it("serves /metrics, /healthz always, and /readyz only once ready", async () => {
    const metrics = new OperatorMetrics({ processMetrics: false });
    metrics.setLeader("kube-on-kube-operator", false);
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
    expect(m.body).toContain('leader_election_master_status{name="kube-on-kube-operator"} 0');
    expect((await get("/nope")).status).toBe(404);
  });
});
