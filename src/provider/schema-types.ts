/** The building blocks of the package schema (schema.ts): TypeBox schemas to Pulumi schema types. */
import { Kind, type TSchema } from "@sinclair/typebox";
import * as api from "../api/v1alpha1";

export type PropertySpec = Record<string, unknown>;
export interface ObjectTypeSpec {
  type: "object";
  description?: string;
  properties: Record<string, PropertySpec>;
  required?: string[];
}

export const PACKAGE = "kube-on-kube";
export const typeToken = (name: string) => `${PACKAGE}:index:${name}`;
export const ref = (name: string) => ({ $ref: `#/types/${typeToken(name)}` });
const pascal = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/**
 * Names of the API's exported object schemas, so a shared object becomes one type of its own name.
 * Keyed by the JSON text: Type.Optional wraps a copy, so the object in a property is not the export.
 */
const exportedNames = new Map<string, string>(
  Object.entries(api)
    .filter(([, v]) => typeof v === "object" && v !== null && (v as TSchema)[Kind] === "Object")
    .reverse() // the first export of a shape wins
    .map(([k, v]) => [JSON.stringify(v), k]),
);

function describe(schema: TSchema, extra?: string): string | undefined {
  const parts = [schema.description as string | undefined, schema.default !== undefined ? `Default: ${JSON.stringify(schema.default)}.` : undefined, extra];
  const text = parts.filter(Boolean).join(" ");
  return text || undefined;
}

/** Translates TypeBox schemas into schema types, collecting the object types it meets. */
export class TypeCollector {
  readonly types: Record<string, ObjectTypeSpec> = {};
  readonly unions: string[] = [];

  /** The property spec of `schema` at `path`; objects become named types (`nameHint` if unexported). */
  property(schema: TSchema, path: string, nameHint: string): PropertySpec {
    const description = describe(schema);
    const withDescription = (spec: PropertySpec) => (description ? { ...spec, description } : spec);
    if (schema.anyOf) {
      const members = schema.anyOf as TSchema[];
      if (members.length === 2 && members.map((m) => m[Kind]).sort().join("|") === "Integer|String") {
        // IntOrPercent: a string in the schema; the provider reads a whole number as the count.
        this.unions.push(`${path}: integer | string (a string; "2" is read as the count 2)`);
        return { type: "string", description: describe(schema, 'A count ("2") or a percentage ("10%").') };
      }
      const values = members.map((s) => s.const);
      if (!values.every((v) => typeof v === "string")) {
        throw new Error(`${path}: a union of other than string literals has no Pulumi schema type; flatten it in src/provider/schema-types.ts`);
      }
      this.unions.push(`${path}: ${values.map((v) => JSON.stringify(v)).join(" | ")}`);
      return { type: "string", description: describe(schema, `One of ${values.map((v) => JSON.stringify(v)).join(", ")}.`) };
    }
    switch (schema[Kind]) {
      case "String":
        return withDescription({ type: "string" });
      case "Integer":
        return withDescription({ type: "integer" });
      case "Number":
        return withDescription({ type: "number" });
      case "Boolean":
        return withDescription({ type: "boolean" });
      case "Literal": {
        // A string enum of one value (TypeBox collapses a one-member union to its literal).
        if (typeof schema.const !== "string") throw new Error(`${path}: a literal other than a string has no Pulumi schema type`);
        this.unions.push(`${path}: ${JSON.stringify(schema.const)}`);
        return { type: "string", description: describe(schema, `Only ${JSON.stringify(schema.const)}.`) };
      }
      case "Array": {
        // The engine drops the descriptions of array items: keep them on the property.
        const { description: itemDescription, ...items } = this.property(schema.items as TSchema, `${path}[]`, nameHint);
        const text = [description, itemDescription].filter(Boolean).join(" ");
        return { type: "array", items, ...(text ? { description: text } : {}) };
      }
      case "Record": {
        const [valueSchema] = Object.values(schema.patternProperties as Record<string, TSchema>);
        return withDescription({ type: "object", additionalProperties: this.property(valueSchema, `${path}{}`, nameHint) });
      }
      case "Object": {
        const name = exportedNames.get(JSON.stringify(schema)) ?? nameHint;
        this.object(name, schema, path);
        return withDescription(ref(name));
      }
      default:
        throw new Error(`${path}: TypeBox kind ${String(schema[Kind])} has no Pulumi schema mapping in src/provider/schema.ts`);
    }
  }

  object(name: string, schema: TSchema, path: string): void {
    if (this.types[typeToken(name)]) return;
    const spec: ObjectTypeSpec = { type: "object", properties: {} };
    this.types[typeToken(name)] = spec; // before the properties: a cycle would end here
    if (schema.description) spec.description = schema.description as string;
    for (const [key, child] of Object.entries(schema.properties as Record<string, TSchema>)) {
      spec.properties[key] = this.property(child, `${path}.${key}`, `${name}${pascal(key)}`);
    }
    if (schema.required?.length) spec.required = [...(schema.required as string[])];
  }
}

export const str = (description: string) => ({ type: "string", description });
export const secretStr = (description: string) => ({ type: "string", secret: true, description });

