/** Sample ClusterSpecs shared by the tests. */
import type { ClusterSpec } from "../../src/api/v1alpha1";
import type { OperatorFlags } from "../../src/cli/operator";

export function standardSpec(overrides: Partial<ClusterSpec> = {}): ClusterSpec {
  return {
    mode: "standard",
    kubernetesVersion: "v1.36.3",
    imageRepository: "registry.example.com/k8s",
    masterNodeSelector: { "node-role.kubeonkube.io/master": "true" },
    masterTolerations: [{ key: "node-role.kubeonkube.io/master", operator: "Exists", effect: "NoSchedule" }],
    etcd: { version: "3.6.16", storage: { claimTemplate: { storageClassName: "local-ssd", size: "20Gi" } } },
    apiServer: {
      replicas: 3,
      service: { type: "LoadBalancer", externalHost: "prod-a.k8s.example.com", port: 6443 },
      certSANs: ["203.0.113.10"],
      extraArgs: { "audit-log-maxage": "30" },
    },
    network: { serviceCIDR: "10.96.0.0/12", podCIDR: "10.244.0.0/16", clusterDomain: "cluster.local" },
    certificates: { validityDays: 365, renewBeforeDays: 30, caValidityDays: 3650 },
    kubeconfigs: [{ name: "ops-viewer", user: "ops", groups: ["view-only"], validityDays: 60 }],
    ...overrides,
  };
}

export function minimalSpec(overrides: Partial<ClusterSpec> = {}): ClusterSpec {
  return {
    mode: "minimal",
    kubernetesVersion: "v1.36.3",
    etcd: { version: "3.6.16", storage: { volumeSource: { emptyDir: {} } } },
    ...overrides,
  };
}

/** `kok operator`'s flags as the command line gives them, every one set: tests change one at a time. */
export function operatorFlags(overrides: Partial<OperatorFlags> = {}): OperatorFlags {
  return {
    stateDir: "/var/lib/kok",
    resyncInterval: "90s",
    fullDriftCheckInterval: "24h",
    concurrency: "4",
    metricsAddr: ":8080",
    probeInterval: "10m",
    repairAfter: "5m",
    maxRepairs: "3",
    maxUnhealthy: "40%",
    logLevel: "info",
    ...overrides,
  };
}
