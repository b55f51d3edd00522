/** Kubeconfig documents for the business cluster, rendered as YAML from PEM material. */
import * as pulumi from "@pulumi/pulumi";
import { stringify } from "yaml";

export interface KubeconfigParams {
  readonly clusterName: string;
  readonly server: string;
  readonly caCertPem: string;
  readonly userName: string;
  readonly clientCertPem: string;
  readonly clientKeyPem: string;
}

const base64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

/** A kubeconfig with one cluster, one user and one current context, credentials inline. */
export function renderKubeconfig(p: KubeconfigParams): string {
  const context = `${p.userName}@${p.clusterName}`;
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: p.clusterName, cluster: { server: p.server, "certificate-authority-data": base64(p.caCertPem) } }],
    users: [
      {
        name: p.userName,
        user: { "client-certificate-data": base64(p.clientCertPem), "client-key-data": base64(p.clientKeyPem) },
      },
    ],
    contexts: [{ name: context, context: { cluster: p.clusterName, user: p.userName } }],
    "current-context": context,
    preferences: {},
  });
}

/** The same, from Outputs; always a Pulumi secret (it holds a private key). */
export function kubeconfigOutput(p: {
  clusterName: string;
  server: pulumi.Input<string>;
  caCertPem: pulumi.Input<string>;
  userName: string;
  clientCertPem: pulumi.Input<string>;
  clientKeyPem: pulumi.Input<string>;
}): pulumi.Output<string> {
  return pulumi.secret(
    pulumi
      .all([p.server, p.caCertPem, p.clientCertPem, p.clientKeyPem])
      .apply(([server, caCertPem, clientCertPem, clientKeyPem]) =>
        renderKubeconfig({ clusterName: p.clusterName, userName: p.userName, server, caCertPem, clientCertPem, clientKeyPem }),
      ),
  );
}
