/**
 * The kubelet's certificates, both signed by the cluster CA with @pulumi/tls: its client
 * certificate (inside the kubeconfig the join step writes) and its serving certificate (installed
 * by the kubelet step). Keys are P-256 and stay Pulumi secrets; nothing here reaches a command text.
 */
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { kubeletKubeconfig } from "../host/scripts/kubectl";
import type { WorkerNodeArgs } from "./worker-node";

/**
 * The kubelet's serving certificate and key (one PEM bundle, a secret), signed by the cluster CA
 * for the machine's IP and hostname: the apiserver verifies it (--kubelet-certificate-authority)
 * when it calls the kubelet for logs, exec and port-forward. Undefined with a bootstrap token.
 */
export function kubeletServingCertificate(name: string, parent: pulumi.Resource, args: WorkerNodeArgs): pulumi.Output<string> | undefined {
  const { caCertificate, caPrivateKey } = args.cluster;
  if (caPrivateKey === undefined) return undefined;
  const m = args.machine;
  const key = new tls.PrivateKey(`${name}-kubelet-serving-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent });
  const csr = new tls.CertRequest(
    `${name}-kubelet-serving-csr`,
    {
      privateKeyPem: key.privateKeyPem,
      subject: { commonName: `system:node:${m.hostname}`, organization: "system:nodes" },
      dnsNames: [m.hostname],
      ipAddresses: [m.ip],
    },
    { parent },
  );
  const cert = new tls.LocallySignedCert(
    `${name}-kubelet-serving-cert`,
    {
      certRequestPem: csr.certRequestPem,
      caCertPem: caCertificate,
      caPrivateKeyPem: pulumi.secret(caPrivateKey),
      validityPeriodHours: args.certificateValidityHours ?? 8760,
      earlyRenewalHours: 720,
      allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
    },
    { parent },
  );
  return pulumi.secret(pulumi.all([cert.certPem, key.privateKeyPem]).apply(([certPem, keyPem]) => `${certPem.trimEnd()}\n${keyPem.trimEnd()}\n`));
}

/** The kubelet's kubeconfig (a secret): a certificate for system:node:<hostname> signed by the cluster CA, or the bootstrap token. */
export function kubeletCredentials(name: string, parent: pulumi.Resource, args: WorkerNodeArgs): pulumi.Output<string> {
  const { endpoint, caCertificate, caPrivateKey, bootstrapToken } = args.cluster;
  const user = `system:node:${args.machine.hostname}`;
  if (bootstrapToken !== undefined) {
    return pulumi.secret(
      pulumi.all([endpoint, caCertificate, bootstrapToken]).apply(([e, ca, token]) => kubeletKubeconfig({ endpoint: e, caCertificate: ca, user: "kubelet-bootstrap", token })),
    );
  }
  const key = new tls.PrivateKey(`${name}-kubelet-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent });
  const csr = new tls.CertRequest(
    `${name}-kubelet-csr`,
    { privateKeyPem: key.privateKeyPem, subject: { commonName: user, organization: "system:nodes" } },
    { parent },
  );
  const cert = new tls.LocallySignedCert(
    `${name}-kubelet-cert`,
    {
      certRequestPem: csr.certRequestPem,
      caCertPem: caCertificate,
      caPrivateKeyPem: pulumi.secret(caPrivateKey as pulumi.Input<string>),
      validityPeriodHours: args.certificateValidityHours ?? 8760,
      earlyRenewalHours: 720,
      allowedUses: ["digital_signature", "key_encipherment", "client_auth"],
    },
    { parent },
  );
  return pulumi.secret(
    pulumi.all([endpoint, caCertificate, cert.certPem, key.privateKeyPem]).apply(([e, ca, certPem, keyPem]) =>
      kubeletKubeconfig({ endpoint: e, caCertificate: ca, user, clientCertificate: certPem, clientKey: keyPem }),
    ),
  );
}
