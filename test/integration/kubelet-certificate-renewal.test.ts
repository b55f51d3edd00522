/**
 * The kubelet's certificates with the real engine and @pulumi/tls (no host: only the certificate
 * resources of kubelet-certificates.ts): with a validity of one hour, an `up` with the same inputs
 * keeps them (the provider's own early renewal is off for so short a validity), a new renewal token
 * re-issues both with new keys, the same token again keeps them, a state that recorded no token
 * keeps its key when the token first appears (the engine compares only recorded triggers: an
 * operator upgrade re-issues nothing), and a new signing CA re-issues them signed by it. This is what the operator's planned renewal and a CA rotation rely on.
 */
import { X509Certificate } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kubeletCredentials, kubeletServingCertificate } from "../../src/components/kubelet-certificates";
import type { WorkerNodeArgs } from "../../src/components/worker-node";
import { certificateFingerprint } from "../../src/runtime/certificates";
import { engineStack, requireEngine, type EngineStack } from "../support/worker-engine";
import { machine } from "../support/worker-fixtures";

/** What the next `up` is given. */
const inputs = { renewal: undefined as number | undefined, ca: "a" as "a" | "b", legacyTrigger: false };
let target: EngineStack;
let legacyKey = "";

interface Issued {
  client: string;
  clientCa: string;
  serving: string;
  servingCa: string;
}

async function up(): Promise<Issued> {
  const result = await target.stack.up();
  expect(result.summary.result).toBe("succeeded");
  const out = result.outputs;
  legacyKey = out.legacy.value as string;
  return { client: out.client.value as string, clientCa: out.clientCa.value as string, serving: out.serving.value as string, servingCa: out.servingCa.value as string };
}

beforeAll(async () => {
  requireEngine(["tls-5.3.0"]);
  target = await engineStack("kubelet-renewal", async () => {
    const parent = new pulumi.ComponentResource("test:index:Kubelet", "renewal");
    // Two CAs, as during a rotation: the one named by `inputs.ca` signs.
    const cas = Object.fromEntries(
      (["a", "b"] as const).map((g) => {
        const key = new tls.PrivateKey(`ca-${g}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent });
        const cert = new tls.SelfSignedCert(
          `ca-${g}`,
          { privateKeyPem: key.privateKeyPem, subject: { commonName: `kubernetes-ca-${g}` }, isCaCertificate: true, validityPeriodHours: 24, allowedUses: ["cert_signing", "digital_signature"] },
          { parent },
        );
        return [g, { cert: cert.certPem, key: key.privateKeyPem }];
      }),
    );
    const args: WorkerNodeArgs = {
      machine: machine({ ip: "192.0.2.41", hostname: "renewal-0" }),
      credentials: { password: "unused" },
      cluster: { endpoint: "https://192.0.2.1:6443", caCertificate: cas[inputs.ca].cert, caPrivateKey: cas[inputs.ca].key },
      certificateValidityHours: 1,
      renewal: inputs.renewal,
    };
    // A key as states before the renewal token recorded it (no trigger), and then with one.
    const legacy = new tls.PrivateKey("legacy-key", { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent, ...(inputs.legacyTrigger ? { replacementTrigger: { renewal: 0 } } : {}) });
    const client = kubeletCredentials("renewal", parent, args).issued!;
    const serving = kubeletServingCertificate("renewal", parent, args)!.issued;
    return { client: client.certPem, clientCa: client.caCertPem, serving: serving.certPem, servingCa: serving.caCertPem, legacy: legacy.publicKeyPem };
  });
}, 120_000);

afterAll(async () => {
  try {
    await target?.stack.destroy();
  } finally {
    target?.remove();
  }
});

const publicKey = (pem: string) => new X509Certificate(pem).publicKey.export({ format: "pem", type: "spki" }).toString();

describe("the kubelet's certificates under the renewal token", () => {
  it("are kept by an `up` with the same inputs and re-issued with new keys by a new token, only once", async () => {
    const first = await up();
    expect(Date.parse(new X509Certificate(first.client).validTo) - Date.parse(new X509Certificate(first.client).validFrom)).toBe(3_600_000);
    const again = await up();
    expect(again).toEqual(first);

    inputs.renewal = 1;
    const renewed = await up();
    expect(certificateFingerprint(renewed.client)).not.toBe(certificateFingerprint(first.client));
    expect(certificateFingerprint(renewed.serving)).not.toBe(certificateFingerprint(first.serving));
    expect(publicKey(renewed.client)).not.toBe(publicKey(first.client));
    expect(publicKey(renewed.serving)).not.toBe(publicKey(first.serving));
    expect(renewed.clientCa).toBe(first.clientCa);
    expect(await up()).toEqual(renewed);
  }, 300_000);

  it("are kept when a state recorded before the token first records it (an operator upgrade re-issues nothing)", async () => {
    await up();
    const before = legacyKey;
    inputs.legacyTrigger = true;
    await up();
    expect(legacyKey).toBe(before);
  }, 300_000);

  it("are re-issued by a new signing CA, signed by it", async () => {
    const before = await up();
    inputs.ca = "b";
    const after = await up();
    expect(certificateFingerprint(after.clientCa)).not.toBe(certificateFingerprint(before.clientCa));
    expect(new X509Certificate(after.client).verify(new X509Certificate(after.clientCa).publicKey)).toBe(true);
    expect(new X509Certificate(after.serving).verify(new X509Certificate(after.servingCa).publicKey)).toBe(true);
    expect(new X509Certificate(after.client).verify(new X509Certificate(before.clientCa).publicKey)).toBe(false);
  }, 300_000);
});
