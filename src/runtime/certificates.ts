/**
 * Facts read from PEM certificates with Node's own X.509 parser: a fingerprint that names a CA (or
 * a trust bundle) in status without quoting it, and a certificate's expiry. Used by the Cluster
 * side (which CA signs, which CAs are trusted) and the Machine side (which CA signed a kubelet's
 * certificate, which bundle a host trusts), so both compare the same strings.
 */
import { X509Certificate, createHash } from "node:crypto";

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate of a PEM bundle, in order; an error names `what` when there is none or one is malformed. */
export function parseCertificates(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new Error(`${what} holds no PEM certificate`);
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch {
      // Never quote the block: it may be anything a Secret held.
      throw new Error(`${what}: certificate ${index + 1} of ${blocks.length} is not a valid X.509 certificate`);
    }
  });
}

/** `sha256:<hex>` of one certificate's DER: the same certificate gives the same string whatever its PEM line breaks. */
export function certificateFingerprint(pem: string, what = "the certificate"): string {
  const [first] = parseCertificates(pem, what);
  return `sha256:${createHash("sha256").update(first.raw).digest("hex")}`;
}

/**
 * `sha256:<hex>` of a trust bundle: the sorted fingerprints of its certificates, so the order of
 * the CAs and duplicates do not matter, and any added or removed CA changes it.
 */
export function bundleFingerprint(pem: string, what = "the trust bundle"): string {
  const each = [...new Set(parseCertificates(pem, what).map((cert) => createHash("sha256").update(cert.raw).digest("hex")))].sort();
  return `sha256:${createHash("sha256").update(each.join("\n")).digest("hex")}`;
}

/** The end of the first certificate's validity, as RFC 3339 (UTC, seconds). */
export function certificateNotAfter(pem: string, what = "the certificate"): string {
  const [first] = parseCertificates(pem, what);
  return new Date(first.validTo).toISOString().replace(/\.\d{3}Z$/, "Z");
}
