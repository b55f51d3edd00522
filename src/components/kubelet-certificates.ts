/**
 * The kubelet's certificates, both signed by the cluster CA with @pulumi/tls: its client
 * certificate (inside the kubeconfig the join step writes) and its serving certificate (installed
 * by the kubelet step). Keys are P-256 and stay Pulumi secrets; nothing here reaches a command text.
 *
 * Re-issue happens three ways: a new signing CA (`caCertPem` forces a new certificate), the TLS
 * provider's early renewal (inside `earlyRenewalHours` of the end), and `WorkerNodeArgs.renewal`:
 * a new value replaces both keys, so their CSRs and certificates, whatever the clock says. The
 * operator uses the last one (docs/operations.md, "Kubelet certificates"): it decides when, spread
 * over the fleet, rather than every `up` that happens to run inside the window.
 */
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { kubeletKubeconfig } from "../host/scripts/kubectl";
import type { WorkerNodeArgs } from "./worker-node";

/** A certificate as issued (public PEMs only): what the stack reports of it. */
export interface IssuedCertificatePems {
  readonly certPem: pulumi.Output<string>;
  /** The CA certificate that signed it, as the certificate resource recorded it. */
  readonly caCertPem: pulumi.Output<string>;
}

/** The PEM the kubelet trusts: the trust bundle when given (a CA rotation's two CAs), else the signing CA. */
export function kubeletTrustBundle(args: WorkerNodeArgs): pulumi.Output<string> {
  return pulumi.output(args.cluster.trustBundle ?? args.cluster.caCertificate);
}

/**
 * The TLS provider's own early renewal: a refresh or `up` inside it re-issues. 720 h (30 days) for
 * the default year, at most a third of a shorter validity, so a short one (tests) is not re-issued
 * by every `up`: the operator renews such certificates with the renewal token, when it planned to.
 */
export function earlyRenewalHours(validityHours: number): number {
  return Math.min(720, Math.floor(validityHours / 3));
}

/** One key, CSR and certificate signed by the cluster CA; `renewal` (when set) replaces the key and so the rest. */
function signedCertificate(name: string, parent: pulumi.Resource, args: WorkerNodeArgs, subject: tls.types.input.CertRequestSubject, extra: { dnsNames?: string[]; ipAddresses?: string[] }, usage: string) {
  // Always given: the engine replaces on a change of a recorded trigger, but not when a state
  // recorded none (so states written before it stay as they are; the first renewal of such a state
  // is the first `up` that records it, and the next token replaces).
  const renewal = { replacementTrigger: { renewal: args.renewal ?? 0 } };
  const validity = args.certificateValidityHours ?? 8760;
  const key = new tls.PrivateKey(`${name}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent, ...renewal });
  const csr = new tls.CertRequest(`${name}-csr`, { privateKeyPem: key.privateKeyPem, subject, ...extra }, { parent });
  const cert = new tls.LocallySignedCert(
    `${name}-cert`,
    {
      certRequestPem: csr.certRequestPem,
      caCertPem: args.cluster.caCertificate,
      caPrivateKeyPem: pulumi.secret(args.cluster.caPrivateKey as pulumi.Input<string>),
      validityPeriodHours: validity,
      earlyRenewalHours: earlyRenewalHours(validity),
      allowedUses: ["digital_signature", "key_encipherment", usage],
    },
    { parent },
  );
  return { key, cert, issued: { certPem: cert.certPem, caCertPem: cert.caCertPem } satisfies IssuedCertificatePems };
}

/**
 * The kubelet's serving certificate and key (one PEM bundle, a secret), signed by the cluster CA
 * for the machine's IP and hostname: the apiserver verifies it (--kubelet-certificate-authority)
 * when it calls the kubelet for logs, exec and port-forward. Undefined with a bootstrap token.
 */
export function kubeletServingCertificate(name: string, parent: pulumi.Resource, args: WorkerNodeArgs): { stdin: pulumi.Output<string>; issued: IssuedCertificatePems } | undefined {
  if (args.cluster.caPrivateKey === undefined) return undefined;
  const m = args.machine;
  const { key, cert, issued } = signedCertificate(
    `${name}-kubelet-serving`,
    parent,
    args,
    { commonName: `system:node:${m.hostname}`, organization: "system:nodes" },
    { dnsNames: [m.hostname], ipAddresses: [m.ip] },
    "server_auth",
  );
  const stdin = pulumi.secret(pulumi.all([cert.certPem, key.privateKeyPem]).apply(([certPem, keyPem]) => `${certPem.trimEnd()}\n${keyPem.trimEnd()}\n`));
  return { stdin, issued };
}

/**
 * The kubelet's kubeconfig (a secret): a certificate for system:node:<hostname> signed by the
 * cluster CA, or the bootstrap token. Its CA data is the trust bundle, so during a CA rotation the
 * kubelet accepts an apiserver serving certificate of either CA.
 */
export function kubeletCredentials(name: string, parent: pulumi.Resource, args: WorkerNodeArgs): { kubeconfig: pulumi.Output<string>; issued?: IssuedCertificatePems } {
  const { endpoint, bootstrapToken } = args.cluster;
  const trust = kubeletTrustBundle(args);
  const user = `system:node:${args.machine.hostname}`;
  if (bootstrapToken !== undefined) {
    return {
      kubeconfig: pulumi.secret(
        pulumi.all([endpoint, trust, bootstrapToken]).apply(([e, ca, token]) => kubeletKubeconfig({ endpoint: e, caCertificate: ca, user: "kubelet-bootstrap", token })),
      ),
    };
  }
  const { key, cert, issued } = signedCertificate(`${name}-kubelet`, parent, args, { commonName: user, organization: "system:nodes" }, {}, "client_auth");
  const kubeconfig = pulumi.secret(
    pulumi.all([endpoint, trust, cert.certPem, key.privateKeyPem]).apply(([e, ca, certPem, keyPem]) =>
      kubeletKubeconfig({ endpoint: e, caCertificate: ca, user, clientCertificate: certPem, clientKey: keyPem }),
    ),
  );
  return { kubeconfig, issued };
}
