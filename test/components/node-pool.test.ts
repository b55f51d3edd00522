import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import type { ClusterPackageVersionSpec, RolloutSpec } from "../../src/api/v1alpha1";
import { cleanKubeconfig } from "../support/kubeconfigs";
import { installMocks, settle } from "../support/pulumi-mocks";
import { machine, packages } from "../support/worker-fixtures";

const recorder = installMocks();
type Module = typeof import("../../src/components/node-pool");
let NodePool: Module["NodePool"];
beforeAll(async () => {
  ({ NodePool } = await import("../../src/components/node-pool"));
});

const cluster = { endpoint: "https://prod-a:6443", caCertificate: "CA", caPrivateKey: "CA-KEY" };
const machines = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    name: `w${i}`,
    spec: machine({ ip: `192.0.2.${i + 10}`, hostname: `w${i}`, labels: i === 3 ? { canary: "true" } : {} }),
  }));
const cpv = (rollout: RolloutSpec, kubelet = "v1.36.3"): ClusterPackageVersionSpec => ({ clusterRef: { name: "prod-a" }, packages: packages(kubelet), rollout });

function captureOptions() {
  const options = new Map<string, pulumi.CustomResourceOptions>();
  const transformation: pulumi.ResourceTransformation = (a) => {
    options.set(a.name, a.opts);
    return undefined;
  };
  return { options, transformations: [transformation] };
}

describe("NodePool", () => {
  it("chains the batches: every step of batch n waits for the verify steps of batch n-1", async () => {
    const capture = captureOptions();
    const pool = new NodePool(
      "p",
      { machines: machines(5), packageVersion: cpv({ canary: { selector: { matchLabels: { canary: "true" } } }, maxUnavailable: 2 }), credentials: { privateKey: "K" }, cluster },
      { transformations: capture.transformations },
    );
    await settle();
    expect(pool.plan.map((b) => b.machines)).toEqual([["w3"], ["w0", "w1"], ["w2", "w4"]]);
    const gate = (m: string) => pool.nodes[m].steps.verify;
    const firstStep = (m: string) => capture.options.get(`p-${m}-host`)?.dependsOn;
    expect(firstStep("w3")).toEqual([]);
    expect(firstStep("w0")).toEqual([gate("w3")]);
    expect(firstStep("w1")).toEqual([gate("w3")]);
    expect(firstStep("w2")).toEqual([gate("w0"), gate("w1")]);
    expect(capture.options.get("p-w4-kubelet")?.dependsOn).toEqual([pool.nodes.w4.steps.containerd, gate("w0"), gate("w1")]);
    expect(recorder.ofType("kube-on-kube:index:WorkerNode").map((r) => r.name).sort()).toEqual(["p-w0", "p-w1", "p-w2", "p-w3", "p-w4"]);
    expect(capture.options.get("p-w0")?.parent).toBe(pool);
  });

  it("gates on the Ready steps when the business cluster is reachable", async () => {
    const capture = captureOptions();
    const pool = new NodePool(
      "r",
      { machines: machines(2), packageVersion: cpv({ canary: { count: 1 } }), credentials: { privateKey: "K" }, cluster: { ...cluster, adminKubeconfig: cleanKubeconfig() } },
      { transformations: capture.transformations },
    );
    await settle();
    expect(capture.options.get("r-w1-host")?.dependsOn).toEqual([pool.nodes.w0.steps.ready]);
  });

  it("holds the machines after the canary on the previous catalog while paused, and rolls them on resume", async () => {
    recorder.reset();
    const rollout = { canary: { count: 1 }, pauseAfterCanary: true };
    new NodePool("h", { machines: machines(3), packageVersion: cpv(rollout, "v1.36.4"), previousPackages: packages(), credentials: { privateKey: "K" }, cluster });
    new NodePool("g", { machines: machines(3), packageVersion: cpv(rollout, "v1.36.4"), resume: true, credentials: { privateKey: "K" }, cluster });
    await settle();
    const kubelet = (name: string) => String(recorder.named(name).inputs.create).match(/kubelet-(v[0-9.]+)-linux-amd64/)?.[1];
    expect([kubelet("h-w0-kubelet"), kubelet("h-w1-kubelet"), kubelet("h-w2-kubelet")]).toEqual(["v1.36.4", "v1.36.3", "v1.36.3"]);
    expect([kubelet("g-w0-kubelet"), kubelet("g-w1-kubelet"), kubelet("g-w2-kubelet")]).toEqual(["v1.36.4", "v1.36.4", "v1.36.4"]);
  });

  it("validates the whole pool first and names every problem", () => {
    recorder.reset();
    const ms = machines(3);
    ms[1] = { ...ms[1], spec: { ...ms[1].spec, ip: ms[0].spec.ip } };
    ms[2] = { ...ms[2], spec: { ...ms[2].spec, ssh: { user: "root" } } };
    let message = "";
    try {
      new NodePool("bad", { machines: ms, packageVersion: cpv({ canary: { count: 5 }, maxUnavailable: "0%", pauseAfterCanary: true }), credentials: { privateKey: "K" }, cluster });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain("NodePool bad is invalid (5 problems)");
    expect(message).toContain("packageVersion.rollout.maxUnavailable:");
    expect(message).toContain("packageVersion.rollout.canary.count: (5) is larger than the pool (3 machines)");
    expect(message).toContain('machines[1].spec.ip: "192.0.2.10" is also used by machines[0]');
    expect(message).toContain("machines[2].spec.ssh.hostKey: is required");
    expect(message).toContain("previousPackages: is required with rollout.pauseAfterCanary");
    expect(recorder.resources).toEqual([]);
  });

  it("gives every node's kubelet the cluster's DNS address and domain, and a serving certificate for each machine", async () => {
    recorder.reset();
    new NodePool("dns", {
      machines: machines(2),
      packageVersion: cpv({ canary: { count: 1 } }),
      credentials: { privateKey: "K" },
      cluster: { ...cluster, serviceCIDR: "10.100.0.0/16", clusterDomain: "pool.local" },
    });
    await settle();
    for (const m of ["w0", "w1"]) {
      expect(String(recorder.named(`dns-${m}-kubelet`).inputs.create)).toContain("clusterDNS:\n  - 10.100.0.10\nclusterDomain: pool.local");
    }
    expect(recorder.named("dns-w1-kubelet-serving-csr").inputs).toMatchObject({ dnsNames: ["w1"], ipAddresses: ["192.0.2.11"] });
  });
});
