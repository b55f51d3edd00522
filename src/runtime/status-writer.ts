/**
 * Writes `.status` of our custom resources through the status subresource, with optimistic
 * concurrency: the PUT carries the resourceVersion we read, and a 409 Conflict (someone edited
 * the object, or another status write landed) means re-read and recompute, never overwrite what
 * we did not see. The caller gives a function from the *current* object to
 * its new status, so each retry recomputes from fresh data.
 *
 * Every string in the status passes through `redact`: conditions and `lastOperation` carry
 * engine and SSH error messages, which can echo secrets.
 */
import type { CustomObjectsApi, KubernetesObject } from "@kubernetes/client-node";
import { isConflict, isNotFound } from "./api-errors";
import { splitKey } from "./keys";
import { redactDeep } from "./redact";

export type StatusApi = Pick<
  CustomObjectsApi,
  "getNamespacedCustomObject" | "replaceNamespacedCustomObjectStatus" | "getClusterCustomObject" | "replaceClusterCustomObjectStatus"
>;

export interface StatusWriterOptions {
  readonly api: StatusApi;
  /** e.g. "kubeonkube.io" */
  readonly group: string;
  /** e.g. "v1alpha1" */
  readonly version: string;
  /** e.g. "clusters" */
  readonly plural: string;
  /** Values that must never appear in the status of an object of `namespace` (passphrases, tokens). */
  readonly secrets?: (namespace?: string) => readonly string[];
  /** Attempts before giving up on repeated conflicts. Default 5. */
  readonly maxAttempts?: number;
  /** Told about each conflict (logs, tests). */
  readonly onConflict?: (key: string, attempt: number) => void;
}

export type WithStatus<S> = KubernetesObject & { status?: S };

export class StatusConflictError extends Error {
  constructor(key: string, attempts: number) {
    super(`status of ${key}: still conflicting after ${attempts} attempts; the object is being changed concurrently, will retry`);
    this.name = "StatusConflictError";
  }
}

export class StatusWriter<S, T extends WithStatus<S> = WithStatus<S>> {
  private readonly options: StatusWriterOptions;

  constructor(options: StatusWriterOptions) {
    this.options = options;
  }

  /**
   * Sets the status of `key` to `compute(current object)`. `compute` returning undefined, or a
   * status equal to the current one, writes nothing (no resourceVersion churn, no watch event
   * that would wake our own controller). Resolves the object as written, or undefined when it no
   * longer exists. Throws StatusConflictError after `maxAttempts` conflicts.
   */
  async update(key: string, compute: (current: T) => S | undefined): Promise<T | undefined> {
    const maxAttempts = this.options.maxAttempts ?? 5;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const current = await this.read(key);
      if (!current) return undefined;
      const computed = compute(current);
      if (computed === undefined) return current;
      const status = redactDeep(computed, this.options.secrets?.(splitKey(key).namespace || undefined) ?? []);
      if (stableJson(status) === stableJson(current.status)) return current;
      try {
        return await this.replace(key, { ...current, status });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        if (!isConflict(err)) throw err;
        this.options.onConflict?.(key, attempt);
      }
    }
    throw new StatusConflictError(key, maxAttempts);
  }

  private async read(key: string): Promise<T | undefined> {
    const { api, group, version, plural } = this.options;
    const { namespace, name } = splitKey(key);
    try {
      const obj: unknown = namespace
        ? await api.getNamespacedCustomObject({ group, version, plural, namespace, name })
        : await api.getClusterCustomObject({ group, version, plural, name });
      return obj as T;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async replace(key: string, body: T): Promise<T> {
    const { api, group, version, plural } = this.options;
    const { namespace, name } = splitKey(key);
    const written: unknown = namespace
      ? await api.replaceNamespacedCustomObjectStatus({ group, version, plural, namespace, name, body })
      : await api.replaceClusterCustomObjectStatus({ group, version, plural, name, body });
    return written as T;
  }
}

/** JSON with sorted keys, so key order does not make equal statuses look different. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
}
