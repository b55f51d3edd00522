import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { FleetMetrics } from "../../src/controllers/machine/metrics";

describe("FleetMetrics", () => {
  it("counts machines by phase from the cache at scrape time, and records actions, SSH and rollouts", async () => {
    const registry = new Registry();
    const machines: { status?: { phase?: string } }[] = [{ status: { phase: "Ready" } }, { status: { phase: "Ready" } }, {}];
    const metrics = new FleetMetrics(registry, () => machines);
    metrics.recordAction("restart-services", "success");
    metrics.recordSsh("probe", "error", 1500);
    metrics.recordRollout("fleet/prod-a-v1.36", { total: 3, updated: 1, ready: 1 });
    let text = await registry.metrics();
    expect(text).toContain('kube_on_kube_machines{phase="Ready"} 2');
    expect(text).toContain('kube_on_kube_machines{phase="Pending"} 1');
    expect(text).toContain('kube_on_kube_machines{phase="Failed"} 0');
    expect(text).toContain('kube_on_kube_machine_actions_total{action="restart-services",result="success"} 1');
    expect(text).toContain('kube_on_kube_ssh_operation_duration_seconds_count{operation="probe",result="error"} 1');
    expect(text).toContain('kube_on_kube_rollout_machines{namespace="fleet",name="prod-a-v1.36",state="updated"} 1');
    machines.push({ status: { phase: "Failed" } });
    metrics.forgetRollout("fleet/prod-a-v1.36");
    text = await registry.metrics();
    expect(text).toContain('kube_on_kube_machines{phase="Failed"} 1');
    expect(text).not.toContain("prod-a-v1.36");
  });

  it("exports each Machine's kubelet certificate expiry from the cache at scrape time, and nothing for a Machine gone", async () => {
    const registry = new Registry();
    const issuer = `sha256:${"a".repeat(64)}`;
    const machine = (name: string, client?: string, serving?: string) => ({
      metadata: { namespace: "fleet", name },
      spec: { clusterRef: { name: "prod-a" } },
      status: { phase: "Ready", certificates: { ...(client ? { kubeletClient: { notAfter: client, issuer } } : {}), ...(serving ? { kubeletServing: { notAfter: serving, issuer } } : {}) } },
    });
    const machines = [machine("w0", "2027-12-05T12:00:00Z", "2027-12-06T12:00:00Z"), machine("w1")];
    new FleetMetrics(registry, () => machines);
    let text = await registry.metrics();
    expect(text).toContain(`kube_on_kube_machine_certificate_expiry_timestamp_seconds{namespace="fleet",name="w0",cluster="prod-a",certificate="client"} ${Date.parse("2027-12-05T12:00:00Z") / 1000}`);
    expect(text).toContain(`kube_on_kube_machine_certificate_expiry_timestamp_seconds{namespace="fleet",name="w0",cluster="prod-a",certificate="serving"} ${Date.parse("2027-12-06T12:00:00Z") / 1000}`);
    expect(text).not.toContain('name="w1"');
    machines.shift();
    text = await registry.metrics();
    expect(text).not.toContain('name="w0"');
  });
});
