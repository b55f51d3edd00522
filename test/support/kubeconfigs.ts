/**
 * Kubeconfig texts for the tests of trusted-kubeconfig.ts and its callers: a clean one as
 * ControlPlane renders it, and the same with one hostile field added. The PEM blocks are armour
 * around test-only text, enough for a parser that checks the armour (no TLS handshake uses them).
 */
import { stringify, parse } from "yaml";
import { renderKubeconfig } from "../../src/components/kubeconfig";

export const pem = (label: string, body: string) => `-----BEGIN ${label}-----\n${Buffer.from(body).toString("base64")}\n-----END ${label}-----\n`;

/** A real self-signed test CA (P-256, CN test-only-ca, 100 years; key discarded): the Machine side parses it (runtime/certificates.ts). */
export const TEST_CA = `-----BEGIN CERTIFICATE-----
MIIBhjCCASugAwIBAgIUYp+V3LkkQcOdf02/fpLlGBEwax4wCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMdGVzdC1vbmx5LWNhMCAXDTI2MTIwNTIxMjYzOVoYDzIxMjYx
MTExMjEyNjM5WjAXMRUwEwYDVQQDDAx0ZXN0LW9ubHktY2EwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAQV32FKwaRypiOCbdqhJnFD5oBMtFG7ozOUOMpPBppnwZY1
0hBFzLinNtlG8aHh3DYnzBSWoLoVN1qx5ZYkYjwfo1MwUTAdBgNVHQ4EFgQUzl3i
o55jf7OG4flE4p5z2lIr2uIwHwYDVR0jBBgwFoAUzl3io55jf7OG4flE4p5z2lIr
2uIwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAuXnSvUkjplTy
l0IondPKRysnSKRl08AetjNiWFjgmMkCIQC4UWXuuFySZR084dGkRwI16uJ5hV0p
qhcBO30lP2larw==
-----END CERTIFICATE-----
`;
export const TEST_CLIENT_KEY_MARK = "test-only-client-key-material";

export function cleanKubeconfig(server = "https://127.0.0.1:30443", extra: { caCertPem?: string } = {}): string {
  return renderKubeconfig({
    clusterName: "prod-a",
    server,
    caCertPem: extra.caCertPem ?? TEST_CA,
    userName: "kubernetes-admin",
    clientCertPem: pem("CERTIFICATE", "test-only-client-cert"),
    clientKeyPem: pem("EC PRIVATE KEY", TEST_CLIENT_KEY_MARK),
  });
}

/** A token user (the test apiservers' static token file) with the CA inline. */
export function tokenKubeconfig(server: string, caCertPem: string, token: string): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "business", cluster: { server, "certificate-authority-data": Buffer.from(caCertPem).toString("base64") } }],
    users: [{ name: "admin", user: { token } }],
    contexts: [{ name: "admin", context: { cluster: "business", user: "admin" } }],
    "current-context": "admin",
  });
}

/** `text` with `fields` merged into its first cluster's, user's or context's body. */
export function withFields(text: string, where: "cluster" | "user" | "context", fields: Record<string, unknown>): string {
  const doc = parse(text) as Record<string, { [k: string]: Record<string, unknown> }[]>;
  const list = doc[`${where}s`]!;
  list[0]![where] = { ...list[0]![where], ...fields };
  return stringify(doc);
}

/** An exec entry whose command creates `marker` and then hands out `token`, as a credential plugin does. */
export function execEntry(marker: string, token = "not-a-real-token") {
  const credential = JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status: { token } });
  return {
    apiVersion: "client.authentication.k8s.io/v1",
    command: "/bin/sh",
    args: ["-c", `touch '${marker}'; echo '${credential}'`],
    interactiveMode: "Never",
  };
}
