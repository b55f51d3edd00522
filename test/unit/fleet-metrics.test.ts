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
});
