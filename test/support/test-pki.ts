/**
 * Real certificates for the tests of the certificate facts (runtime/certificates.ts) and their
 * callers: a CA and leaves it signs with a chosen validity, made in memory with @peculiar/x509
 * (as src/dev/pki.ts does); nothing is written anywhere.
 */
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export interface TestCa {
  readonly pem: string;
  /** A leaf for `commonName`, valid from `notBefore` to `notAfter`, signed by this CA. */
  leaf(commonName: string, notBefore: Date, notAfter: Date): Promise<string>;
}

const serial = () => Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString("hex").replace(/^./, "1");
const keys = async () => (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;

export async function testCa(name: string): Promise<TestCa> {
  const pair = await keys();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date("2026-01-01T00:00:00Z"),
    notAfter: new Date("2036-01-01T00:00:00Z"),
    signingAlgorithm: ALGORITHM,
    keys: pair,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  return {
    pem: `${ca.toString("pem")}\n`,
    leaf: async (commonName, notBefore, notAfter) => {
      const leafKeys = await keys();
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${commonName}, O=system:nodes`,
        issuer: ca.subject,
        notBefore,
        notAfter,
        signingAlgorithm: ALGORITHM,
        publicKey: leafKeys.publicKey,
        signingKey: pair.privateKey,
      });
      return `${cert.toString("pem")}\n`;
    },
  };
}
