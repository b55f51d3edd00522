/**
 * The Pulumi package schema of the components offered to every Pulumi language (src/provider),
 * derived from the same TypeBox schemas as the CRDs, so `spec` means the same thing in a Cluster
 * resource, a TypeScript program and a YAML or Python one.
 *
 * Pulumi schemas have no union types. The API's only unions are closed sets of strings
 * (StringEnum: mode, service type, anti-affinity, toleration operator...); each becomes a plain
 * `string` whose description lists the values, and the component validates it as it always does
 * (validateClusterSpec), naming the field. Any other union fails the generation, so a new one is
 * noticed here instead of reaching users as a schema they cannot bind.
 */
import * as api from "../api/v1alpha1";
import { componentType } from "../components/type-tokens";
import { PACKAGE, ref, secretStr, str, TypeCollector, typeToken } from "./schema-types";
import { nodePoolResource } from "./node-pool-schema";
import { workerNodeResource } from "./worker-schema";

export interface PackageSchema {
  readonly schema: Record<string, unknown>;
  /** Every string union of the API flattened to `string`, as `path: "a" | "b"`. */
  readonly flattenedUnions: readonly string[];
}

/** The package schema at `version` (the npm package's version). */
export function packageSchema(version: string): PackageSchema {
  const collector = new TypeCollector();
  const spec = collector.property(api.ClusterSpec, "spec", "ClusterSpec");
  collector.types[typeToken("ControlPlaneRunning")] = {
    type: "object",
    description: "What runs now; an upgrade that skips a minor version or goes backwards is refused before anything changes.",
    properties: { kubernetesVersion: str("e.g. v1.35.4"), etcdVersion: str("e.g. 3.6.16") },
  };
  collector.types[typeToken("RotationDrill")] = {
    type: "object",
    description: "Leaf certificate lifetimes in hours instead of spec.certificates days.",
    properties: { validityHours: { type: "integer" }, renewBeforeHours: { type: "integer" } },
    required: ["validityHours", "renewBeforeHours"],
  };
  collector.types[typeToken("EtcdBackupArgs")] = {
    type: "object",
    description: "What spec.etcd.backup and spec.etcd.restore need besides the spec.",
    properties: {
      accessKeyId: secretStr("The store's access key id (of spec.etcd.backup.store.s3.credentialsSecretRef); required with backups."),
      secretAccessKey: secretStr("The store's secret access key; required with backups."),
      image: str("The image of the backup and restore containers (kok, etcdctl, etcdutl). Default: docker.io/kube-on-kube/operator:<version>."),
      clusterRef: str("<namespace>/<name> written into each snapshot's sidecar. Default: <namespace>/<resource name>."),
    },
  };
  collector.types[typeToken("CaRotation")] = {
    type: "object",
    description:
      "The step of a CA and service-account key rotation (docs/operations.md, \"Rotating CAs\"): phase 1 is { generation: N, trusting: true, etcd: { generation: E, step: trusting } }, phase 2 { generation: N, trusting: false, previousServiceAccountKey: true, etcd: { generation: E, step: switching } }, then the same with etcd step stable, then previousServiceAccountKey: false; no step may be skipped. Default: never rotated (generation 0).",
    properties: {
      generation: { type: "integer", description: "The newest CA generation; 0 is the cluster's first CA." },
      trusting: { type: "boolean", description: "Phase 1: generation - 1 is still trusted and still signs what others than the apiserver check." },
      previousServiceAccountKey: { type: "boolean", description: "After phase 2: the service-account public key of generation - 1 still verifies tokens." },
      etcd: { ...ref("EtcdCaStep"), description: "The etcd CA's generation and step. Default: generation 0, never rotated." },
    },
    required: ["generation", "trusting", "previousServiceAccountKey"],
  };
  collector.types[typeToken("EtcdCaStep")] = {
    type: "object",
    description:
      "Where the etcd CA's rotation stands: trusting (generation E joins every etcd bundle, E - 1 still signs), switching (E signs every etcd certificate, E - 1 still trusted), stable (E alone).",
    properties: {
      generation: { type: "integer", description: "The newest etcd CA generation; 0 is the cluster's first etcd CA." },
      step: str("One of trusting, switching, stable (validated by the component, naming the field)."),
    },
    required: ["generation", "step"],
  };
  collector.types[typeToken("CertificateAuthorities")] = {
    type: "object",
    description: "The public halves of the signing authorities (PEM; nothing secret).",
    properties: {
      cluster: str("The signing cluster CA (the CA Secret's certificate)."),
      clusterBundle: str("Every cluster CA trusted now (the CA Secret's ca-bundle.crt): during a rotation the old and the new one. Give it to workers as cluster.trustBundle."),
      etcd: str("The etcd CA that signs etcd certificates now (during phase 1 of a rotation, still the old one)."),
      frontProxy: str("The signing front-proxy CA."),
      serviceAccount: str("The public key that verifies the tokens the apiserver signs now."),
    },
    required: ["cluster", "clusterBundle", "etcd", "frontProxy", "serviceAccount"],
  };
  const specDescription = { ...spec, description: "The business cluster, exactly as in a Cluster resource's spec (docs/api.md)." };
  const resources = {
    [componentType("ControlPlane")]: {
      isComponent: true,
      description: "The masters of one business cluster (etcd, kube-apiserver, controller-manager, scheduler, their PKI), hosted in a meta-cluster namespace.",
      inputProperties: {
        spec: specDescription,
        namespace: str("Meta-cluster namespace of the masters. Default: the resource's name."),
        createNamespace: { type: "boolean", description: "Create (and on destroy delete) that namespace. Default: true." },
        namespaceLabels: { type: "object", additionalProperties: { type: "string" }, description: "More labels on the namespace it creates." },
        metaClusterDomain: str("DNS domain of the meta-cluster. Default: cluster.local."),
        metaKubeconfig: secretStr("Kubeconfig of the meta-cluster for the rollout gates; pass the one the Kubernetes provider uses. Default: the engine's ambient kubeconfig."),
        running: ref("ControlPlaneRunning"),
        rotationDrill: ref("RotationDrill"),
        operatorNamespace: str("Meta-cluster namespace of the operator, admitted to the apiserver by the masters' NetworkPolicies."),
        encryptionKeyGeneration: { type: "integer", description: "Generation of the key that encrypts Secrets at rest; raise by one to rotate. Default: 1." },
        etcdBackup: ref("EtcdBackupArgs"),
        caRotation: ref("CaRotation"),
      },
      requiredInputs: ["spec"],
      properties: {
        namespace: str("Meta-cluster namespace of the masters."),
        endpoint: str("URL of the business cluster's apiserver, as users and workers reach it."),
        internalEndpoint: str("URL of the apiserver inside the meta-cluster."),
        caCertificate: str("PEM of the business cluster's CA."),
        caPrivateKey: secretStr("PEM key of the cluster CA; workers' kubelet certificates are signed with it."),
        adminKubeconfig: secretStr("Kubeconfig of kubernetes-admin (group system:masters) for endpoint."),
        adminKubeconfigSecret: str("Name of the Secret (in namespace) holding the admin kubeconfig."),
        version: str("The Kubernetes version the masters run once this update completes."),
        certificatesExpireAt: str("Earliest expiry of the leaf certificates (RFC 3339)."),
        certificateAuthorities: ref("CertificateAuthorities"),
      },
      required: ["namespace", "endpoint", "internalEndpoint", "caCertificate", "caPrivateKey", "adminKubeconfig", "adminKubeconfigSecret", "version", "certificatesExpireAt", "certificateAuthorities"],
    },
    [componentType("ClusterPki")]: {
      isComponent: true,
      description: "Every CA, key pair and certificate the masters of one business cluster need (@pulumi/tls), without the masters.",
      inputProperties: {
        spec: specDescription,
        namespace: str("Meta-cluster namespace the masters would live in (part of the servers' names). Default: the resource's name."),
        metaClusterDomain: str("DNS domain of the meta-cluster. Default: cluster.local."),
        caRotation: ref("CaRotation"),
      },
      requiredInputs: ["spec"],
      properties: {
        clusterCaCertificate: str("PEM of the signing cluster CA."),
        clusterTrustBundle: str("Every cluster CA trusted now (PEM, the newest first): during a rotation the old and the new one."),
        clusterCaPrivateKey: secretStr("PEM key of the cluster CA."),
        adminCertificate: str("PEM of kubernetes-admin's client certificate (group system:masters)."),
        adminPrivateKey: secretStr("PEM key of kubernetes-admin's client certificate."),
        certificatesExpireAt: str("Earliest expiry of the leaf certificates (RFC 3339)."),
      },
      required: ["clusterCaCertificate", "clusterTrustBundle", "clusterCaPrivateKey", "adminCertificate", "adminPrivateKey", "certificatesExpireAt"],
    },
    [componentType("WorkerNode")]: workerNodeResource(collector),
    [componentType("NodePool")]: nodePoolResource(collector),
  };
  const schema = {
    name: PACKAGE,
    displayName: "kube-on-kube",
    version,
    description: "Kubernetes as a service on your own hardware: business-cluster masters hosted in a meta-cluster.",
    license: "Apache-2.0",
    keywords: ["kubernetes", "category/cloud", "kind/component"],
    meta: { moduleFormat: "(.*)" },
    types: Object.fromEntries(Object.entries(collector.types).sort(([a], [b]) => a.localeCompare(b))),
    resources,
  };
  return { schema, flattenedUnions: collector.unions };
}
