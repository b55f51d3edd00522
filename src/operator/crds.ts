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
} from "../api/v1alpha1";

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
  /** Extra schema properties merged in at a dotted path of the spec, e.g. CEL rules and patterns. */
  readonly specRules?: Record<string, Json>;
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
    const next = (node.properties as Record<string, Json> | undefined)?.[segment];
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

const immutable = (what: string) => ({ rule: "self == oldSelf", message: `${what} is immutable; create a new resource instead` });

/** The Cluster kind (DESIGN.md §3: short name kc; columns Mode, Version, Phase, Endpoint, Age). */
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
    mode: { "x-kubernetes-validations": [immutable("spec.mode")] },
    kubernetesVersion: { pattern: "^v(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$" },
    "etcd.version": { pattern: "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$" },
    "etcd.replicas": {
      maximum: 7,
      "x-kubernetes-validations": [
        { rule: "self % 2 == 1", message: "spec.etcd.replicas must be odd" },
        { rule: "self == oldSelf", message: "spec.etcd.replicas cannot change after creation (etcd membership changes are not automated)" },
      ],
    },
    "etcd.storage": {
      "x-kubernetes-validations": [
        { rule: "has(self.claimTemplate) != has(self.volumeSource)", message: "set exactly one of claimTemplate or volumeSource" },
        immutable("spec.etcd.storage"),
      ],
    },
    network: {
      "x-kubernetes-validations": [
        { rule: "!has(self.serviceCIDR) || isCIDR(self.serviceCIDR)", message: "spec.network.serviceCIDR must be a CIDR like 10.96.0.0/12" },
        { rule: "!has(self.podCIDR) || isCIDR(self.podCIDR)", message: "spec.network.podCIDR must be a CIDR like 10.244.0.0/16" },
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
};

/** The Machine kind (DESIGN.md §3: short name km; columns Cluster, IP, Phase, Kubelet, Age). */
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
  },
};

/** The ClusterPackageVersion kind (DESIGN.md §3: short name cpv). */
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
