/**
 * Turns a kubeconfig text that someone else could have written into one a client may use without
 * running code, reading files or changing its transport. A kubeconfig is a program for its
 * client: `users[].user.exec` and `auth-provider` run commands, `tokenFile` and the path fields
 * read files of the host, `proxy-url` and `insecure-skip-tls-verify` redirect or unpin the
 * connection, `as`/`impersonate-*` change who acts. Whoever can edit the text the operator loads
 * runs as the operator (docs/security.md).
 *
 * So the current context's cluster and user are read against an allowlist (server as an https
 * URL, `certificate-authority-data`, `client-certificate-data` + `client-key-data`, optionally an
 * inline `token`), every other field of them is refused with its path named, and a new minimal
 * kubeconfig is built from the accepted values only. A clean kubeconfig as ControlPlane writes it
 * (kubeconfig.ts `renderKubeconfig`) comes back byte for byte, so steps that take it as an input
 * do not re-run when this filter is put in front of them. Errors never quote a value.
 */
import { parseDocument, stringify } from "yaml";
import { renderKubeconfig } from "./kubeconfig";

/** What a client is built from; nothing else of the source survives. */
export interface TrustedKubeconfigParts {
  readonly clusterName: string;
  readonly userName: string;
  /** An https URL without credentials, query or fragment; no trailing slash. */
  readonly server: string;
  /** PEM of the CA that signs the apiserver's serving certificate. */
  readonly caCertPem: string;
  readonly clientCertPem?: string;
  readonly clientKeyPem?: string;
  readonly token?: string;
}

export class UntrustedKubeconfigError extends Error {
  constructor(
    readonly what: string,
    readonly problems: readonly string[],
  ) {
    super(`${what} is refused: ${problems.join("; ")}`);
    this.name = "UntrustedKubeconfigError";
  }
}

const ONLY = "the operator builds clients from server, CA and client certificate only";

/** Why a field a client would honour is refused: what it would make the client do. */
const REFUSED: Record<string, string> = {
  exec: "it runs a command",
  "auth-provider": "its plugins run code and refresh credentials through other hosts",
  tokenFile: "it reads a file of the host",
  "client-certificate": "it reads a file of the host",
  "client-key": "it reads a file of the host",
  "certificate-authority": "it reads a file of the host",
  "proxy-url": "it sends the connection through another host",
  "tls-server-name": "it changes which name the serving certificate is checked against",
  "insecure-skip-tls-verify": "it turns off the check of the serving certificate",
  username: "basic authentication is not accepted",
  password: "basic authentication is not accepted",
  as: "it impersonates another user",
  "as-uid": "it impersonates another user",
  "as-groups": "it impersonates another user",
  "as-user-extra": "it impersonates another user",
  extensions: "extensions are not read",
};

const CLUSTER_FIELDS = new Set(["server", "certificate-authority-data"]);
const USER_FIELDS = new Set(["client-certificate-data", "client-key-data", "token"]);
const CONTEXT_FIELDS = new Set(["cluster", "user", "namespace"]);

/** A key is tenant text too: name it only when it looks like a field name. */
function keyName(key: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(key) ? key : `<a key of ${key.length} characters>`;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** The one entry of `list` (clusters, users, contexts) called `name`, with its index. */
function find(list: unknown, field: string, name: string, where: string, problems: string[]): { index: number; body: Obj } | undefined {
  if (!Array.isArray(list)) {
    problems.push(`${field} is missing or not a list`);
    return undefined;
  }
  const matches = list.map((e, index) => ({ e, index })).filter(({ e }) => isObj(e) && e.name === name);
  if (matches.length !== 1) {
    // Names are the writer's text: the message says what is wrong without repeating them.
    problems.push(`${where} names ${matches.length ? `${matches.length} entries` : "no entry"} of ${field}`);
    return undefined;
  }
  const { e, index } = matches[0]!;
  const inner = field.slice(0, -1);
  const body = (e as Obj)[inner];
  if (!isObj(body)) {
    problems.push(`${field}[${index}].${inner} is missing or not a mapping`);
    return undefined;
  }
  for (const key of Object.keys(e as Obj)) if (key !== "name" && key !== inner) problems.push(`${field}[${index}].${keyName(key)} is not allowed: ${ONLY}`);
  return { index, body };
}

function refuseOthers(body: Obj, at: string, allowed: Set<string>, problems: string[]): void {
  for (const key of Object.keys(body)) {
    if (allowed.has(key)) continue;
    // `insecure-skip-tls-verify: false` says what the rebuilt kubeconfig does anyway.
    if (key === "insecure-skip-tls-verify" && body[key] === false) continue;
    const why = REFUSED[key] ?? (key.startsWith("impersonate") ? "it impersonates another user" : undefined);
    problems.push(`${at}.${keyName(key)} is not allowed: ${why ? `${why}; ` : ""}${ONLY}`);
  }
}

const PEM_LABELS = { certificate: /^CERTIFICATE$/, "private key": /^([A-Z]+ )?PRIVATE KEY$/ } as const;

/** The PEM text behind a `*-data` field: base64 of one PEM block of the given kind. */
function pemOf(value: unknown, at: string, kind: keyof typeof PEM_LABELS, problems: string[]): string | undefined {
  if (typeof value !== "string" || !/^[A-Za-z0-9+/=\s]+$/.test(value)) {
    problems.push(`${at} is not base64`);
    return undefined;
  }
  const pem = Buffer.from(value, "base64").toString("utf8");
  const begin = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem);
  if (!begin || !PEM_LABELS[kind].test(begin[1]!) || !pem.includes(`-----END ${begin[1]}-----`)) {
    problems.push(`${at} is not a base64 PEM ${kind}`);
    return undefined;
  }
  return pem;
}

function serverOf(value: unknown, at: string, problems: string[]): string | undefined {
  let url: URL | undefined;
  try {
    url = typeof value === "string" ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || url.protocol !== "https:" || !url.hostname) problems.push(`${at} is not an https URL`);
  else if (url.username || url.password) problems.push(`${at} carries credentials in the URL`);
  else if (url.search || url.hash) problems.push(`${at} has a query or a fragment`);
  else return (value as string).replace(/\/$/, "");
  return undefined;
}

/**
 * The accepted parts of the current context of `text`, or an `UntrustedKubeconfigError` listing
 * every problem. `what` names the kubeconfig in the error, e.g. `the admin kubeconfig of Cluster
 * fleet/prod-a (Secret ns/name)`.
 */
export function trustedKubeconfigParts(text: string, what = "the kubeconfig"): TrustedKubeconfigParts {
  // Parse errors quote the source around the error: only their position is told.
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length) {
    const at = doc.errors[0]!.linePos?.[0];
    throw new UntrustedKubeconfigError(what, [`it is not valid YAML${at ? ` (line ${at.line}, column ${at.col})` : ""}`]);
  }
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 0 });
  } catch {
    throw new UntrustedKubeconfigError(what, ["it uses YAML aliases, which a kubeconfig does not need"]);
  }
  if (!isObj(root)) throw new UntrustedKubeconfigError(what, ["it is not a YAML mapping"]);
  const problems: string[] = [];
  const current = root["current-context"];
  if (typeof current !== "string" || !current) throw new UntrustedKubeconfigError(what, ["current-context is not set"]);
  const context = find(root.contexts, "contexts", current, "current-context", problems);
  if (!context) throw new UntrustedKubeconfigError(what, problems);
  const contextAt = `contexts[${context.index}].context`;
  refuseOthers(context.body, contextAt, CONTEXT_FIELDS, problems);
  const cluster = typeof context.body.cluster === "string" ? find(root.clusters, "clusters", context.body.cluster, `${contextAt}.cluster`, problems) : undefined;
  if (typeof context.body.cluster !== "string") problems.push(`${contextAt}.cluster is not set`);
  const user = typeof context.body.user === "string" ? find(root.users, "users", context.body.user, `${contextAt}.user`, problems) : undefined;
  if (typeof context.body.user !== "string") problems.push(`${contextAt}.user is not set`);

  let server: string | undefined;
  let caCertPem: string | undefined;
  if (cluster) {
    const at = `clusters[${cluster.index}].cluster`;
    refuseOthers(cluster.body, at, CLUSTER_FIELDS, problems);
    server = serverOf(cluster.body.server, `${at}.server`, problems);
    caCertPem = pemOf(cluster.body["certificate-authority-data"], `${at}.certificate-authority-data`, "certificate", problems);
  }
  const credentials: { clientCertPem?: string; clientKeyPem?: string; token?: string } = {};
  if (user) {
    const at = `users[${user.index}].user`;
    const body = user.body;
    refuseOthers(body, at, USER_FIELDS, problems);
    const cert = body["client-certificate-data"];
    const key = body["client-key-data"];
    if ((cert === undefined) !== (key === undefined)) problems.push(`${at} needs both client-certificate-data and client-key-data, or neither`);
    else if (cert !== undefined) {
      credentials.clientCertPem = pemOf(cert, `${at}.client-certificate-data`, "certificate", problems);
      credentials.clientKeyPem = pemOf(key, `${at}.client-key-data`, "private key", problems);
    }
    if (body.token !== undefined) {
      // A token goes into an Authorization header: a line break would add headers of its own.
      if (typeof body.token !== "string" || !/^[\x21-\x7e]+$/.test(body.token)) problems.push(`${at}.token is not a single-line printable token`);
      else credentials.token = body.token;
    }
    if (cert === undefined && body.token === undefined) problems.push(`${at} has no credentials: it needs client-certificate-data and client-key-data (or a token)`);
  }
  if (problems.length || !server || !caCertPem || !cluster || !user) throw new UntrustedKubeconfigError(what, problems);
  return {
    clusterName: context.body.cluster as string,
    userName: context.body.user as string,
    server,
    caCertPem,
    ...credentials,
  };
}

/** The minimal kubeconfig of `parts`: one cluster, one user, one current context, all inline. */
export function renderTrustedKubeconfig(p: TrustedKubeconfigParts): string {
  // The shape ControlPlane writes, so that a clean kubeconfig comes back unchanged.
  if (p.clientCertPem && p.clientKeyPem && !p.token) {
    return renderKubeconfig({ clusterName: p.clusterName, server: p.server, caCertPem: p.caCertPem, userName: p.userName, clientCertPem: p.clientCertPem, clientKeyPem: p.clientKeyPem });
  }
  const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
  const user: Record<string, string> = {};
  if (p.clientCertPem && p.clientKeyPem) Object.assign(user, { "client-certificate-data": b64(p.clientCertPem), "client-key-data": b64(p.clientKeyPem) });
  if (p.token) user.token = p.token;
  const context = `${p.userName}@${p.clusterName}`;
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: p.clusterName, cluster: { server: p.server, "certificate-authority-data": b64(p.caCertPem) } }],
    users: [{ name: p.userName, user }],
    contexts: [{ name: context, context: { cluster: p.clusterName, user: p.userName } }],
    "current-context": context,
    preferences: {},
  });
}

/** `text` rebuilt from its accepted parts; throws `UntrustedKubeconfigError` naming every refused field. */
export function trustedKubeconfig(text: string, what?: string): string {
  return renderTrustedKubeconfig(trustedKubeconfigParts(text, what));
}
