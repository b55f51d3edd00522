import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensurePki } from "../../src/dev/pki";
import { bundleFingerprint, certificateFingerprint, certificateNotAfter, parseCertificates } from "../../src/runtime/certificates";

describe("certificate facts", () => {
  let dir: string;
  let ca: string;
  let leaf: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "kok-certs-"));
    await ensurePki(dir, [{ file: "leaf", commonName: "leaf", usage: "client" }]);
    ca = readFileSync(join(dir, "ca.crt"), "utf8");
    leaf = readFileSync(join(dir, "leaf.crt"), "utf8");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("names a certificate by the sha256 of its DER, whatever its PEM line breaks", () => {
    const fingerprint = certificateFingerprint(ca);
    expect(fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(certificateFingerprint(`\n\n${ca.replace(/\n/g, "\r\n")}`)).toBe(fingerprint);
    expect(certificateFingerprint(leaf)).not.toBe(fingerprint);
  });

  it("names a bundle by its set of certificates: order and duplicates do not matter, adding one does", () => {
    const both = bundleFingerprint(`${ca}${leaf}`);
    expect(bundleFingerprint(`${leaf}${ca}${ca}`)).toBe(both);
    expect(bundleFingerprint(ca)).not.toBe(both);
    expect(parseCertificates(`${ca}${leaf}`, "bundle")).toHaveLength(2);
  });

  it("reads the expiry as RFC 3339 in UTC", () => {
    const notAfter = certificateNotAfter(leaf);
    expect(notAfter).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(Date.parse(certificateNotAfter(ca))).toBeGreaterThan(Date.parse(notAfter));
  });

  it("refuses text with no certificate, and a broken one, naming what it read and never quoting it", () => {
    expect(() => certificateFingerprint("secret-ish text", "Secret ns/ca key ca.crt")).toThrow("Secret ns/ca key ca.crt holds no PEM certificate");
    const broken = "-----BEGIN CERTIFICATE-----\nQUJDREVGRw==\n-----END CERTIFICATE-----";
    expect(() => bundleFingerprint(`${ca}${broken}`, "bundle")).toThrow(/^bundle: certificate 2 of 2 is not a valid X.509 certificate$/);
    try {
      bundleFingerprint(broken, "bundle");
    } catch (error) {
      expect(String(error)).not.toContain("QUJDREVGRw");
    }
  });
});
