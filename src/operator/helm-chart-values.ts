/**
 * The chart's values.yaml and values.schema.json (helm-chart.ts writes them), with the defaults of
 * installManifests, so `helm template` with no values gives what `kok manifests` gives. The schema
 * makes a bad value fail at `helm install`/`template`/`lint` with the field's path.
 */
import { stringify } from "yaml";
import {
  DEFAULT_OPERATOR_HEAP_MB,
  DEFAULT_OPERATOR_RESOURCES,
  DEFAULT_STATE_VOLUME_SIZE,
  DEFAULT_TERMINATION_GRACE_SECONDS,
  OPERATOR_IMAGE_REPOSITORY,
} from "./install-manifests";
import { OPERATOR_NAME } from "./rbac";

type Json = Record<string, unknown>;

const yamlBlock = (o: unknown, indent: string) =>
  stringify(o, { lineWidth: 0 })
    .replace(/\n$/, "")
    .split("\n")
    .map((l) => indent + l)
    .join("\n");

/** values.yaml: every value with its default and what it does (docs/helm.md has the whole story). */
export function chartValues(): string {
  return `
# The operator's namespace (restricted Pod Security level). With create: false it must exist,
# labelled as docs/security.md says; an empty name means the release's namespace.
namespace:
  name: kube-on-kube-system
  create: true

image:
  repository: ${OPERATOR_IMAGE_REPOSITORY}
  # Default: the chart's appVersion, the package version the chart was generated from.
  tag: ""

# Operator Pods. Default (null): 1 with the file backend (its volume is ReadWriteOnce), 2 with an
# object-store backendUrl (one leads through the Lease, the other stands by).
replicas: null

resources:
${yamlBlock(DEFAULT_OPERATOR_RESOURCES, "  ")}

# V8 heap cap of the operator process, MB (kok manifests --operator-heap-mb).
operatorHeapMb: ${DEFAULT_OPERATOR_HEAP_MB}
# Seconds between SIGTERM and SIGKILL: an update in flight may finish (docs/operator.md).
terminationGracePeriodSeconds: ${DEFAULT_TERMINATION_GRACE_SECONDS}

# kok operator --concurrency / --cluster-workers / --machine-workers. null: the operator's defaults
# (4 engine operations at once per kind; 4 x concurrency workers).
concurrency: null
clusterWorkers: null
machineWorkers: null

# The Pulumi state backend. Empty: file:// on a PersistentVolumeClaim (stateVolume). An object store:
# s3://bucket/prefix?region=...&endpoint=...&s3ForcePathStyle=true (docs/operations.md, State backends).
backendUrl: ""
stateVolume:
  size: ${DEFAULT_STATE_VOLUME_SIZE}

# The Secret holding the state passphrase (key: passphrase). create: true makes one with a random
# passphrase at install, kept on uninstall and reused on upgrade; false: bring your own.
passphraseSecret:
  name: ${OPERATOR_NAME}-state-passphrase
  create: true
# Or a KMS for the stacks' secrets (awskms://, gcpkms://, azurekeyvault://, hashivault://): then no
# passphrase is used at all.
secretsProvider: ""

objectStore:
  # A Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for an s3:// backendUrl. Empty: the
  # Pod's own identity (IRSA, workload identity).
  credentialsSecret: ""

# The admin policy's YAML text (kok operator --policy; docs/security.md). Empty: the built-in one.
adminPolicy: ""

# The worker defaults' YAML text (kok operator --worker-defaults; docs/operations.md): host settings
# for every Machine, e.g. serviceManager, kubelet.cgroupDriver, preflight.ignore. Empty: the
# operator's defaults (systemd hosts). E.g. --set-file workerDefaults=worker-defaults.yaml
workerDefaults: ""

# The Prometheus Operator's objects and the Grafana dashboard of docs/monitoring.
monitoring:
  serviceMonitor:
    enabled: false
    interval: 30s
    labels: {}
  prometheusRule:
    enabled: false
    labels: {}
  dashboard:
    enabled: false
    # Default: the operator's namespace. Grafana's sidecar must watch it.
    namespace: ""
    labels:
      grafana_dashboard: "1"
`.replace(/^\n/, "");
}

const str = { type: "string" };
const nullableCount = (minimum: number) => ({ type: ["integer", "null"], minimum });
const labels = { type: "object", additionalProperties: { type: "string" } };
const toggle = (extra: Json = {}) => ({ type: "object", additionalProperties: false, properties: { enabled: { type: "boolean" }, labels, ...extra } });

/** values.schema.json: types, bounds and no unknown keys, so a typo fails instead of being ignored. */
export function chartValuesSchema(): Json {
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    title: "kube-on-kube chart values",
    type: "object",
    additionalProperties: false,
    properties: {
      namespace: { type: "object", additionalProperties: false, properties: { name: str, create: { type: "boolean" } } },
      image: {
        type: "object",
        additionalProperties: false,
        required: ["repository"],
        properties: { repository: { type: "string", minLength: 1 }, tag: { type: "string", pattern: "^$|^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$|^sha256:[0-9a-f]{64}$" } },
      },
      replicas: nullableCount(1),
      resources: { type: "object" },
      operatorHeapMb: { type: "integer", minimum: 64 },
      terminationGracePeriodSeconds: { type: "integer", minimum: 30 },
      concurrency: nullableCount(1),
      clusterWorkers: nullableCount(1),
      machineWorkers: nullableCount(1),
      backendUrl: { type: "string", pattern: "^$|^(file|s3|gs|azblob|https?)://" },
      stateVolume: { type: "object", additionalProperties: false, properties: { size: { type: "string", pattern: "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$" } } },
      passphraseSecret: { type: "object", additionalProperties: false, properties: { name: { type: "string", minLength: 1 }, create: { type: "boolean" } } },
      secretsProvider: { type: "string", pattern: "^$|^(awskms|gcpkms|azurekeyvault|hashivault)://" },
      objectStore: { type: "object", additionalProperties: false, properties: { credentialsSecret: str } },
      adminPolicy: str,
      workerDefaults: str,
      monitoring: {
        type: "object",
        additionalProperties: false,
        properties: {
          serviceMonitor: toggle({ interval: { type: "string", pattern: "^[0-9]+(ms|s|m|h)$" } }),
          prometheusRule: toggle(),
          dashboard: toggle({ namespace: str }),
        },
      },
    },
  };
}
