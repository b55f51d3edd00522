/**
 * A business cluster hosted in a meta-cluster: copy this program and adapt the spec.
 *
 *   pulumi config set --secret metaKubeconfig "$(cat ~/.kube/meta-cluster.yaml)"   # or rely on $KUBECONFIG
 *   pulumi preview
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ControlPlane, type ClusterSpec } from "kube-on-kube";

const config = new pulumi.Config();

const spec: ClusterSpec = {
  mode: "standard",
  kubernetesVersion: "v1.36.3",
  imageRepository: "registry.k8s.io",
  masterNodeSelector: { "node-role.kubeonkube.io/master": "true" },
  masterTolerations: [{ key: "node-role.kubeonkube.io/master", operator: "Exists", effect: "NoSchedule" }],
  etcd: { version: "3.6.16", storage: { claimTemplate: { size: "20Gi" } } },
  apiServer: { service: { type: "LoadBalancer", externalHost: "prod-a.k8s.example.com", port: 6443 } },
  network: { serviceCIDR: "10.96.0.0/12", podCIDR: "10.244.0.0/16" },
  certificates: { validityDays: 365, renewBeforeDays: 30 },
  kubeconfigs: [{ name: "ops-viewer", user: "ops", groups: ["view-only"], validityDays: 30 }],
};

const metaKubeconfig = config.getSecret("metaKubeconfig");
const metaCluster = new k8s.Provider("meta-cluster", {
  kubeconfig: metaKubeconfig,
  clusterIdentifier: "meta-cluster",
  enableSecretMutable: true,
  // The etcd membership ConfigMap and the audit policy change in place, never briefly missing.
  enableConfigMapMutable: true,
});

// The rollout gates read the meta-cluster with the provider's kubeconfig (or $KUBECONFIG, like it).
const prodA = new ControlPlane("prod-a", { spec, namespace: "kok-prod-a", metaKubeconfig }, { providers: [metaCluster] });

export const endpoint = prodA.endpoint;
export const namespace = prodA.namespace;
export const caCertificate = prodA.caCertificate;
export const adminKubeconfig = prodA.adminKubeconfig; // a secret: `pulumi stack output adminKubeconfig --show-secrets`
export const certificatesExpireAt = prodA.certificatesExpireAt;
export const caPrivateKey = prodA.caPrivateKey; // a secret: examples/workers signs kubelet certificates with it
