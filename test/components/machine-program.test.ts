/**
 * The operator's Machine program: the Cluster's network reaches the kubelet's config (clusterDNS =
 * the tenth address of serviceCIDR, clusterDomain), and the operator's worker defaults still apply.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { installMocks, settle } from "../support/pulumi-mocks";
import { cleanKubeconfig } from "../support/kubeconfigs";
import { machine, packages } from "../support/worker-fixtures";

const recorder = installMocks();
type Module = typeof import("../../src/program/machine-program");
let machineProgram: Module["machineProgram"];
let machineNodeArgs: Module["machineNodeArgs"];
beforeAll(async () => {
  ({ machineProgram, machineNodeArgs } = await import("../../src/program/machine-program"));
});

const cluster = {
  endpoint: "https://prod-a.k8s.example.com:6443",
  caCertificate: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
  caPrivateKey: "-----BEGIN EC PRIVATE KEY-----\nTEST-ONLY\n-----END EC PRIVATE KEY-----\n",
  adminKubeconfig: cleanKubeconfig(),
};
const args = (extra: Record<string, unknown> = {}) => ({ name: "m1", spec: machine(), packages: packages(), credentials: { privateKey: "k" }, cluster, ...extra });

describe("machineProgram", () => {
  it("gives the kubelet the Cluster's cluster DNS address and domain", async () => {
    recorder.reset();
    machineProgram(args({ cluster: { ...cluster, serviceCIDR: "172.20.0.0/16", clusterDomain: "corp.internal" } }));
    await settle();
    const script = String(recorder.named("m1-kubelet").inputs.create);
    expect(script).toContain("clusterDNS:\n  - 172.20.0.10\nclusterDomain: corp.internal");
    // The serving certificate comes along: the operator always has the CA key.
    expect(script).toContain("tlsCertFile: /var/lib/kubelet/pki/kubelet-serving.crt");
  });

  it("keeps the operator's kubelet defaults and the per-machine bind address beside the Cluster's network", () => {
    const node = machineNodeArgs(
      args({ cluster: { ...cluster, serviceCIDR: "fd00:10:96::/108", clusterDomain: "c.local" }, defaults: { kubelet: { maxPods: 50 }, kubeletBindToMachineIp: true } }),
    );
    expect(node.cluster).toMatchObject({ serviceCIDR: "fd00:10:96::/108", clusterDomain: "c.local" });
    expect(node.kubelet).toEqual({ maxPods: 50, config: { address: "192.0.2.11", healthzBindAddress: "192.0.2.11" } });
  });
});
