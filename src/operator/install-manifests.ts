/**
 * `kok manifests`: everything a real meta-cluster needs to run the operator — the CRDs, a
 * namespace, a least-privilege ServiceAccount and RBAC, the Lease permissions for leader
 * election, and a Deployment with probes, a metrics port and a volume for the Pulumi state.
 */
import { API_GROUP } from "../api/v1alpha1";
import { allCustomResourceDefinitions } from "./crds";

type Json = Record<string, unknown>;

export interface ManifestOptions {
  /** Namespace of the operator. Default kube-on-kube-system. */
  readonly namespace?: string;
  /** Operator image. */
  readonly image?: string;
  /** Pulumi state backend; default a file:// directory on the state volume. */
  readonly backendUrl?: string;
  /** Secret holding the state passphrase under the key `passphrase`. */
  readonly passphraseSecret?: string;
  /** PersistentVolumeClaim size of the state volume when the backend is the file directory. */
  readonly stateVolumeSize?: string;
  /**
   * V8 old-space cap of the operator process (`--max-old-space-size`, MB). Default 512. Without a
   * cap V8 grows the heap far past the live data during a cold start with 10,000 Machines
   * (599 MB); 256 held it at 262 MB (docs/benchmarks.md (5)). Raise it with the fleet.
   */
  readonly operatorHeapMb?: number;
}

const NAME = "kube-on-kube-operator";
const LABELS = { "app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "kube-on-kube" };

/** Cluster-wide rules: the kinds it reconciles, and what the masters' stacks create in their namespaces. */
export function operatorClusterRules(): Json[] {
  return [
    { apiGroups: [API_GROUP], resources: ["clusters", "machines", "clusterpackageversions"], verbs: ["get", "list", "watch", "update", "patch"] },
    { apiGroups: [API_GROUP], resources: ["clusters/status", "machines/status", "clusterpackageversions/status", "clusters/finalizers", "machines/finalizers"], verbs: ["get", "update", "patch"] },
    { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
    // The hosted masters: namespaces and the objects ControlPlane renders in them.
    { apiGroups: [""], resources: ["namespaces"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] },
    { apiGroups: [""], resources: ["services", "secrets", "configmaps", "persistentvolumeclaims"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] },
    { apiGroups: [""], resources: ["pods", "endpoints"], verbs: ["get", "list", "watch"] },
    { apiGroups: ["apps"], resources: ["deployments", "statefulsets", "replicasets"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] },
    { apiGroups: ["policy"], resources: ["poddisruptionbudgets"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] },
    // The masters' NetworkPolicies (src/components/network-policies.ts).
    { apiGroups: ["networking.k8s.io"], resources: ["networkpolicies"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] },
  ];
}

export function installManifests(options: ManifestOptions = {}): Json[] {
  const namespace = options.namespace ?? "kube-on-kube-system";
  const image = options.image ?? "kube-on-kube/operator:0.1.0";
  const passphraseSecret = options.passphraseSecret ?? `${NAME}-state-passphrase`;
  const backendUrl = options.backendUrl ?? "file:///var/lib/kube-on-kube/state";
  const meta = (name: string, ns = true) => ({ name, ...(ns ? { namespace } : {}), labels: LABELS });
  return [
    ...allCustomResourceDefinitions(),
    { apiVersion: "v1", kind: "Namespace", metadata: meta(namespace, false) },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: meta(NAME) },
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: meta(NAME, false), rules: operatorClusterRules() },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: meta(NAME, false),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: NAME },
      subjects: [{ kind: "ServiceAccount", name: NAME, namespace }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: meta(`${NAME}-leader-election`),
      rules: [{ apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: meta(`${NAME}-leader-election`),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: `${NAME}-leader-election` },
      subjects: [{ kind: "ServiceAccount", name: NAME, namespace }],
    },
    ...(backendUrl.startsWith("file://")
      ? [
          {
            apiVersion: "v1",
            kind: "PersistentVolumeClaim",
            metadata: meta(`${NAME}-state`),
            spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: options.stateVolumeSize ?? "10Gi" } } },
          },
        ]
      : []),
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: meta(NAME),
      spec: {
        // With an object-store backend a second replica stands by for fast failover (the Lease
        // keeps one active); a file backend on a ReadWriteOnce volume allows only one pod.
        replicas: backendUrl.startsWith("file://") ? 1 : 2,
        selector: { matchLabels: { "app.kubernetes.io/name": NAME } },
        // A file backend lives on a ReadWriteOnce volume: never two pods on it at once.
        strategy: backendUrl.startsWith("file://") ? { type: "Recreate" } : undefined,
        template: {
          metadata: { labels: LABELS },
          spec: {
            serviceAccountName: NAME,
            securityContext: { runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532 },
            containers: [
              {
                name: "operator",
                image,
                args: ["operator", `--backend-url=${backendUrl}`, "--metrics-addr=:8080", `--leader-election-namespace=${namespace}`],
                env: [
                  { name: "PULUMI_CONFIG_PASSPHRASE", valueFrom: { secretKeyRef: { name: passphraseSecret, key: "passphrase" } } },
                  { name: "NODE_OPTIONS", value: `--max-old-space-size=${options.operatorHeapMb ?? 512}` },
                ],
                ports: [{ name: "metrics", containerPort: 8080 }],
                livenessProbe: { httpGet: { path: "/healthz", port: "metrics" }, periodSeconds: 20 },
                readinessProbe: { httpGet: { path: "/readyz", port: "metrics" }, periodSeconds: 10 },
                resources: { requests: { cpu: "500m", memory: "512Mi" }, limits: { memory: "2Gi" } },
                volumeMounts: backendUrl.startsWith("file://") ? [{ name: "state", mountPath: "/var/lib/kube-on-kube" }] : [],
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: false, capabilities: { drop: ["ALL"] } },
              },
            ],
            volumes: backendUrl.startsWith("file://") ? [{ name: "state", persistentVolumeClaim: { claimName: `${NAME}-state` } }] : [],
          },
        },
      },
    },
  ];
}
