import { generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { ANYWHERE_LENGTH, MIN_SECRET_LENGTH, REDACTED, redact, redactDeep } from "../../src/runtime/redact";

const b64 = (text: string) => Buffer.from(text).toString("base64");
const { privateKey: RSA_KEY } = generateKeyPairSync("rsa", { modulusLength: 1024, privateKeyEncoding: { type: "pkcs1", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
const CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUTestOnlyNotARealCertificate\n-----END CERTIFICATE-----\n";

describe("redact: known values", () => {
  it("removes every occurrence of each secret and its base64 forms, padded or not", () => {
    const secret = "s3cr3t-passphrase";
    const padded = b64(secret);
    expect(padded.endsWith("=")).toBe(true);
    const text = `error: passphrase ${secret} is wrong (config: ${padded}); unpadded ${padded.replace(/=+$/, "")}; again ${secret}`;
    expect(redact(text, [secret])).toBe(`error: passphrase ${REDACTED} is wrong (config: ${REDACTED}); unpadded ${REDACTED}; again ${REDACTED}`);
  });

  it("removes a longer secret whole even when a shorter one is inside it", () => {
    expect(redact("key=abcdef123456", ["abcdef", "abcdef123456"])).toBe(`key=${REDACTED}`);
  });

  it("does not cut words: a short secret is redacted only where it stands alone", () => {
    // The secret "k" used to turn this into "un[REDACTED]nown option".
    expect(redact("unknown option -k", ["k"])).toBe("unknown option -k");
    expect(redact("user hunter2 and hunter2x and xhunter2 and (hunter2)", ["hunter2"])).toBe(`user ${REDACTED} and hunter2x and xhunter2 and (${REDACTED})`);
  });

  it("ignores values below the minimum length, and empty ones", () => {
    expect(MIN_SECRET_LENGTH).toBe(6);
    expect(redact("root login failed for admin", ["root", "admin", ""])).toBe("root login failed for admin");
  });

  it("redacts a long secret even glued to other characters", () => {
    const secret = "Zq8-long-random-token-Zq8";
    expect(secret.length).toBeGreaterThanOrEqual(ANYWHERE_LENGTH);
    expect(redact(`x${secret}y`, [secret])).toBe(`x${REDACTED}y`);
  });

  it("finds a known secret inside a base64 document at any position", () => {
    const doc = b64(`apiVersion: v1\nkind: Config\nnote: the passphrase is correct-horse-battery\n`);
    expect(redact(`data: ${doc}`, ["correct-horse-battery"])).toBe(`data: ${REDACTED}`);
  });
});

describe("redact: shapes that are secret whoever handed them over", () => {
  it("removes PEM private keys, whole or cut off", () => {
    expect(redact(`diff: key: ${RSA_KEY} done`)).toBe(`diff: key: ${REDACTED}\n done`);
    expect(redact("-----BEGIN PRIVATE KEY-----\nMIIE cut off")).toBe(REDACTED);
    expect(redact("message cut at -----BEGIN RSA PRIV")).toBe(`message cut at ${REDACTED}`);
  });

  it("removes base64 PEM keys as a kubeconfig carries them, keeps certificates", () => {
    const kubeconfig = YAML.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: "https://10.0.0.1:6443", "certificate-authority-data": b64(CERT) } }],
      users: [{ name: "admin", user: { "client-certificate-data": b64(CERT), "client-key-data": b64(RSA_KEY) } }],
    });
    const out = redact(`kubectl failed with config:\n${kubeconfig}`);
    expect(out).not.toContain(b64(RSA_KEY).slice(0, 40));
    expect(out).toContain(`client-key-data: ${REDACTED}`);
    expect(out).toContain(`certificate-authority-data: ${b64(CERT)}`);
  });

  it("removes a base64 PEM key wherever it is, even without the field name, and inside base64 twice", () => {
    const blob = b64(RSA_KEY);
    expect(redact(`value=${blob}.`)).toBe(`value=${REDACTED}.`);
    expect(redact(`secret data: ${b64(`client-key-data: ${blob}\n`)}`)).toBe(`secret data: ${REDACTED}`);
    expect(redact(`cut: ${blob.slice(0, 30)}`)).toBe(`cut: ${REDACTED}`);
  });

  it("removes bearer tokens and credential fields in YAML, JSON, flags and query strings", () => {
    const token = "eyJhbGciOiJSUzI1NiJ9.payload.sig";
    expect(redact(`GET /api Authorization: Bearer ${token} 401`)).toBe(`GET /api Authorization: Bearer ${REDACTED} 401`);
    expect(redact(`{"headers":{"authorization":"Bearer ${token}"}}`)).toBe(`{"headers":{"authorization":"Bearer ${REDACTED}"}}`);
    expect(redact(`sent bearer ${token}`)).toBe(`sent bearer ${REDACTED}`);
    expect(redact(`users:\n- name: a\n  user:\n    token: ${token}\n`)).toBe(`users:\n- name: a\n  user:\n    token: ${REDACTED}\n`);
    expect(redact(`{"token":"${token}","kind":"x"}`)).toBe(`{"token":"${REDACTED}","kind":"x"}`);
    expect(redact(`{"password": "p w d"}`)).toBe(`{"password": "${REDACTED}"}`);
    expect(redact(`kubeadm join --token=abcdef.0123456789abcdef --discovery`)).toBe(`kubeadm join --token=${REDACTED} --discovery`);
    expect(redact(`https://h/x?access_token=abc123&y=1`)).toBe(`https://h/x?access_token=${REDACTED}&y=1`);
    expect(redact(`PULUMI_CONFIG_PASSPHRASE=hunter22 pulumi up`)).toBe(`PULUMI_CONFIG_PASSPHRASE=${REDACTED} pulumi up`);
    expect(redact(`bootstrapToken: abcdef.0123456789abcdef`)).toBe(`bootstrapToken: ${REDACTED}`);
  });

  it("leaves ordinary operator messages alone", () => {
    const messages = [
      "all fine",
      "Bearer tokens are refused",
      "masters of v1.36.3 are Ready",
      "--token-ttl=24h",
      "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
      "stack fleet.prod-a: up failed: kubernetes:apps/v1:StatefulSet prod-a-etcd: 0/3 Pods ready",
    ];
    for (const m of messages) expect(redact(m, ["some-passphrase"])).toBe(m);
  });
});

describe("redactDeep", () => {
  it("walks nested status objects", () => {
    const status = { conditions: [{ type: "Ready", message: "ssh: password hunter2 rejected" }], lastOperation: { message: "hunter2" }, n: 3, ok: true };
    expect(redactDeep(status, ["hunter2"])).toEqual({
      conditions: [{ type: "Ready", message: `ssh: password ${REDACTED} rejected` }],
      lastOperation: { message: REDACTED },
      n: 3,
      ok: true,
    });
  });
});

describe("redact (properties)", () => {
  // Secrets are drawn from characters not in the "[REDACTED]" marker and without letters the
  // boundary rule looks at, so only the rule under test decides.
  it("never leaves a long secret in the output, wherever it is", () => {
    fc.assert(
      fc.property(fc.stringMatching(new RegExp(`^[a-z0-9!@#$%&*()_+=.-]{${ANYWHERE_LENGTH},48}$`)), fc.array(fc.string()), (secret, parts) => {
        expect(redact(parts.join(secret), [secret])).not.toContain(secret);
      }),
    );
  });

  it("never leaves a short secret that stands alone between separators", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9]{6,15}$/), fc.array(fc.stringMatching(/^[ :;,\n"'=]+$/)), (secret, seps) => {
        const text = [" ", ...seps, " "].join(secret);
        expect(redact(text, [secret])).not.toContain(secret);
      }),
    );
  });
});
