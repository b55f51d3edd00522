/**
 * Keeps secrets out of everything the operator writes where users and logs can read it: Event
 * messages, status conditions, `lastOperation`, log lines. Error messages from the engine, SSH,
 * kubectl and the apiserver can echo a passphrase, a token or a key; this is the last line before
 * they land. Two kinds of rule:
 *
 * - known values (the passphrase, the SSH keys and passwords, CA keys and kubeconfig credentials
 *   the operator read: see known-secrets.ts), in plain and base64 form;
 * - shapes that are secret whoever handed them over: PEM private keys, base64 blobs that decode to
 *   something secret (a kubeconfig's `client-key-data`), bearer tokens and credential fields
 *   (`token: …`, `"password":"…"`).
 */

export const REDACTED = "[REDACTED]";

/**
 * Values shorter than this are not looked for. A 3-letter password occurs inside ordinary words
 * and numbers ("un[REDACTED]nown option"), so redacting it mangles every message while hiding
 * little: a value that short is guessed in moments whatever we print. 6 keeps every generated
 * credential and any passphrase worth the name.
 */
export const MIN_SECRET_LENGTH = 6;

/**
 * Values at least this long are redacted wherever they occur, even glued to other characters (a
 * 16-character random value inside other text is that value, not a coincidence). Shorter ones
 * only where they stand alone (no letter, digit or `_` right before or after them), so a
 * 6-letter password does not cut words in half.
 */
export const ANYWHERE_LENGTH = 16;

/** PEM private keys are secrets whatever we were told: the engine's diffs can print them whole. */
const PRIVATE_KEY_PEM = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;

/** A PEM header cut off before its label ends (a truncated message): it may be a private key. */
const CUT_PEM_HEADER = /-----BEGIN [A-Z0-9 ]*-{0,4}$/;

/**
 * Runs that may be base64: decoded and redacted in turn, so `client-key-data`, a base64 kubeconfig
 * holding a token, or a known secret inside a base64 document go whole. 24 characters (18 bytes)
 * is below the base64 of the shortest PEM header, and above most words.
 */
const BASE64_RUN = /[A-Za-z0-9+/]{24,}={0,2}/g;

/** `Authorization: Bearer x`, `authorization="Basic x"`: the scheme stays, the credential goes. */
const AUTHORIZATION = /(authorization["']?\s*[:=]\s*["']?)((?:bearer|basic)\s+)?([^\s"',;}]+)/gi;

/** A bare `Bearer <token>` (an HTTP exchange in an error). 8+ characters: "Bearer tokens" is prose. */
const BEARER = /\b(bearer\s+)([A-Za-z0-9\-._~+/]{8,}=*)/gi;

/**
 * Credential fields in YAML, JSON, flags and query strings: `token: x`, `"token":"x"`,
 * `--token=x`, `?access_token=x`, `client-key-data: x`, `password=x`. The key and quotes stay.
 */
const CREDENTIAL_FIELD =
  /(?<![A-Za-z0-9])((?:[A-Za-z]+[-_]?)?(?:token|password|passphrase)|client-key-data|secret[-_]?access[-_]?key)(["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^\s"',;&)}\]]+)/gi;

const MAX_BASE64_DEPTH = 3;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** A secret, its base64 form and that form without padding: Secret data and kubeconfigs carry values base64-encoded. */
function formsOf(secrets: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (secret.length < MIN_SECRET_LENGTH) continue;
    const b64 = Buffer.from(secret, "utf8").toString("base64");
    forms.add(secret);
    forms.add(b64);
    forms.add(b64.replace(/=+$/, ""));
  }
  // Longest first, so one secret that contains another is removed whole.
  return [...forms].sort((a, b) => b.length - a.length);
}

interface Matcher {
  /** Forms of ANYWHERE_LENGTH or more, longest first, removed by plain search. */
  readonly anywhere: readonly string[];
  /** Shorter forms, each between word boundaries, in one pass; undefined when there are none. */
  readonly standalone: RegExp | undefined;
}

/** Lists handed in again and again (the registry's snapshots) are compiled once. */
const compiled = new WeakMap<readonly string[], Matcher>();

function matcherOf(secrets: readonly string[]): Matcher {
  const cached = compiled.get(secrets);
  if (cached) return cached;
  const forms = formsOf(secrets);
  const short = forms.filter((f) => f.length < ANYWHERE_LENGTH);
  const matcher: Matcher = {
    anywhere: forms.filter((f) => f.length >= ANYWHERE_LENGTH),
    standalone: short.length ? new RegExp(`(?<![A-Za-z0-9_])(?:${short.map(escapeRegExp).join("|")})(?![A-Za-z0-9_])`, "g") : undefined,
  };
  compiled.set(secrets, matcher);
  return matcher;
}

function redactKnown(text: string, matcher: Matcher): string {
  let out = text;
  for (const form of matcher.anywhere) if (out.includes(form)) out = out.split(form).join(REDACTED);
  return matcher.standalone ? out.replace(matcher.standalone, REDACTED) : out;
}

function redactShapes(text: string): string {
  return text
    .replace(PRIVATE_KEY_PEM, REDACTED)
    .replace(CUT_PEM_HEADER, REDACTED)
    .replace(AUTHORIZATION, (_all, key: string, scheme: string | undefined) => `${key}${scheme ?? ""}${REDACTED}`)
    .replace(BEARER, (_all, scheme: string) => `${scheme}${REDACTED}`)
    .replace(CREDENTIAL_FIELD, (all, key: string, sep: string, value: string) => {
      const quote = value[0] === '"' || value[0] === "'" ? value[0] : "";
      if (value.length === 2 * quote.length) return all;
      return `${key}${sep}${quote}${REDACTED}${quote}`;
    });
}

function redactWith(text: string, matcher: Matcher, depth: number): string {
  const out = redactShapes(redactKnown(text, matcher));
  if (depth >= MAX_BASE64_DEPTH) return out;
  return out.replace(BASE64_RUN, (run) => {
    const decoded = Buffer.from(run, "base64").toString("utf8");
    return redactWith(decoded, matcher, depth + 1) === decoded ? run : REDACTED;
  });
}

/**
 * Replaces, with `[REDACTED]`: each secret of at least MIN_SECRET_LENGTH characters and its base64
 * forms (short ones only where they stand alone, see ANYWHERE_LENGTH); PEM private keys; base64
 * runs whose decoded text holds anything redacted here (so a `client-key-data` value goes whole);
 * bearer and basic credentials; the values of credential fields (`token`, `password`, ...).
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  return redactWith(text, matcherOf(secrets), 0);
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

/**
 * A structured log line with `redactDeep` applied to every field but `level` and `msg`: those are
 * fixed words of the operator's code, and leaving them whole means no tenant-chosen value (see
 * known-secrets.ts) can blank out what the platform's log searches look for.
 */
export function redactLogLine(line: Record<string, unknown>, secrets: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(line).map(([k, v]) => [k, k === "level" || k === "msg" ? v : redactDeep(v, secrets)]));
}
