/**
 * ClusterPki: every CA, key pair and leaf certificate the masters of one business cluster need,
 * with @pulumi/tls. Leaves carry `earlyRenewalHours`, so a `pulumi refresh` inside the renewal
 * window marks them for replacement; the new PEMs change the checksum annotation of the pods that
 * mount them, which rolls those pods.
 */
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { ETCD_BACKUP_CLIENT_CN } from "../api/v1alpha1";
import { etcdCaPlan, generationRole, NO_ROTATION, pemBundle, rotationPlan, type CaRotationInput } from "./ca-rotation";
import { apiServerSANs, etcdSANs, type ClusterContext, type SubjectAltNames } from "./cluster-context";
import { componentType, withLegacyAlias } from "./type-tokens";

export interface PemPair {
  readonly certPem: pulumi.Output<string>;
  /** Always a Pulumi secret. */
  readonly keyPem: pulumi.Output<string>;
}

export interface ClusterPkiArgs {
  readonly cluster: ClusterContext;
  /** Leaf lifetimes in hours, overriding `spec.certificates` (see ControlPlaneArgs.rotationDrill). */
  readonly leafHours?: { readonly validity: number; readonly renewBefore: number };
  /** The step of a CA rotation (ca-rotation.ts). Default: none ever, generation 0. */
  readonly rotation?: CaRotationInput;
}

type Usage = "server" | "client" | "peer";
const USES: Record<Usage, string[]> = {
  server: ["digital_signature", "key_encipherment", "server_auth"],
  client: ["digital_signature", "key_encipherment", "client_auth"],
  peer: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
};
const CA_USES = ["cert_signing", "crl_signing", "digital_signature", "key_encipherment"];
const HOURS_PER_DAY = 24;

/**
 * Days before expiry at which a leaf is re-issued: `renewBeforeDays`, but never more than a third
 * of the leaf's own validity, so a short-lived user certificate (30 days under a 30-day window)
 * is renewed after 20 days instead of on every refresh.
 */
export function renewalWindowDays(validityDays: number, renewBeforeDays: number): number {
  return Math.min(renewBeforeDays, Math.floor(validityDays / 3));
}

interface LeafRequest {
  readonly commonName: string;
  readonly organization?: string;
  readonly usage: Usage;
  readonly sans?: SubjectAltNames;
  readonly validityDays?: number;
}

export class ClusterPki extends pulumi.ComponentResource {
  /**
   * The newest cluster CA: signs the certificates the apiserver checks, kubelets' included (the CA
   * Secret hands it to Machines). During phase 1 of a rotation the previous CA still signs the
   * apiserver's serving and kubelet-client certificates (ca-rotation.ts).
   */
  readonly clusterCa: PemPair;
  /** Every cluster CA trusted now (PEM, the newest first): apiserver client and kubelet CA, kubeconfigs' CA data. */
  readonly clusterTrustBundle: pulumi.Output<string>;
  /** The etcd CA that signs every etcd certificate now (the previous one during a rotation's first etcd step). */
  readonly etcdCa: PemPair;
  /** Every etcd CA trusted now (PEM, the newest first): members' client and peer CA, the apiserver's and the Jobs' CA. */
  readonly etcdTrustBundle: pulumi.Output<string>;
  /** The newest front-proxy CA. */
  readonly frontProxyCa: PemPair;
  /** Every front-proxy CA trusted now: the requestheader client CA of the apiserver and controller-manager. */
  readonly frontProxyTrustBundle: pulumi.Output<string>;
  /**
   * Signs ServiceAccount tokens (`privateKeyPem`); `publicKeyPem` holds every public key that
   * verifies them (one, or two around a rotation); `signingPublicKeyPem` is the signer's alone.
   */
  readonly serviceAccount: {
    readonly publicKeyPem: pulumi.Output<string>;
    readonly privateKeyPem: pulumi.Output<string>;
    readonly signingPublicKeyPem: pulumi.Output<string>;
  };
  readonly apiServer: PemPair;
  readonly apiServerKubeletClient: PemPair;
  readonly apiServerEtcdClient: PemPair;
  readonly etcdServer: PemPair;
  readonly etcdPeer: PemPair;
  readonly frontProxyClient: PemPair;
  readonly controllerManager: PemPair;
  readonly scheduler: PemPair;
  readonly admin: PemPair;
  /** The backup job's etcd client (a leaf of the etcd CA); only with `spec.etcd.backup`. */
  readonly etcdBackupClient?: PemPair;
  /** One per `spec.kubeconfigs` entry, keyed by its name, each signed by that entry's own CA. */
  readonly users: Record<string, PemPair>;
  /**
   * One CA per `spec.kubeconfigs` entry, keyed by its name: it signs that entry's certificate and
   * nothing else. Kubernetes has no revocation of client certificates (no CRL, no OCSP), so the
   * apiserver trusts an entry's CA only while the entry exists (`clientCaBundle`): removing the
   * entry removes its CA, the apiserver rolls with the smaller bundle, and every certificate the
   * entry ever had is refused, without rotating the cluster CA under every other client. Its key
   * stays in the stack's encrypted state, as the cluster CA's does.
   */
  readonly userCas: Record<string, PemPair>;
  /** What the apiserver accepts client certificates from (--client-ca-file): the cluster trust bundle, then each entry's CA by name. */
  readonly clientCaBundle: pulumi.Output<string>;
  /** The earliest expiry among the leaves (RFC 3339). */
  readonly certificatesExpireAt: pulumi.Output<string>;

  constructor(name: string, args: ClusterPkiArgs, opts?: pulumi.ComponentResourceOptions) {
    super(componentType("ClusterPki"), name, {}, withLegacyAlias("ClusterPki", opts));
    const { cluster } = args;
    const { newKey, newCa, issue, expiries } = certificateIssuer(name, this, args);

    const plan = rotationPlan(args.rotation ?? NO_ROTATION);
    // One CA per generation the step holds, under its generation's stable name (ca-rotation.ts).
    const generations = (base: string) => new Map(plan.caGenerations.map((g) => [g, newCa(generationRole(base, g), `${cluster.name}-${generationRole(base, g)}`)]));
    const clusterCas = generations("ca");
    const frontProxyCas = generations("front-proxy-ca");
    const bundle = (cas: Map<number, PemPair>) => pulumi.all(plan.trusted.map((g) => cas.get(g)!.certPem)).apply(pemBundle);
    this.clusterCa = clusterCas.get(plan.clientSigner)!;
    this.clusterTrustBundle = bundle(clusterCas);
    // The etcd CA's generations are its own (a cluster rotated before etcd's CA rotated is at a
    // later cluster generation than etcd generation).
    const etcdPlan = etcdCaPlan((args.rotation ?? NO_ROTATION).etcd);
    const etcdCas = new Map(etcdPlan.caGenerations.map((g) => [g, newCa(generationRole("etcd-ca", g), `${cluster.name}-${generationRole("etcd-ca", g)}`)]));
    this.etcdCa = etcdCas.get(etcdPlan.signer)!;
    this.etcdTrustBundle = pulumi.all(etcdPlan.trusted.map((g) => etcdCas.get(g)!.certPem)).apply(pemBundle);
    this.frontProxyCa = frontProxyCas.get(plan.clientSigner)!;
    this.frontProxyTrustBundle = bundle(frontProxyCas);
    const saKeys = new Map(plan.serviceAccountKeys.map((g) => [g, newKey(generationRole("service-account", g))]));
    const saSigner = saKeys.get(plan.serviceAccountSigner)!;
    this.serviceAccount = {
      publicKeyPem: pulumi.all([...saKeys.values()].map((k) => k.publicKeyPem)).apply(pemBundle),
      privateKeyPem: pulumi.secret(saSigner.privateKeyPem),
      signingPublicKeyPem: saSigner.publicKeyPem,
    };

    // Checked by the apiserver, which trusts the new CA in the same update: the newest CA.
    const ca = this.clusterCa;
    // Checked by clients, kubelets and aggregated apiservers that may not trust it yet: the
    // previous CA until phase 2.
    const serverCa = clusterCas.get(plan.serverSigner)!;
    this.apiServer = issue("apiserver", serverCa, { commonName: "kube-apiserver", usage: "server", sans: apiServerSANs(cluster) });
    this.apiServerKubeletClient = issue("apiserver-kubelet-client", serverCa, {
      commonName: "kube-apiserver-kubelet-client",
      organization: "system:masters",
      usage: "client",
    });
    this.apiServerEtcdClient = issue("apiserver-etcd-client", this.etcdCa, { commonName: "kube-apiserver-etcd-client", usage: "client" });
    const etcdNames = etcdSANs(cluster);
    this.etcdServer = issue("etcd-server", this.etcdCa, { commonName: `${cluster.name}-etcd`, usage: "peer", sans: etcdNames });
    this.etcdPeer = issue("etcd-peer", this.etcdCa, { commonName: `${cluster.name}-etcd-peer`, usage: "peer", sans: etcdNames });
    // Only when backups are configured: a cluster without them gets no new resources.
    if (cluster.spec.etcd.backup) {
      this.etcdBackupClient = issue("etcd-backup-client", this.etcdCa, { commonName: ETCD_BACKUP_CLIENT_CN, usage: "client" });
    }
    this.frontProxyClient = issue("front-proxy-client", frontProxyCas.get(plan.serverSigner)!, { commonName: "front-proxy-client", usage: "client" });
    this.controllerManager = issue("controller-manager", ca, { commonName: "system:kube-controller-manager", usage: "client" });
    this.scheduler = issue("scheduler", ca, { commonName: "system:kube-scheduler", usage: "client" });
    this.admin = issue("admin", ca, { commonName: "kubernetes-admin", organization: "system:masters", usage: "client" });
    // `users-ca-<entry>`: no leaf role (`user-<entry>`) can spell it, whatever the entry's name.
    const entries = [...cluster.spec.kubeconfigs].sort((a, b) => a.name.localeCompare(b.name));
    this.userCas = Object.fromEntries(entries.map((k) => [k.name, newCa(`users-ca-${k.name}`, `${cluster.name}-user-${k.name}`)]));
    this.users = Object.fromEntries(
      entries.map((k) => [
        k.name,
        issue(`user-${k.name}`, this.userCas[k.name], { commonName: k.user, organization: k.groups[0], usage: "client", validityDays: k.validityDays }),
      ]),
    );
    this.clientCaBundle = pulumi
      .all([this.clusterTrustBundle, ...entries.map((k) => this.userCas[k.name].certPem)])
      .apply(([trusted, ...users]) => pemBundle([trusted, ...users]));
    this.certificatesExpireAt = pulumi.all(expiries).apply((ends) => [...ends].sort()[0]);

    this.registerOutputs({ clusterCaCertificate: this.clusterCa.certPem, certificatesExpireAt: this.certificatesExpireAt });
  }
}

/**
 * Makes the keys and certificates of one ClusterPki (ECDSA P-256, named `<name>-<role>`): CAs
 * self-signed for `caValidityDays`, leaves signed by a CA and renewed inside their window.
 * `expiries` collects every leaf's end of validity.
 */
function certificateIssuer(name: string, parent: pulumi.Resource, args: ClusterPkiArgs) {
  const { cluster } = args;
  const certs = cluster.spec.certificates;
  const child = { parent };
  const expiries: pulumi.Output<string>[] = [];

  const newKey = (role: string) =>
    new tls.PrivateKey(`${name}-${role}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);

  const newCa = (role: string, commonName: string): PemPair & { key: tls.PrivateKey } => {
    const key = newKey(role);
    const cert = new tls.SelfSignedCert(
      `${name}-${role}`,
      {
        privateKeyPem: key.privateKeyPem,
        subject: { commonName, organization: "kube-on-kube" },
        isCaCertificate: true,
        validityPeriodHours: certs.caValidityDays * HOURS_PER_DAY,
        allowedUses: CA_USES,
      },
      child,
    );
    return { key, certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) };
  };

  const issue = (role: string, ca: PemPair, req: LeafRequest): PemPair => {
    const key = newKey(role);
    const csr = new tls.CertRequest(
      `${name}-${role}-csr`,
      {
        privateKeyPem: key.privateKeyPem,
        subject: { commonName: req.commonName, organization: req.organization },
        dnsNames: req.sans?.dnsNames,
        ipAddresses: req.sans?.ipAddresses,
      },
      child,
    );
    const cert = new tls.LocallySignedCert(
      `${name}-${role}`,
      {
        certRequestPem: csr.certRequestPem,
        caCertPem: ca.certPem,
        caPrivateKeyPem: ca.keyPem,
        validityPeriodHours: args.leafHours?.validity ?? (req.validityDays ?? certs.validityDays) * HOURS_PER_DAY,
        earlyRenewalHours:
          args.leafHours?.renewBefore ?? renewalWindowDays(req.validityDays ?? certs.validityDays, certs.renewBeforeDays) * HOURS_PER_DAY,
        allowedUses: USES[req.usage],
      },
      child,
    );
    expiries.push(cert.validityEndTime);
    return { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) };
  };
  return { newKey, newCa, issue, expiries };
}
