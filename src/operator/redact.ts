/**
 * Keeps secrets out of everything the operator writes where users and logs can read it: Event
 * messages, status conditions, `lastOperation`. Error messages from the engine, SSH and the
 * apiserver can echo a passphrase, a token or a key; this is the last line before they land.
 */

export const REDACTED = "[REDACTED]";

/** PEM private keys are secrets whatever we were told: the engine's diffs can print them whole. */
const PRIVATE_KEY_PEM = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g;

/**
 * Replaces every occurrence of each secret (and of its base64 form, since Secret data and
 * kubeconfigs carry values base64-encoded) with `[REDACTED]`, and any PEM private key block.
 * Empty secrets are ignored; longer secrets go first so one that contains another is removed whole.
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (!secret) continue;
    forms.add(secret);
    const b64 = Buffer.from(secret, "utf8").toString("base64");
    forms.add(b64);
    forms.add(b64.replace(/=+$/, ""));
  }
  let out = text.replace(PRIVATE_KEY_PEM, REDACTED);
  for (const form of [...forms].sort((a, b) => b.length - a.length)) {
    if (form) out = out.split(form).join(REDACTED);
  }
  return out;
}

/** Applies `redact` to every string inside a JSON-like value (a status object), returning a copy. */
export function redactDeep<T>(value: T, secrets: readonly string[] = []): T {
  if (typeof value === "string") return redact(value, secrets) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => redactDeep(v, secrets)) as T;
  if (value !== null && typeof value === "object" && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v, secrets)])) as T;
  }
  return value;
}
