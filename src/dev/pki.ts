/**
 * Certificates of the local meta-cluster, made by our own code (@peculiar/x509 over WebCrypto):
 * one CA, etcd's serving and client certificates, the apiserver's serving certificate, a client
 * certificate per user (admin, controller-manager, scheduler) and the service-account key pair.
 * Files that already exist are kept, so `up` after `down` reuses the same CA and kubeconfigs.
 */
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata polyfill first.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
// The library's types are the DOM's; Node's WebCrypto implements the same interface.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const DAY = 24 * 60 * 60 * 1000;

interface Issuer {
  readonly cert: x509.X509Certificate;
  readonly key: CryptoKey;
}

export interface LeafRequest {
  /** File stem: writes `<file>.crt` and `<file>.key`. */
  readonly file: string;
  readonly commonName: string;
  readonly organization?: string;
  readonly usage: "server" | "client" | "both";
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f; // a positive INTEGER, as RFC 5280 requires
  return Buffer.from(bytes).toString("hex");
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as CryptoKeyPair;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

async function publicKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey("spki", key), "PUBLIC KEY");
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  return webcrypto.subtle.importKey("pkcs8", x509.PemConverter.decodeFirst(pem), ALGORITHM, true, ["sign"]);
}

function writeSecret(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
}

/** The CA, created once and then loaded from `ca.crt`/`ca.key`. */
async function loadOrCreateCa(dir: string): Promise<Issuer> {
  const certPath = join(dir, "ca.crt");
  const keyPath = join(dir, "ca.key");
  if (existsSync(certPath) && existsSync(keyPath)) {
    return { cert: new x509.X509Certificate(readFileSync(certPath, "utf8")), key: await importPrivateKey(readFileSync(keyPath, "utf8")) };
  }
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: "CN=kube-on-kube dev meta-cluster CA",
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3650 * DAY),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  writeFileSync(certPath, cert.toString("pem") + "\n");
  writeSecret(keyPath, await privateKeyPem(keys.privateKey));
  return { cert, key: keys.privateKey };
}

async function issueLeaf(dir: string, ca: Issuer, req: LeafRequest): Promise<void> {
  const certPath = join(dir, `${req.file}.crt`);
  if (existsSync(certPath) && existsSync(join(dir, `${req.file}.key`))) return;
  const keys = await newKeys();
  const now = Date.now();
  const usages = req.usage === "server" ? [SERVER_AUTH] : req.usage === "client" ? [CLIENT_AUTH] : [SERVER_AUTH, CLIENT_AUTH];
  const altNames = [
    ...(req.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(req.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
  ];
  const subject = `CN=${req.commonName}${req.organization ? `, O=${req.organization}` : ""}`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: ca.cert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 365 * DAY),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(usages),
      ...(altNames.length ? [new x509.SubjectAlternativeNameExtension(altNames)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  writeFileSync(certPath, cert.toString("pem") + "\n");
  writeSecret(join(dir, `${req.file}.key`), await privateKeyPem(keys.privateKey));
}

/** The service-account signing key pair (`sa.key`, `sa.pub`). */
async function ensureServiceAccountKeys(dir: string): Promise<void> {
  if (existsSync(join(dir, "sa.key")) && existsSync(join(dir, "sa.pub"))) return;
  const keys = await newKeys();
  writeSecret(join(dir, "sa.key"), await privateKeyPem(keys.privateKey));
  writeFileSync(join(dir, "sa.pub"), await publicKeyPem(keys.publicKey));
}

/** Makes whatever of the meta-cluster's PKI is missing in `dir`. */
export async function ensurePki(dir: string, leaves: readonly LeafRequest[]): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await loadOrCreateCa(dir);
  for (const leaf of leaves) await issueLeaf(dir, ca, leaf);
  await ensureServiceAccountKeys(dir);
}
