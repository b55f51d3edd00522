/**
 * `kok manifests`: everything a real meta-cluster needs to run the operator — the CRDs, a
 * namespace under the restricted Pod Security level, a ServiceAccount with least-privilege RBAC
 * (operator-rbac.ts) and the admission policy that confines its writes
 * (operator-admission-policy.ts), and a hardened Deployment: read-only root filesystem with every
 * written path on a volume, seccomp RuntimeDefault, no capabilities, and a termination grace that
 * lets an update in flight finish. docs/security.md explains each choice.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { allCustomResourceDefinitions } from "../api/v1alpha1/crds";
import { operatorAdmissionPolicy } from "./operator-admission-policy";
import { OPERATOR_NAME, operatorRbac, tenantRoles } from "./rbac";
import { RESTRICTED_CONTAINER_SECURITY_CONTEXT, RESTRICTED_POD_SECURITY_CONTEXT } from "../components/pod-security";

type Json = Record<string, unknown>;

export interface ManifestOptions {
  /** Namespace of the operator. Default kube-on-kube-system. */
  readonly namespace?: string;
  /** Operator image. Default OPERATOR_IMAGE_REPOSITORY:<package version> (docs/images.md). */
  readonly image?: string;
  /** Pulumi state backend; default a file:// directory on the state volume. */
  readonly backendUrl?: string;
  /** Secret holding the state passphrase under the key `passphrase`. */
  readonly passphraseSecret?: string;
  /**
   * `kok operator --secrets-provider`: a KMS (awskms://, gcpkms://, azurekeyvault://, hashivault://)
   * encrypts the stacks' secrets instead of the passphrase, which is then not mounted at all.
   */
  readonly secretsProvider?: string;
  /**
   * Secret with the object store's credentials under AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
   * the names the engine's s3:// backend reads (MinIO-class stores too; the endpoint and region are
   * in the backend URL). Default none: the Pod's own identity (IRSA, workload identity).
   */
  readonly objectStoreCredentialsSecret?: string;
  /** Operator Pods. Default 1 with a file backend (a ReadWriteOnce volume), 2 with an object store. */
  readonly replicas?: number;
  /** The operator container's resources. Default DEFAULT_OPERATOR_RESOURCES. */
  readonly resources?: Json;
  /** `kok operator --concurrency`, `--cluster-workers`, `--machine-workers`; default the operator's own. */
  readonly concurrency?: number;
  readonly clusterWorkers?: number;
  readonly machineWorkers?: number;
  /** PersistentVolumeClaim size of the state volume when the backend is the file directory. */
  readonly stateVolumeSize?: string;
  /**
   * V8 old-space cap of the operator process (`--max-old-space-size`, MB). Default 512. Without a
   * cap V8 grows the heap far past the live data during a cold start with 10,000 Machines
   * (599 MB); 256 held it at 262 MB (docs/benchmarks.md (5)). Raise it with the fleet.
   */
  readonly operatorHeapMb?: number;
  /** Seconds between SIGTERM and SIGKILL. Default DEFAULT_TERMINATION_GRACE_SECONDS. */
  readonly terminationGracePeriodSeconds?: number;
  /**
   * The admin policy file's text (`kok operator --policy`). Shipped as a ConfigMap in the
   * operator's namespace, which tenants cannot write, and mounted read-only. Default none: the
   * operator's built-in policy applies.
   */
  readonly policyText?: string;
  /**
   * The worker defaults file's text (`kok operator --worker-defaults`): host settings for every
   * Machine (service manager, kubelet cgroup driver, preflight checks to skip, ...), shipped as a
   * ConfigMap and mounted read-only. Default none: the operator's defaults (systemd hosts).
   */
  readonly workerDefaultsText?: string;
}

/** The ConfigMap holding the admin policy, and where the operator reads it. */
export const POLICY_CONFIGMAP = { name: `${OPERATOR_NAME}-admin-policy`, key: "policy.yaml", mountPath: "/etc/kube-on-kube" } as const;

/**
 * The ConfigMap holding the worker defaults, and where the operator reads them: a directory of its
 * own, since the admin policy's ConfigMap volume (read-only) takes POLICY_CONFIGMAP.mountPath.
 */
export const WORKER_DEFAULTS_CONFIGMAP = { name: `${OPERATOR_NAME}-worker-defaults`, key: "worker-defaults.yaml", mountPath: "/etc/kube-on-kube-workers" } as const;

/** The operator image's repository; its tag is the package version by default. */
export const OPERATOR_IMAGE_REPOSITORY = "kube-on-kube/operator";

/** The package's version, from the package.json two levels up (src/operator or dist/operator). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")) as { version: string }).version;
}

/** Requests what a cold start of a large fleet used (docs/benchmarks.md); the limit leaves room past the heap cap. */
export const DEFAULT_OPERATOR_RESOURCES: Json = { requests: { cpu: "500m", memory: "512Mi" }, limits: { memory: "2Gi" } };

const NAME = OPERATOR_NAME;
const LABELS = { "app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "kube-on-kube" };

/**
 * Default grace between SIGTERM and SIGKILL. On SIGTERM the operator stops taking keys and waits
 * for every reconcile in flight (src/runtime/controller.ts `stop`): a `pulumi up` is not
 * cancelled but allowed to end, so the grace must outlast the longest single wait inside one: an
 * SSH step (900 s timeout, src/components/ssh-step.ts) or a rollout gate (600 s,
 * src/components/rollout-gate.ts), with room for the status writes after it. An update killed past
 * it leaves pending operations that the next leader clears before any other update.
 */
export const DEFAULT_TERMINATION_GRACE_SECONDS = 1800;

/** Where the operator writes, all on volumes: the root filesystem is read-only. */
export const OPERATOR_PATHS = {
  /** `--state-dir`: the stacks' work directories and, with a file backend, the state (PVC). */
  data: "/var/lib/kube-on-kube",
  /**
   * HOME and PULUMI_HOME (the CLI's credentials and workspace files). An emptyDir, so the image
   * carries the CLI, language host and providers on PATH (plugin downloads are off).
   */
  home: "/home/kube-on-kube",
  /** TMPDIR. */
  tmp: "/tmp",
} as const;

/** `--max-old-space-size` of the operator (ManifestOptions.operatorHeapMb says why). */
export const DEFAULT_OPERATOR_HEAP_MB = 512;

/** The state volume's default size. */
export const DEFAULT_STATE_VOLUME_SIZE = "10Gi";

/** The file backend's default directory, on the state volume. */
export const DEFAULT_FILE_BACKEND_URL = `file://${OPERATOR_PATHS.data}/state`;

export function installManifests(options: ManifestOptions = {}): Json[] {
  const namespace = options.namespace ?? "kube-on-kube-system";
  const image = options.image ?? `${OPERATOR_IMAGE_REPOSITORY}:${packageVersion()}`;
  const passphraseSecret = options.passphraseSecret ?? `${NAME}-state-passphrase`;
  const fileBackend = (options.backendUrl ?? "file://").startsWith("file://");
  const backendUrl = options.backendUrl ?? DEFAULT_FILE_BACKEND_URL;
  const replicas = options.replicas ?? (fileBackend ? 1 : 2);
  // The chart's template fails with the same words (src/operator/helm-chart.ts).
  if (fileBackend && replicas > 1) throw new Error(`replicas ${replicas}: ${FILE_BACKEND_ONE_REPLICA}`);
  const meta = (name: string, ns = true) => ({ name, ...(ns ? { namespace } : {}), labels: LABELS });
  return [
    ...allCustomResourceDefinitions(),
    {
      apiVersion: "v1",
      kind: "Namespace",
      // The operator's Pod meets the restricted Pod Security level; nothing else belongs here.
      metadata: { name: namespace, labels: { ...LABELS, "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted" } },
    },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: meta(NAME) },
    ...operatorRbac(namespace, LABELS),
    ...tenantRoles(LABELS),
    ...operatorAdmissionPolicy({ namespace, serviceAccount: NAME, labels: LABELS }),
    ...(fileBackend
      ? [
          {
            apiVersion: "v1",
            kind: "PersistentVolumeClaim",
            metadata: meta(`${NAME}-state`),
            spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: options.stateVolumeSize ?? DEFAULT_STATE_VOLUME_SIZE } } },
          },
        ]
      : []),
    ...(options.policyText === undefined ? [] : [{ apiVersion: "v1", kind: "ConfigMap", metadata: meta(POLICY_CONFIGMAP.name), data: { [POLICY_CONFIGMAP.key]: options.policyText } }]),
    ...(options.workerDefaultsText === undefined
      ? []
      : [{ apiVersion: "v1", kind: "ConfigMap", metadata: meta(WORKER_DEFAULTS_CONFIGMAP.name), data: { [WORKER_DEFAULTS_CONFIGMAP.key]: options.workerDefaultsText } }]),
    operatorDeployment({ ...options, namespace, image, passphraseSecret, backendUrl, fileBackend, replicas }),
  ];
}

/** Why a file backend takes one replica (the error of `installManifests` and of the chart). */
export const FILE_BACKEND_ONE_REPLICA = "a file:// backend lives on a ReadWriteOnce volume and takes exactly one operator Pod; use an object-store backend URL (s3://...) for a standby";

/** The operator's flags that tune its throughput, when set (else the operator's defaults apply). */
export function throughputArgs(o: Pick<ManifestOptions, "concurrency" | "clusterWorkers" | "machineWorkers">): string[] {
  const args: string[] = [];
  if (o.concurrency !== undefined) args.push(`--concurrency=${o.concurrency}`);
  if (o.clusterWorkers !== undefined) args.push(`--cluster-workers=${o.clusterWorkers}`);
  if (o.machineWorkers !== undefined) args.push(`--machine-workers=${o.machineWorkers}`);
  return args;
}

/** The operator Pods' annotation that follows the files it reads at start. */
export const CONFIG_CHECKSUM_ANNOTATION = "kubeonkube.io/config-checksum";

/**
 * sha256 (hex) of the admin policy's text and the worker defaults' text joined by a newline, an
 * absent one as empty: the chart computes the same with `printf "%s\n%s" | sha256sum`.
 */
export function configChecksum(policyText: string | undefined, workerDefaultsText: string | undefined): string {
  return createHash("sha256").update(`${policyText ?? ""}\n${workerDefaultsText ?? ""}`).digest("hex");
}

type DeploymentOptions = ManifestOptions & { namespace: string; image: string; passphraseSecret: string; backendUrl: string; fileBackend: boolean; replicas: number };

function operatorDeployment(o: DeploymentOptions): Json {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: NAME, namespace: o.namespace, labels: LABELS },
    spec: {
      // With an object-store backend a second replica stands by for fast failover (the Lease
      // keeps one active); a file backend on a ReadWriteOnce volume allows only one pod.
      replicas: o.replicas,
      selector: { matchLabels: { "app.kubernetes.io/name": NAME } },
      // A file backend lives on a ReadWriteOnce volume: never two pods on it at once.
      strategy: o.fileBackend ? { type: "Recreate" } : undefined,
      template: {
        // The operator reads its admin policy and worker defaults only at start: a change of
        // either changes this annotation, which rolls the Pods (`helm upgrade` and `kubectl apply` alike).
        metadata: { labels: LABELS, annotations: { [CONFIG_CHECKSUM_ANNOTATION]: configChecksum(o.policyText, o.workerDefaultsText) } },
        spec: {
          serviceAccountName: NAME,
          // The operator talks to the meta-cluster's API with this token; nothing else in the Pod.
          automountServiceAccountToken: true,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: o.terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_SECONDS,
          securityContext: RESTRICTED_POD_SECURITY_CONTEXT,
          containers: [
            {
              name: "operator",
              image: o.image,
              args: [
                "operator",
                `--backend-url=${o.backendUrl}`,
                `--state-dir=${OPERATOR_PATHS.data}`,
                "--metrics-addr=:8080",
                `--leader-election-namespace=${o.namespace}`,
                ...(o.policyText === undefined ? [] : [`--policy=${POLICY_CONFIGMAP.mountPath}/${POLICY_CONFIGMAP.key}`]),
                ...(o.workerDefaultsText === undefined ? [] : [`--worker-defaults=${WORKER_DEFAULTS_CONFIGMAP.mountPath}/${WORKER_DEFAULTS_CONFIGMAP.key}`]),
                ...(o.secretsProvider === undefined ? [] : [`--secrets-provider=${o.secretsProvider}`]),
                ...throughputArgs(o),
              ],
              env: [
                // The masters' NetworkPolicies admit the operator's namespace to the apiservers.
                { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
                ...(o.secretsProvider === undefined ? [{ name: "PULUMI_CONFIG_PASSPHRASE", valueFrom: { secretKeyRef: { name: o.passphraseSecret, key: "passphrase" } } }] : []),
                { name: "NODE_OPTIONS", value: `--max-old-space-size=${o.operatorHeapMb ?? DEFAULT_OPERATOR_HEAP_MB}` },
                { name: "HOME", value: OPERATOR_PATHS.home },
                { name: "PULUMI_HOME", value: `${OPERATOR_PATHS.home}/.pulumi` },
                { name: "TMPDIR", value: OPERATOR_PATHS.tmp },
                ...(o.objectStoreCredentialsSecret === undefined ? [] : objectStoreEnv(o.objectStoreCredentialsSecret)),
              ],
              ports: [{ name: "metrics", containerPort: 8080 }],
              livenessProbe: { httpGet: { path: "/healthz", port: "metrics" }, periodSeconds: 20 },
              readinessProbe: { httpGet: { path: "/readyz", port: "metrics" }, periodSeconds: 10 },
              resources: o.resources ?? DEFAULT_OPERATOR_RESOURCES,
              volumeMounts: [
                { name: "data", mountPath: OPERATOR_PATHS.data },
                { name: "home", mountPath: OPERATOR_PATHS.home },
                { name: "tmp", mountPath: OPERATOR_PATHS.tmp },
                ...(o.policyText === undefined ? [] : [{ name: "admin-policy", mountPath: POLICY_CONFIGMAP.mountPath, readOnly: true }]),
                ...(o.workerDefaultsText === undefined ? [] : [{ name: "worker-defaults", mountPath: WORKER_DEFAULTS_CONFIGMAP.mountPath, readOnly: true }]),
              ],
              securityContext: RESTRICTED_CONTAINER_SECURITY_CONTEXT,
            },
          ],
          volumes: [
            // With an object store the work directories are scratch: an emptyDir.
            o.fileBackend ? { name: "data", persistentVolumeClaim: { claimName: `${NAME}-state` } } : { name: "data", emptyDir: { sizeLimit: "10Gi" } },
            { name: "home", emptyDir: { sizeLimit: "1Gi" } },
            { name: "tmp", emptyDir: { sizeLimit: "1Gi" } },
            ...(o.policyText === undefined ? [] : [{ name: "admin-policy", configMap: { name: POLICY_CONFIGMAP.name } }]),
            ...(o.workerDefaultsText === undefined ? [] : [{ name: "worker-defaults", configMap: { name: WORKER_DEFAULTS_CONFIGMAP.name } }]),
          ],
        },
      },
    },
  };
}

/** The object store's credentials, from a Secret whose keys are the variables' names. */
export function objectStoreEnv(secret: string): Json[] {
  return ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].map((key) => ({ name: key, valueFrom: { secretKeyRef: { name: secret, key } } }));
}
