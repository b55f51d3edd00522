/**
 * Renders the API reference (docs/api.md) from the same schemas that type the components and
 * generate the CRDs, so the documented fields, types and defaults cannot drift from the code.
 */
import type { TSchema } from "@sinclair/typebox";

interface Row {
  readonly path: string;
  readonly type: string;
  readonly required: boolean;
  readonly defaultValue?: unknown;
  readonly description: string;
}

type Schema = TSchema & {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  patternProperties?: Record<string, Schema>;
  const?: unknown;
  description?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
};

function typeName(schema: Schema): string {
  if (schema.anyOf?.every((s) => s.const !== undefined)) return schema.anyOf.map((s) => `\`${String(s.const)}\``).join(" \\| ");
  if (schema.anyOf) return schema.anyOf.map((s) => typeName(s)).join(" \\| ");
  if (schema.type === "array") return `${typeName(schema.items ?? ({} as Schema))}[]`;
  if (schema.patternProperties) {
    const value = Object.values(schema.patternProperties)[0];
    return `map[string]${value?.type ?? "any"}`;
  }
  const bounds = [schema.minimum !== undefined ? `≥ ${schema.minimum}` : "", schema.maximum !== undefined ? `≤ ${schema.maximum}` : ""].filter(Boolean).join(", ");
  return `${schema.type ?? "any"}${bounds ? ` (${bounds})` : ""}`;
}

function collect(schema: Schema, path: string, required: boolean, rows: Row[]): void {
  rows.push({ path, type: typeName(schema), required, defaultValue: schema.default, description: schema.description ?? "" });
  const object = schema.type === "array" ? schema.items : schema;
  if (!object?.properties) return;
  const childPath = schema.type === "array" ? `${path}[]` : path;
  for (const [key, child] of Object.entries(object.properties)) {
    collect(child, `${childPath}.${key}`, object.required?.includes(key) ?? false, rows);
  }
}

const escape = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** A Markdown table of every field under `root` (e.g. `spec`). */
export function referenceTable(schema: TSchema, root: string): string {
  const rows: Row[] = [];
  collect(schema as Schema, root, true, rows);
  const lines = ["| field | type | required | default | description |", "|---|---|---|---|---|"];
  for (const row of rows.slice(1)) {
    const def = row.defaultValue === undefined ? "" : `\`${JSON.stringify(row.defaultValue)}\``;
    lines.push(`| \`${row.path}\` | ${row.type} | ${row.required ? "yes" : ""} | ${def} | ${escape(row.description)} |`);
  }
  return lines.join("\n");
}
