/**
 * CustomResourceDefinitions generated from the v1alpha1 schemas: the TypeBox schema is turned
 * into a structural OpenAPI v3 schema (enums, maps, preserved unknown fields), and the rules the
 * apiserver itself must enforce are added as CEL `x-kubernetes-validations`, so `kubectl apply`
 * of a bad object is refused with a message before the operator ever sees it.
 */
import type { TSchema } from "@sinclair/typebox";
import {
  API_GROUP,
  API_VERSION,
  ClusterPackageVersionSpec,
  ClusterPackageVersionStatus,
  ClusterSpec,
  ClusterStatus,
  MachineSpec,
  MachineStatus,
  MAX_CLUSTER_NAME_LENGTH,
  MAX_KUBE_PROXY_SKEW,
  MAX_MACHINE_NAME_LENGTH,
  MAX_STACK_NAME_LENGTH,
  SUPPORTED_KUBERNETES_MINORS,
} from "./";

type Json = Record<string, unknown>;

export interface PrinterColumn {
  readonly name: string;
  readonly type: "string" | "integer" | "date" | "boolean";
  readonly jsonPath: string;
  readonly priority?: number;
  readonly description?: string;
}

export interface KindDefinition {
  readonly kind: string;
  readonly plural: string;
  readonly shortNames: string[];
  readonly spec: TSchema;
  readonly status: TSchema;
  readonly columns: PrinterColumn[];
  /**
   * Extra schema properties merged in at a dotted path of the spec, e.g. CEL rules and patterns;
   * a `[]` segment steps into an array's items (`kubeconfigs.[].groups`).
   */
  readonly specRules?: Record<string, Json>;
  /** CEL rules on the whole object (the only place `metadata.name` is visible to a rule). */
  readonly objectRules?: Json[];
}

/** TypeBox JSON Schema → structural OpenAPI v3 schema accepted by the apiserver. */
export function toStructural(schema: unknown): Json {
  const s = JSON.parse(JSON.stringify(schema)) as Json;
  return convert(s);
}

function convert(s: Json): Json {
  const out: Json = {};
  const anyOf = s.anyOf as Json[] | undefined;
  if (anyOf && anyOf.every((b) => "const" in b)) {
    out.type = "string";
    out.enum = anyOf.map((b) => b.const);
  } else if (anyOf && anyOf.length === 2 && anyOf.some((b) => b.type === "integer") && anyOf.some((b) => b.type === "string")) {
    // IntOrPercent (maxUnavailable: 2 or "10%"), as core Kubernetes types declare it.
    out["x-kubernetes-int-or-string"] = true;
  } else if (s.patternProperties) {
    const value = Object.values(s.patternProperties as Record<string, Json>)[0] ?? {};
    out.type = "object";
    if (s.maxProperties !== undefined) out.maxProperties = s.maxProperties;
    if (value.type === undefined && value.anyOf === undefined) {
      // Record<string, unknown> (a core VolumeSource): the apiserver keeps it as written.
      out["x-kubernetes-preserve-unknown-fields"] = true;
    } else {
      out.additionalProperties = convert(value);
    }
  } else {
    for (const key of ["type", "format", "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems"]) {
      if (s[key] !== undefined) out[key] = s[key];
    }
    if (s.properties) {
      out.properties = Object.fromEntries(Object.entries(s.properties as Record<string, Json>).map(([k, v]) => [k, convert(v)]));
    }
    if (Array.isArray(s.required) && s.required.length) out.required = s.required;
    if (s.items) out.items = convert(s.items as Json);
  }
  if (s.description) out.description = s.description;
  if (s.default !== undefined) out.default = s.default;
  return out;
}

/** Merges `extra` into the schema node at a dotted path (`etcd.storage`), creating nothing. */
function mergeAt(root: Json, path: string, extra: Json): void {
  let node = root;
  for (const segment of path.split(".").filter(Boolean)) {
    const next = segment === "[]" ? (node.items as Json | undefined) : (node.properties as Record<string, Json> | undefined)?.[segment];
    if (!next) throw new Error(`CRD rule path ${path}: no field ${segment}`);
    node = next as Json;
  }
  for (const [key, value] of Object.entries(extra)) {
    node[key] = key === "x-kubernetes-validations" ? [...((node[key] as unknown[]) ?? []), ...(value as unknown[])] : value;
  }
}

export function customResourceDefinition(def: KindDefinition): Json {
  const spec = toStructural(def.spec);
  for (const [path, extra] of Object.entries(def.specRules ?? {})) mergeAt(spec, path, extra);
  const plural = def.plural;
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.${API_GROUP}`, labels: { "app.kubernetes.io/part-of": "kube-on-kube" } },
    spec: {
      group: API_GROUP,
      scope: "Namespaced",
      names: { kind: def.kind, listKind: `${def.kind}List`, plural, singular: def.kind.toLowerCase(), shortNames: def.shortNames, categories: ["kok"] },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [...def.columns, { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }],
          schema: {
            openAPIV3Schema: {
              type: "object",
              required: ["spec"],
              ...(def.objectRules?.length ? { "x-kubernetes-validations": def.objectRules } : {}),
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec,
                status: toStructural(def.status),
              },
            },
          },
        },
      ],
    },
  };
}

/** The major and minor of a `vX.Y.Z` string field, as CEL ints. */
const major = (field: string) => `int(${field}.split('.')[0].substring(1))`;
const minor = (field: string) => `int(${field}.split('.')[1])`;

const immutable = (what: string) => ({ rule: "self == oldSelf", message: `${what} is immutable; create a new resource instead` });

/** Flag names only: no leading dashes, no `=`, nothing a shell or the argument list would split. */
const flagNames = (component: string) => ({
  "x-kubernetes-validations": [
    { rule: "self.all(k, k.matches('^[a-z0-9][a-z0-9-]*$') && size(k) <= 128)", message: `spec.${component}.extraArgs keys are flag names without leading dashes` },
  ],
});

/** The Cluster kind (short name kc; columns Mode, Version, Phase, Endpoint, Age). */
export const CLUSTER_KIND: KindDefinition = {
  kind: "Cluster",
  plural: "clusters",
  shortNames: ["kc"],
  spec: ClusterSpec,
  status: ClusterStatus,
  columns: [
    { name: "Mode", type: "string", jsonPath: ".spec.mode" },
    { name: "Version", type: "string", jsonPath: ".status.version" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Endpoint", type: "string", jsonPath: ".status.endpoint" },
  ],
  specRules: {
    // Cross-field: kube-proxy's minor against the masters' (the skew policy, versions.ts). Both
    // fields already match `^v\d+\.\d+\.\d+`, so the splits are safe.
    "": {
      "x-kubernetes-validations": [
        {
          rule: `!has(self.addons) || !has(self.addons.kubeProxy) || !has(self.addons.kubeProxy.version) || (${minor("self.addons.kubeProxy.version")} <= ${minor("self.kubernetesVersion")} && ${minor("self.addons.kubeProxy.version")} + ${MAX_KUBE_PROXY_SKEW} >= ${minor("self.kubernetesVersion")} && ${major("self.addons.kubeProxy.version")} == ${major("self.kubernetesVersion")})`,
          message: `spec.addons.kubeProxy.version must be the masters' minor or up to ${MAX_KUBE_PROXY_SKEW} older, never newer (version skew policy)`,
        },
      ],
    },
    mode: { "x-kubernetes-validations": [immutable("spec.mode")] },
    kubernetesVersion: {
      "x-kubernetes-validations": [
        {
          rule: `int(self.split('.')[0].substring(1)) == ${SUPPORTED_KUBERNETES_MINORS.major} && int(self.split('.')[1]) >= ${SUPPORTED_KUBERNETES_MINORS.min} && int(self.split('.')[1]) <= ${SUPPORTED_KUBERNETES_MINORS.max}`,
          message: `spec.kubernetesVersion must be v${SUPPORTED_KUBERNETES_MINORS.major}.${SUPPORTED_KUBERNETES_MINORS.min} to v${SUPPORTED_KUBERNETES_MINORS.major}.${SUPPORTED_KUBERNETES_MINORS.max}`,
        },
      ],
    },
    "etcd.replicas": {
      maximum: 7,
      "x-kubernetes-validations": [
        { rule: "self % 2 == 1", message: "spec.etcd.replicas must be odd" },
      ],
    },
    // A restore is a way to create a Cluster: adding one to a running cluster, or changing or
    // dropping it, would make any member whose volume is later lost start from the snapshot.
    etcd: {
      "x-kubernetes-validations": [
        { rule: "has(self.restore) == has(oldSelf.restore)", message: "spec.etcd.restore is set only when the Cluster is created" },
        { rule: "!has(self.restore) || has(self.backup)", message: "spec.etcd.restore needs spec.etcd.backup.store: the snapshot is read from that store" },
      ],
    },
    "etcd.restore": { "x-kubernetes-validations": [immutable("spec.etcd.restore")] },
    "etcd.storage": {
      "x-kubernetes-validations": [
        { rule: "has(self.claimTemplate) != has(self.volumeSource)", message: "set exactly one of claimTemplate or volumeSource" },
        immutable("spec.etcd.storage"),
      ],
    },
    "etcd.storage.volumeSource": {
      "x-kubernetes-validations": [{ rule: "has(self.emptyDir) != has(self.hostPath)", message: "spec.etcd.storage.volumeSource must name exactly one of emptyDir or hostPath" }],
    },
    "etcd.storage.volumeSource.hostPath.path": {
      "x-kubernetes-validations": [
        {
          rule: "self == '/' || (!self.endsWith('/') && !self.contains('//') && !self.contains('/./') && !self.endsWith('/.') && !self.contains('/../') && !self.endsWith('/..'))",
          message: "spec.etcd.storage.volumeSource.hostPath.path must be an absolute path without '.' or '..' segments",
        },
      ],
    },
    "etcd.extraArgs": flagNames("etcd"),
    "apiServer.extraArgs": flagNames("apiServer"),
    "controllerManager.extraArgs": flagNames("controllerManager"),
    "scheduler.extraArgs": flagNames("scheduler"),
    "apiServer.advertiseAddress": { "x-kubernetes-validations": [{ rule: "isIP(self)", message: "spec.apiServer.advertiseAddress must be an IP address" }] },
    "kubeconfigs.[].user": {
      "x-kubernetes-validations": [{ rule: "!self.startsWith('system:')", message: "spec.kubeconfigs[].user must not be a system: user" }],
    },
    "kubeconfigs.[].groups": {
      "x-kubernetes-validations": [{ rule: "self.all(g, !g.startsWith('system:'))", message: "spec.kubeconfigs[].groups must not name a system: group (system:masters bypasses RBAC)" }],
    },
    network: {
      "x-kubernetes-validations": [
        { rule: "!has(self.serviceCIDR) || isCIDR(self.serviceCIDR)", message: "spec.network.serviceCIDR must be a CIDR like 10.96.0.0/12" },
        { rule: "!has(self.podCIDR) || isCIDR(self.podCIDR)", message: "spec.network.podCIDR must be a CIDR like 10.244.0.0/16" },
        {
          rule: "!has(self.serviceCIDR) || !isCIDR(self.serviceCIDR) || cidr(self.serviceCIDR).prefixLength() <= (cidr(self.serviceCIDR).ip().family() == 4 ? 28 : 124)",
          message: "spec.network.serviceCIDR must be a /28 (IPv6: /124) or larger: the cluster DNS Service takes its 10th address",
        },
        immutable("spec.network"),
      ],
    },
    certificates: {
      "x-kubernetes-validations": [
        {
          rule: "(has(self.renewBeforeDays) ? self.renewBeforeDays : 30) < (has(self.validityDays) ? self.validityDays : 365)",
          message: "spec.certificates.renewBeforeDays must be shorter than validityDays",
        },
      ],
    },
    kubeconfigs: { maxItems: 100, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] },
  },
  objectRules: [
    {
      rule: `self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= ${MAX_CLUSTER_NAME_LENGTH}`,
      message: `metadata.name of a Cluster must be a lowercase DNS label of at most ${MAX_CLUSTER_NAME_LENGTH} characters, starting with a letter (its masters' objects are named after it)`,
    },
  ],
};

/** The Machine kind (short name km; columns Cluster, IP, Phase, Kubelet, Age). */
export const MACHINE_KIND: KindDefinition = {
  kind: "Machine",
  plural: "machines",
  shortNames: ["km"],
  spec: MachineSpec,
  status: MachineStatus,
  columns: [
    { name: "Cluster", type: "string", jsonPath: ".spec.clusterRef.name" },
    { name: "IP", type: "string", jsonPath: ".spec.ip" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Kubelet", type: "string", jsonPath: ".status.observedVersions.kubelet" },
  ],
  specRules: {
    "": {
      "x-kubernetes-validations": [
        { rule: "has(self.packageVersionRef) != has(self.packages)", message: "set exactly one of packageVersionRef or packages" },
      ],
    },
    clusterRef: { "x-kubernetes-validations": [immutable("spec.clusterRef")] },
    // Loopback stays possible here: whether the operator may reach 127.0.0.0/8 is the admin
    // policy's call (the dev hosts live there). The rest never names one worker host.
    ip: {
      "x-kubernetes-validations": [
        {
          rule: "isIP(self) && (ip(self).isGlobalUnicast() || ip(self).isLoopback())",
          message: "spec.ip must be a unicast IP address (not unspecified, link-local such as 169.254.169.254, multicast or broadcast)",
        },
      ],
    },
  },
  objectRules: [
    {
      rule: `size(self.metadata.name) <= ${MAX_MACHINE_NAME_LENGTH}`,
      message: `metadata.name of a Machine must be at most ${MAX_MACHINE_NAME_LENGTH} characters (its stack is <namespace>.<name>, at most ${MAX_STACK_NAME_LENGTH})`,
    },
  ],
};

/** The ClusterPackageVersion kind (short name cpv). */
export const PACKAGE_VERSION_KIND: KindDefinition = {
  kind: "ClusterPackageVersion",
  plural: "clusterpackageversions",
  shortNames: ["cpv"],
  spec: ClusterPackageVersionSpec,
  status: ClusterPackageVersionStatus,
  columns: [
    { name: "Cluster", type: "string", jsonPath: ".spec.clusterRef.name" },
    { name: "Kubelet", type: "string", jsonPath: ".spec.packages.kubelet.version" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Updated", type: "integer", jsonPath: ".status.updated" },
    { name: "Total", type: "integer", jsonPath: ".status.total" },
  ],
  specRules: { clusterRef: { "x-kubernetes-validations": [immutable("spec.clusterRef")] } },
};

/** Every CRD of the operator, in install order. */
export function allCustomResourceDefinitions(): Json[] {
  return [CLUSTER_KIND, MACHINE_KIND, PACKAGE_VERSION_KIND].map(customResourceDefinition);
}
