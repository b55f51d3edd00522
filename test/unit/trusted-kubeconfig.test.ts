/**
 * trusted-kubeconfig.ts against hostile kubeconfigs: every field that would make a client run a
 * command, read a file, change its transport or act as someone else is refused with its path
 * named and no value quoted; a clean kubeconfig as ControlPlane renders it comes back byte for
 * byte (so the kubectl steps that take it do not re-run); what is rebuilt carries nothing else.
 */
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { renderTrustedKubeconfig, trustedKubeconfig, trustedKubeconfigParts, UntrustedKubeconfigError } from "../../src/components/trusted-kubeconfig";
import { cleanKubeconfig, execEntry, pem, TEST_CLIENT_KEY_MARK, tokenKubeconfig, withFields } from "../support/kubeconfigs";

const SECRET = "s3cr3t-value-never-in-errors";

function refusal(text: string): string {
  try {
    trustedKubeconfig(text, "the admin kubeconfig");
  } catch (error) {
    expect(error).toBeInstanceOf(UntrustedKubeconfigError);
    const message = (error as Error).message;
    expect(message).not.toContain(SECRET);
    expect(message).not.toContain(TEST_CLIENT_KEY_MARK);
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("the kubeconfig was accepted");
}

describe("trustedKubeconfig", () => {
  it("gives a clean kubeconfig back byte for byte, and its parts", () => {
    const clean = cleanKubeconfig();
    expect(trustedKubeconfig(clean)).toBe(clean);
    const parts = trustedKubeconfigParts(clean);
    expect(parts).toMatchObject({ server: "https://127.0.0.1:30443", clusterName: "prod-a", userName: "kubernetes-admin" });
    expect(parts.clientKeyPem).toContain("BEGIN EC PRIVATE KEY");
    expect(parts.token).toBeUndefined();
    const token = tokenKubeconfig("https://127.0.0.1:6443/", pem("CERTIFICATE", "ca"), "abc.def");
    const rebuilt = parse(trustedKubeconfig(token));
    expect(rebuilt.users).toEqual([{ name: "admin", user: { token: "abc.def" } }]);
    expect(rebuilt.clusters[0].cluster.server).toBe("https://127.0.0.1:6443");
  });

  it.each([
    ["user", { exec: execEntry("/tmp/never") }, "users[0].user.exec is not allowed: it runs a command; the operator builds clients from server, CA and client certificate only"],
    ["user", { "auth-provider": { name: "oidc", config: { "refresh-token": SECRET } } }, "users[0].user.auth-provider is not allowed: its plugins run code"],
    ["user", { tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token" }, "users[0].user.tokenFile is not allowed: it reads a file of the host"],
    ["user", { "client-certificate": "/etc/kubernetes/pki/admin.crt" }, "users[0].user.client-certificate is not allowed: it reads a file"],
    ["user", { "client-key": "/etc/kubernetes/pki/admin.key" }, "users[0].user.client-key is not allowed: it reads a file"],
    ["user", { username: "admin", password: SECRET }, "users[0].user.password is not allowed: basic authentication"],
    ["user", { as: "system:admin", "as-groups": ["system:masters"] }, "users[0].user.as-groups is not allowed: it impersonates another user"],
    ["user", { "impersonate-uid": "0" }, "users[0].user.impersonate-uid is not allowed: it impersonates another user"],
    ["user", { "made-up-field": SECRET }, "users[0].user.made-up-field is not allowed: the operator builds clients"],
    ["cluster", { "certificate-authority": "/etc/kubernetes/pki/ca.crt" }, "clusters[0].cluster.certificate-authority is not allowed: it reads a file"],
    ["cluster", { "proxy-url": `http://evil.example:3128/${SECRET}` }, "clusters[0].cluster.proxy-url is not allowed: it sends the connection through another host"],
    ["cluster", { "insecure-skip-tls-verify": true }, "clusters[0].cluster.insecure-skip-tls-verify is not allowed: it turns off the check"],
    ["cluster", { "tls-server-name": "evil.example" }, "clusters[0].cluster.tls-server-name is not allowed"],
    ["cluster", { extensions: [{ name: "x", extension: {} }] }, "clusters[0].cluster.extensions is not allowed"],
    ["cluster", { server: `http://127.0.0.1:8080` }, "clusters[0].cluster.server is not an https URL"],
    ["cluster", { server: `https://admin:${SECRET}@127.0.0.1:6443` }, "clusters[0].cluster.server carries credentials in the URL"],
    ["cluster", { server: "file:///etc/passwd" }, "clusters[0].cluster.server is not an https URL"],
    ["cluster", { "certificate-authority-data": Buffer.from(SECRET).toString("base64") }, "clusters[0].cluster.certificate-authority-data is not a base64 PEM certificate"],
    ["context", { namespace: "x", "made-up": 1 }, "contexts[0].context.made-up is not allowed"],
  ] as const)("refuses %s field %j, naming it", (where, fields, expected) => {
    expect(refusal(withFields(cleanKubeconfig(), where, fields))).toContain(expected);
  });

  it("names every refused field at once", () => {
    let text = withFields(cleanKubeconfig(), "user", { exec: execEntry("/tmp/never"), tokenFile: "/t" });
    text = withFields(text, "cluster", { "proxy-url": "http://p:1" });
    const message = refusal(text);
    for (const field of ["users[0].user.exec", "users[0].user.tokenFile", "clusters[0].cluster.proxy-url"]) expect(message).toContain(field);
  });

  it("checks the entries the current context selects, wherever they are in the lists", () => {
    const doc = parse(cleanKubeconfig());
    doc.users.unshift({ name: "decoy", user: { token: "t" } });
    doc.users[1].user.exec = execEntry("/tmp/never");
    const text = JSON.stringify(doc);
    expect(refusal(text)).toContain("users[1].user.exec is not allowed");
    // Other entries are never used: a clean current context is accepted, and only it is kept.
    const other = parse(cleanKubeconfig());
    other.users.push({ name: "other", user: { exec: execEntry("/tmp/never") } });
    const rebuilt = parse(trustedKubeconfig(JSON.stringify(other)));
    expect(rebuilt.users.map((u: { name: string }) => u.name)).toEqual(["kubernetes-admin"]);
  });

  it("refuses what cannot be read without quoting it", () => {
    expect(refusal(`apiVersion: v1\nusers:\n  - name: admin\n    user: { token: ${SECRET} }\n   bad: [\n`)).toMatch(/^the admin kubeconfig is refused: it is not valid YAML \(line \d+, column \d+\)$/);
    expect(refusal("a: &x [1]\nb: *x\n")).toContain("YAML aliases");
    expect(refusal(`current-context: a\ncurrent-context: ${SECRET}\n`)).toContain("not valid YAML");
    expect(refusal("apiVersion: v1\nkind: Config\n")).toContain("current-context is not set");
    expect(refusal(cleanKubeconfig().replace(/current-context: .*/, `current-context: ${SECRET}-x`))).toContain("current-context names no entry of contexts");
    const twice = parse(cleanKubeconfig());
    twice.contexts.push(structuredClone(twice.contexts[0]));
    twice.contexts[1].context.user = "someone-else";
    expect(refusal(JSON.stringify(twice))).toContain("current-context names 2 entries of contexts");
    const noKey = withFields(cleanKubeconfig(), "user", { "client-key-data": undefined });
    expect(refusal(noKey)).toContain("users[0].user needs both client-certificate-data and client-key-data");
    const headerInjection = parse(tokenKubeconfig("https://h", pem("CERTIFICATE", "ca"), "t"));
    headerInjection.users[0].user.token = `t\r\nX-Evil: ${SECRET}`;
    expect(refusal(JSON.stringify(headerInjection))).toContain("users[0].user.token is not a single-line printable token");
  });

  it("rebuilds only server, CA and credentials", () => {
    const parts = trustedKubeconfigParts(withFields(cleanKubeconfig(), "cluster", { "insecure-skip-tls-verify": false }));
    const rebuilt = parse(renderTrustedKubeconfig(parts));
    expect(Object.keys(rebuilt.clusters[0].cluster).sort()).toEqual(["certificate-authority-data", "server"]);
    expect(Object.keys(rebuilt.users[0].user).sort()).toEqual(["client-certificate-data", "client-key-data"]);
  });
});
