import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { REDACTED, redact, redactDeep } from "../../src/operator/redact";

describe("redact", () => {
  it("removes every occurrence of each secret and its base64 form", () => {
    const secret = "s3cr3t-passphrase";
    const b64 = Buffer.from(secret).toString("base64");
    const text = `error: passphrase ${secret} is wrong (config: ${b64}); again ${secret}`;
    const out = redact(text, [secret]);
    expect(out).not.toContain(secret);
    expect(out).not.toContain(b64);
    expect(out).toBe(`error: passphrase ${REDACTED} is wrong (config: ${REDACTED}); again ${REDACTED}`);
  });

  it("removes a longer secret whole even when a shorter one is inside it", () => {
    expect(redact("token=abcdef123456", ["abc", "abcdef123456"])).toBe(`token=${REDACTED}`);
  });

  it("removes PEM private keys even when nobody said they were secret", () => {
    const pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----";
    expect(redact(`diff: key: ${pem} done`)).toBe(`diff: key: ${REDACTED} done`);
    expect(redact("-----BEGIN PRIVATE KEY-----\nMIIE cut off")).toBe(REDACTED);
  });

  it("leaves text without secrets alone and ignores empty secrets", () => {
    expect(redact("all fine", ["", "other"])).toBe("all fine");
  });

  it("walks nested status objects", () => {
    const status = { conditions: [{ type: "Ready", message: "ssh: password hunter2 rejected" }], lastOperation: { message: "hunter2" }, n: 3, ok: true };
    expect(redactDeep(status, ["hunter2"])).toEqual({
      conditions: [{ type: "Ready", message: `ssh: password ${REDACTED} rejected` }],
      lastOperation: { message: REDACTED },
      n: 3,
      ok: true,
    });
  });

  // Secrets are drawn from characters not in the "[REDACTED]" marker: a secret like "E" or "]x"
  // could otherwise re-appear from the marker itself, which no real passphrase or token does.
  it("never leaves a secret in the output (property)", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9!@#$%&*()_+=.-]{1,32}$/), fc.array(fc.string()), (secret, parts) => {
        expect(redact(parts.join(secret), [secret])).not.toContain(secret);
      }),
    );
  });
});
