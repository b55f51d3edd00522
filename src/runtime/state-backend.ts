/**
 * The operator's Pulumi state backend (`--backend-url`), checked before anything starts: the
 * scheme, the bucket, and each query parameter against what the Pulumi CLI's blob openers
 * (gocloud.dev) accept. A typo such as `usePathStyle=true` would otherwise surface only at the
 * first Cluster's update, as that Cluster's failure ("unknown query parameter").
 *
 * Credentials never travel in the URL: the engine reads them from its environment
 * (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, a web identity; GOOGLE_APPLICATION_CREDENTIALS;
 * AZURE_STORAGE_ACCOUNT/AZURE_STORAGE_KEY), where known-secrets.ts finds them for redaction. A URL
 * carrying a `user:secret@` part is refused, and no message here repeats that part.
 */

type Env = Readonly<Record<string, string | undefined>>;

export type StateBackend =
  | { readonly kind: "file"; readonly dir: string }
  | { readonly kind: "s3" | "gs" | "azblob"; readonly bucket: string; readonly prefix: string; readonly params: Readonly<Record<string, string>> }
  | { readonly kind: "service"; readonly url: string };

/**
 * The s3:// parameters the Pulumi CLI of the toolchain (3.276, AWS SDK v2) accepts; each was tried
 * against it (an unknown one fails with `unknown query parameter`). `s3ForcePathStyle` and
 * `disableSSL` are the SDK v1 names, still honoured.
 */
export const S3_PARAMETERS = [
  "region",
  "endpoint",
  "profile",
  "use_path_style",
  "s3ForcePathStyle",
  "disable_https",
  "disableSSL",
  "hostname_immutable",
  "dualstack",
  "fips",
  "accelerate",
  "anonymous",
  "awssdk",
  "rate_limiter_capacity",
  "request_checksum_calculation",
  "response_checksum_validation",
  "ssetype",
  "kmskeyid",
] as const;

/** gocloud.dev's gcsblob parameters. */
export const GS_PARAMETERS = ["access_id", "private_key_path", "anonymous"] as const;

/** gocloud.dev's azureblob parameters (an unknown one is refused by the CLI, tried). */
export const AZBLOB_PARAMETERS = ["storage_account", "domain", "protocol", "cdn", "localemu"] as const;

const BOOLEAN_S3_PARAMETERS = new Set(["use_path_style", "s3ForcePathStyle", "disable_https", "disableSSL", "hostname_immutable", "dualstack", "fips", "accelerate", "anonymous"]);

const PARAMETERS: Record<"s3" | "gs" | "azblob", readonly string[]> = { s3: S3_PARAMETERS, gs: GS_PARAMETERS, azblob: AZBLOB_PARAMETERS };

/**
 * The URL as it may be printed: every `user:secret@` part replaced, the backend's own and an
 * endpoint's in its query (plain or percent-encoded).
 */
export function printableBackendUrl(url: string): string {
  return url.replace(/(:\/\/|%3A%2F%2F)[^@/?#&\s]*?(@|%40)/gi, "$1***$2");
}

/** The local directory of a `file://` URL (`file://~/x` is under `home`). */
function fileDir(url: string, home: string): string {
  const rest = url.slice("file://".length);
  return rest === "~" || rest.startsWith("~/") ? `${home}${rest.slice(1)}` : rest;
}

export interface BackendCheck {
  readonly backend?: StateBackend;
  /** What stops the start. */
  readonly problems: string[];
  /** What the operator says and goes on. */
  readonly notes: string[];
}

/**
 * Parses and checks `--backend-url`. `env` is the engine's environment: a half-set credential
 * pair or an s3 backend with no region anywhere is a problem now rather than at the first update.
 */
export function checkStateBackend(url: string, env: Env = {}, home = ""): BackendCheck {
  const flag = `--backend-url "${printableBackendUrl(url)}"`;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (!scheme) return { problems: [`${flag} is not a URL: use file:///path/to/state, s3://bucket/prefix?region=..., gs://bucket or azblob://container`], notes: [] };
  if (scheme === "file") return { backend: { kind: "file", dir: fileDir(url, home) }, problems: [], notes: [] };
  if (scheme === "https" || scheme === "http") return { backend: { kind: "service", url }, problems: [], notes: [] };
  if (scheme !== "s3" && scheme !== "gs" && scheme !== "azblob") {
    return { problems: [`${flag}: unknown scheme ${scheme}://; the state backends are file://, s3://, gs://, azblob:// and https:// (a Pulumi service)`], notes: [] };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { problems: [`${flag} is not a valid URL`], notes: [] };
  }
  const problems: string[] = [];
  const notes: string[] = [];
  if (parsed.username || parsed.password) {
    problems.push(`${flag}: credentials in the URL are refused (they would land in logs and the stacks' settings); give them to the operator's environment instead (${credentialVariables(scheme)})`);
  }
  const bucket = parsed.hostname;
  const what = scheme === "azblob" ? "container" : "bucket";
  if (!bucket) problems.push(`${flag}: no ${what} name: write ${scheme}://<${what}>[/prefix]`);
  const known = PARAMETERS[scheme];
  const params: Record<string, string> = {};
  for (const [name, value] of parsed.searchParams) {
    if (!known.includes(name)) {
      problems.push(`${flag}: unknown query parameter "${name}" (the ${scheme}:// backend takes ${known.join(", ")})`);
      continue;
    }
    if (name in params) problems.push(`${flag}: query parameter "${name}" is given twice`);
    params[name] = value;
  }
  if (scheme === "s3") s3Checks(flag, params, env, problems, notes);
  if (scheme === "azblob" && !params.storage_account && !env.AZURE_STORAGE_ACCOUNT) {
    problems.push(`${flag}: no storage account: set AZURE_STORAGE_ACCOUNT in the operator's environment (or storage_account= in the URL)`);
  }
  const prefix = decodeURIComponent(parsed.pathname.replace(/^\/+|\/+$/g, ""));
  if (problems.length) return { problems, notes };
  return { backend: { kind: scheme, bucket, prefix, params }, problems, notes };
}

function credentialVariables(scheme: string): string {
  if (scheme === "s3") return "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE";
  if (scheme === "gs") return "GOOGLE_APPLICATION_CREDENTIALS";
  return "AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN";
}

function s3Checks(flag: string, params: Record<string, string>, env: Env, problems: string[], notes: string[]): void {
  for (const name of Object.keys(params)) {
    if (BOOLEAN_S3_PARAMETERS.has(name) && !/^(true|false)$/.test(params[name])) problems.push(`${flag}: ${name}=${params[name]} must be true or false`);
  }
  if (params.endpoint !== undefined) {
    let endpoint: URL | undefined;
    try {
      endpoint = new URL(params.endpoint);
    } catch {
      endpoint = undefined;
    }
    if (!endpoint || (endpoint.protocol !== "http:" && endpoint.protocol !== "https:")) {
      problems.push(`${flag}: endpoint=${params.endpoint} must be a URL with its scheme, e.g. endpoint=https://s3.example.com or http://127.0.0.1:9000`);
    } else if (endpoint.username || endpoint.password) {
      problems.push(`${flag}: the endpoint carries credentials: give them to the operator's environment instead (${credentialVariables("s3")})`);
    } else if (params.use_path_style !== "true" && params.s3ForcePathStyle !== "true") {
      // Virtual-host addressing puts the bucket in the host name: `bucket.127.0.0.1` resolves nowhere.
      notes.push(`${flag}: a custom endpoint without use_path_style=true addresses the bucket as <bucket>.${endpoint.host}; MinIO-class stores need use_path_style=true`);
    }
  }
  if (!params.region && !env.AWS_REGION && !env.AWS_DEFAULT_REGION && !params.profile && !env.AWS_PROFILE) {
    problems.push(`${flag}: no region: add region=<region> to the URL (any name, e.g. us-east-1, for a single-site store) or set AWS_REGION`);
  }
  const hasId = Boolean(env.AWS_ACCESS_KEY_ID);
  const hasSecret = Boolean(env.AWS_SECRET_ACCESS_KEY);
  if (hasId !== hasSecret) {
    problems.push(`the s3 state backend's credentials are half set: ${hasId ? "AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY" : "AWS_SECRET_ACCESS_KEY without AWS_ACCESS_KEY_ID"}`);
  } else if (!hasId && params.anonymous !== "true") {
    notes.push("s3 state backend: no AWS_ACCESS_KEY_ID in the environment; the engine uses the AWS default chain (AWS_PROFILE, a web identity token, the instance's role)");
  }
}
