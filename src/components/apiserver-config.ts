/**
 * Two files kube-apiserver reads at start, on by default for every business cluster:
 *
 * - the audit policy (a ConfigMap: nothing in it is secret): who did what, without recording the
 *   content of Secrets, ConfigMaps or token reviews;
 * - the encryption configuration of Secrets at rest (in the apiserver's Secret): secretbox with
 *   keys kept as Pulumi secrets in the stack's state, and `identity` last so Secrets written
 *   before encryption was turned on stay readable.
 *
 * Keys and rotation. Key `key-<n>` is SHA-256 over the private key of a @pulumi/tls PrivateKey
 * named `...-encryption-key-<n>`: random, created once, stable across `up`s, secret in state.
 * At generation g the configuration lists key g (it encrypts), key g+1 (announced: it decrypts
 * only) and key g-1 (still decrypts what was not rewritten yet). Raising g by one rotates in a single
 * `up`: during the apiserver's rolling update old Pods already read what new Pods write with
 * g+1, and new Pods still read g. Before the next rotation every Secret must be rewritten with the
 * current key (`kubectl get secrets -A -o json | kubectl replace -f -`), since key g-1 is then
 * dropped; docs/architecture.md ("Secrets at rest") has the procedure.
 */
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { stringify } from "yaml";

/**
 * The default audit policy; the first matching rule wins. Levels: None (not logged), Metadata
 * (user, verb, resource, response code: never a body), Request (plus the request body).
 */
export const AUDIT_POLICY = {
  apiVersion: "audit.k8s.io/v1",
  kind: "Policy",
  // One event per request (at ResponseComplete, or ResponseStarted for watches), not two.
  omitStages: ["RequestReceived"],
  rules: [
    // Probes, scrapes and discovery of the version: high volume, nothing an auditor needs.
    { level: "None", nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version", "/metrics"] },
    // Leader election and node heartbeats renew Leases every few seconds; Events record themselves.
    { level: "None", resources: [{ group: "coordination.k8s.io", resources: ["leases"] }] },
    { level: "None", resources: [{ group: "", resources: ["events"] }, { group: "events.k8s.io", resources: ["events"] }] },
    // Credentials and configuration: who touched them, never their content.
    {
      level: "Metadata",
      resources: [
        { group: "", resources: ["secrets", "configmaps", "serviceaccounts/token"] },
        { group: "authentication.k8s.io", resources: ["tokenreviews"] },
        { group: "certificates.k8s.io", resources: ["certificatesigningrequests"] },
      ],
    },
    // Changes to the built-in APIs with what was asked for; custom resources may carry secrets,
    // so they fall through to Metadata.
    {
      level: "Request",
      verbs: ["create", "update", "patch", "delete", "deletecollection"],
      resources: [
        { group: "" },
        { group: "apps" },
        { group: "batch" },
        { group: "policy" },
        { group: "rbac.authorization.k8s.io" },
        { group: "networking.k8s.io" },
        { group: "admissionregistration.k8s.io" },
        { group: "storage.k8s.io" },
        { group: "scheduling.k8s.io" },
        { group: "apiextensions.k8s.io" },
      ],
      omitManagedFields: true,
    },
    { level: "Metadata" },
  ],
};

export function auditPolicyYaml(): string {
  return stringify(AUDIT_POLICY);
}

export interface EncryptionKey {
  readonly name: string;
  /** base64 of 32 bytes. */
  readonly secret: string;
}

/** A secretbox key (32 bytes, base64) from a private key's PEM; domain-separated from any other use. */
export function encryptionKeyFromSeed(seedPem: string): string {
  return createHash("sha256").update("kube-on-kube secretbox key v1\0").update(seedPem).digest("base64");
}

/** The EncryptionConfiguration: the first key encrypts, every key decrypts, identity reads plaintext. */
export function encryptionConfigurationYaml(keys: readonly EncryptionKey[]): string {
  return stringify({
    apiVersion: "apiserver.config.k8s.io/v1",
    kind: "EncryptionConfiguration",
    resources: [{ resources: ["secrets"], providers: [{ secretbox: { keys: keys.map((k) => ({ name: k.name, secret: k.secret })) } }, { identity: {} }] }],
  });
}

/** Generations whose keys the configuration holds, the encrypting one first. */
export function keyGenerations(generation: number): number[] {
  return [generation, generation + 1, ...(generation > 1 ? [generation - 1] : [])];
}

/**
 * The encryption configuration of generation `generation` (a Pulumi secret), with one tls
 * PrivateKey per key as a child of `parent`.
 */
export function secretEncryptionConfig(resourcePrefix: string, generation: number, parent: pulumi.Resource): pulumi.Output<string> {
  const keys = keyGenerations(generation).map((n) => {
    const seed = new tls.PrivateKey(`${resourcePrefix}-encryption-key-${n}`, { algorithm: "ED25519" }, { parent });
    return seed.privateKeyPem.apply((pem) => ({ name: `key-${n}`, secret: encryptionKeyFromSeed(pem) }));
  });
  return pulumi.secret(pulumi.all(keys).apply(encryptionConfigurationYaml));
}
