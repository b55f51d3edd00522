/**
 * The secret values the operator has handled, for `redact` (redact.ts): its passphrase and other
 * credentials from its environment, and every value of every Secret it read (SSH keys and
 * passwords, cluster CA keys, kubeconfigs and the credentials inside them).
 *
 * Values are kept per scope, because tenants choose some of them: a tenant whose SSH password is
 * "Provisioning" must not be able to blank that word out of other tenants' Events and status (or
 * make their status invalid). A value read from a tenant's namespace is redacted from what is
 * written about objects of that namespace (and from the operator's logs); platform values (the
 * passphrase, Secrets the operator's stacks wrote in masters' namespaces) from everything.
 */
import * as fs from "node:fs";
import YAML from "yaml";
import { MIN_SECRET_LENGTH } from "./redact";

/** The scope of values the platform owns: redacted everywhere. */
export const PLATFORM_SCOPE = "";

/**
 * Most values remembered per scope; beyond it the least recently added or re-read go (a value
 * still in use is read again at the next reconcile and comes back). A namespace holds a handful
 * of credentials; the platform scope one CA key and kubeconfig per Cluster.
 */
const MAX_VALUES_PER_SCOPE = 4096;

/**
 * Names of environment variables that hold credentials (AWS_SECRET_ACCESS_KEY, PULUMI_ACCESS_TOKEN,
 * and the state backends' AZURE_STORAGE_KEY and GOOGLE_CREDENTIALS: state-backend.ts).
 */
const SECRET_VARIABLE = /(SECRET|TOKEN|PASSWORD|PASSPHRASE|PRIVATE_KEY|ACCESS_KEY|STORAGE_KEY|ACCOUNT_KEY|^GOOGLE_CREDENTIALS$)/;

export class KnownSecrets {
  private readonly scopes = new Map<string, Set<string>>();
  /** Arrays handed out until something changes: redact compiles each array once. */
  private readonly snapshots = new Map<string | undefined, readonly string[]>();

  /** Remembers `values` (undefined and too-short ones are skipped) under `scope`. */
  add(scope: string, values: Iterable<string | undefined>): void {
    let set = this.scopes.get(scope);
    for (const value of values) {
      if (value === undefined || value.length < MIN_SECRET_LENGTH) continue;
      set ??= this.scopes.set(scope, new Set()).get(scope)!;
      if (set.delete(value)) {
        set.add(value);
        continue;
      }
      set.add(value);
      if (set.size > MAX_VALUES_PER_SCOPE) set.delete(set.values().next().value!);
      this.snapshots.clear();
    }
  }

  /**
   * The values to keep out of what is written about an object of `namespace`: the platform's and
   * that namespace's. Without a namespace (log lines), every value known.
   */
  for(namespace?: string): readonly string[] {
    const cached = this.snapshots.get(namespace);
    if (cached) return cached;
    const scopes = namespace === undefined ? [...this.scopes.values()] : [this.scopes.get(PLATFORM_SCOPE), this.scopes.get(namespace)];
    const values = Object.freeze([...new Set(scopes.flatMap((s) => [...(s ?? [])]))]);
    this.snapshots.set(namespace, values);
    return values;
  }
}

/**
 * The values of a Secret worth redacting: each value, and when a value is a kubeconfig, the
 * credentials inside it (a token, a password, the client key in plain and decoded form) so that
 * one of them printed alone is caught too.
 */
export function secretValuesOf(data: Record<string, string>): string[] {
  const values: string[] = [];
  for (const value of Object.values(data)) {
    values.push(value);
    if (!/\busers:/.test(value)) continue;
    let config: { users?: { user?: Record<string, unknown> }[] } | undefined;
    try {
      config = YAML.parse(value) as typeof config;
    } catch {
      continue;
    }
    for (const { user } of Array.isArray(config?.users) ? config.users : []) {
      for (const field of ["token", "password", "client-key-data"]) {
        const v = user?.[field];
        if (typeof v !== "string") continue;
        values.push(v);
        if (field === "client-key-data") values.push(Buffer.from(v, "base64").toString("utf8"));
      }
    }
  }
  return values;
}

/**
 * Values of the environment's credential variables (the passphrase, cloud and backend tokens).
 * A `…_FILE` variable (`PULUMI_CONFIG_PASSPHRASE_FILE`) names a file whose content is the secret:
 * that content is a value too, as the engine reads it (trimmed of its final newline) and whole.
 */
export function secretValuesOfEnvironment(env: Record<string, string | undefined>, readFile: (path: string) => string = (p) => fs.readFileSync(p, "utf8")): string[] {
  const values: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !SECRET_VARIABLE.test(name)) continue;
    values.push(value);
    if (!name.endsWith("_FILE")) continue;
    try {
      const content = readFile(value);
      values.push(content, content.replace(/\r?\n$/, ""));
    } catch {
      // Unreadable: the engine fails on it too (and the start-up checks say so); nothing to hide.
    }
  }
  return values;
}
