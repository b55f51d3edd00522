/**
 * Shared machinery for "validate first, fail once": every check appends a `Problem` naming the
 * field path, and callers throw one `SpecValidationError` that lists them all.
 */
import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { isIP } from "./cidr";
import { QUANTITY_PATTERN } from "./patterns";

export interface Problem {
  /** Field path in dotted form, e.g. `spec.etcd.replicas` or `spec.kubeconfigs[1].name`. */
  readonly path: string;
  readonly message: string;
}

export const formatProblem = (p: Problem): string => `${p.path}: ${p.message}`;

/** One error for all the problems of an object; `subject` names it (a stack, a resource, a host). */
export class SpecValidationError extends Error {
  constructor(
    readonly subject: string,
    readonly problems: readonly Problem[],
  ) {
    super(
      `${subject} is invalid (${problems.length} problem${problems.length === 1 ? "" : "s"}); nothing was changed:\n` +
        problems.map((p) => `  - ${formatProblem(p)}`).join("\n"),
    );
    this.name = "SpecValidationError";
  }
}

/** Turns a TypeBox JSON pointer (`/etcd/storage/0`) into a dotted field path (`spec.etcd.storage[0]`). */
export function pointerToPath(prefix: string, pointer: string): string {
  if (!pointer) return prefix;
  return pointer
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((path, segment) => (/^\d+$/.test(segment) ? `${path}[${segment}]` : `${path}.${segment}`), prefix);
}

/**
 * Structural problems (unknown fields, wrong types, values outside an enum) reported by the schema.
 * Only the most specific error per path is kept: a union mismatch also reports each branch.
 */
export function schemaProblems(schema: TSchema, value: unknown, prefix: string): Problem[] {
  const byPath = new Map<string, string>();
  for (const error of Value.Errors(schema, value)) {
    const path = pointerToPath(prefix, error.path);
    if (byPath.has(path)) continue;
    const allowed = enumValues(error.schema);
    const pattern = (error.schema as { pattern?: string }).pattern;
    const message = allowed
      ? `must be one of ${allowed.join(", ")} (got ${JSON.stringify(error.value)})`
      : error.message === "Unexpected property"
        ? "unknown field (check its spelling and nesting)"
        : pattern && typeof error.value === "string" && error.message.includes("match")
          ? `${quoteShort(error.value)} does not match ${pattern}`
          : `${error.message.charAt(0).toLowerCase()}${error.message.slice(1)}`;
    byPath.set(path, message);
  }
  return [...byPath].map(([path, message]) => {
    const problem = { path, message };
    SCHEMA_PROBLEMS.add(problem);
    return problem;
  });
}

/** A value in a message: quoted, newlines shown as \n, long ones cut (a pasted key is kilobytes). */
export function quoteShort(value: string, max = 80): string {
  const text = JSON.stringify(value);
  return text.length <= max ? text : `${text.slice(0, max - 4)}..."`;
}

const SCHEMA_PROBLEMS = new WeakSet<Problem>();

/**
 * Drops a schema problem (a pattern or length the CRD also checks) where a semantic check said
 * more about the same field: one clear message per field, and every field still named.
 */
export function preferSemantic(problems: readonly Problem[]): Problem[] {
  const semanticPaths = new Set(problems.filter((p) => !SCHEMA_PROBLEMS.has(p)).map((p) => p.path));
  return problems.filter((p) => !SCHEMA_PROBLEMS.has(p) || !semanticPaths.has(p.path));
}

function enumValues(schema: TSchema): string[] | undefined {
  const anyOf = (schema as { anyOf?: TSchema[] }).anyOf;
  if (!anyOf || !anyOf.every((s) => "const" in s)) return undefined;
  return anyOf.map((s) => String((s as unknown as { const: unknown }).const));
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export function isDns1123Label(text: string): boolean {
  return text.length <= 63 && DNS1123_LABEL.test(text);
}

export function isDns1035Label(text: string, maxLength = 63): boolean {
  return text.length <= maxLength && DNS1035_LABEL.test(text);
}

export function isDns1123Subdomain(text: string): boolean {
  return text.length <= 253 && text.split(".").every((label) => DNS1123_LABEL.test(label));
}

/** A host name for a certificate: a DNS name (lowercase, optional leading `*.`) or an IP. */
export function isCertificateHost(text: string): boolean {
  if (isIP(text)) return true;
  const name = text.startsWith("*.") ? text.slice(2) : text;
  return isDns1123Subdomain(name);
}

const QUANTITY = new RegExp(QUANTITY_PATTERN);
export const isQuantity = (text: string): boolean => QUANTITY.test(text);

const LABEL_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** Problems of a label map (keys as qualified names, values of at most 63 characters). */
export function labelProblems(labels: Record<string, string> | undefined, path: string): Problem[] {
  const problems: Problem[] = [];
  for (const [key, value] of Object.entries(labels ?? {})) {
    if (!LABEL_NAME.test(key) || key.length > 317) {
      problems.push({ path: `${path}["${key}"]`, message: "is not a valid label key" });
    }
    if (typeof value === "string" && !LABEL_VALUE.test(value)) {
      problems.push({ path: `${path}["${key}"]`, message: `value "${value}" is not a valid label value` });
    }
  }
  return problems;
}
