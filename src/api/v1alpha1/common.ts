/**
 * Schemas shared by the three kinds of the `kubeonkube.io/v1alpha1` API.
 *
 * Every type here is declared once, as a TypeBox schema: the TypeScript type is derived with
 * `Static<>` and the OpenAPI v3 schema of the CRDs is generated from the same object, so the two
 * can never drift apart.
 */
import { Type, type Static, type TLiteral, type TUnion } from "@sinclair/typebox";
import { QUANTITY_PATTERN } from "./patterns";

export const API_GROUP = "kubeonkube.io";
export const API_VERSION = "v1alpha1";
export const API_GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

/** A closed set of strings; rendered as `enum` in the CRD schema. */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: { description?: string; default?: T[number] } = {},
): TUnion<TLiteral<T[number]>[]> {
  return Type.Union(values.map((v) => Type.Literal(v as T[number])), options);
}

export const StringMap = (description: string) =>
  Type.Record(Type.String(), Type.String(), { description });

export const LocalObjectReference = Type.Object(
  { name: Type.String({ minLength: 1, description: "Name of the object in the same namespace." }) },
  { additionalProperties: false },
);
export type LocalObjectReference = Static<typeof LocalObjectReference>;

/** The core/v1 Toleration, as a master workload in the meta-cluster understands it. */
export const Toleration = Type.Object(
  {
    key: Type.Optional(Type.String()),
    operator: Type.Optional(StringEnum(["Exists", "Equal"] as const)),
    value: Type.Optional(Type.String()),
    effect: Type.Optional(StringEnum(["NoSchedule", "PreferNoSchedule", "NoExecute"] as const)),
    tolerationSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })),
  },
  { additionalProperties: false },
);
export type Toleration = Static<typeof Toleration>;

/** The core/v1 Taint of a worker Node. */
export const Taint = Type.Object(
  {
    key: Type.String({ minLength: 1 }),
    value: Type.Optional(Type.String()),
    effect: StringEnum(["NoSchedule", "PreferNoSchedule", "NoExecute"] as const),
  },
  { additionalProperties: false },
);
export type Taint = Static<typeof Taint>;

const QuantityMap = (description: string) =>
  Type.Record(Type.String(), Type.String({ pattern: QUANTITY_PATTERN, maxLength: 64 }), { maxProperties: 8, description });

/** Requests and limits of a container, as Kubernetes quantities ("250m", "512Mi"). */
export const ResourceRequirements = Type.Object(
  {
    requests: Type.Optional(QuantityMap("Minimum resources, e.g. { cpu: 250m, memory: 512Mi }; within the admin policy's caps.")),
    limits: Type.Optional(QuantityMap("Maximum resources, e.g. { memory: 1Gi }; within the admin policy's caps.")),
  },
  { additionalProperties: false },
);
export type ResourceRequirements = Static<typeof ResourceRequirements>;

/** A status condition, shaped like metav1.Condition. */
export const Condition = Type.Object(
  {
    type: Type.String(),
    status: StringEnum(["True", "False", "Unknown"] as const),
    reason: Type.String(),
    message: Type.String(),
    observedGeneration: Type.Optional(Type.Integer()),
    lastTransitionTime: Type.String({ format: "date-time" }),
  },
  { additionalProperties: false },
);
export type Condition = Static<typeof Condition>;

/** What the operator did last to an object's Pulumi stack. */
export const LastOperation = Type.Object(
  {
    kind: StringEnum(["up", "preview", "refresh", "destroy"] as const),
    result: StringEnum(["running", "succeeded", "failed"] as const),
    startedAt: Type.String({ format: "date-time" }),
    finishedAt: Type.Optional(Type.String({ format: "date-time" })),
    message: Type.Optional(Type.String()),
    changes: Type.Optional(
      Type.Record(Type.String(), Type.Integer(), {
        description: "Resource operation counts of the update, e.g. { create: 3, update: 1 }.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type LastOperation = Static<typeof LastOperation>;
