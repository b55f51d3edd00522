/**
 * EtcdMembership: what the operator's membership Jobs need in the masters' namespace (docs/
 * operations.md, "Scaling etcd"). The Jobs themselves are the operator's (src/controllers/cluster/
 * etcd-membership-job.ts): each runs one step, `kok etcd member <list|add|promote|remove>`, in the
 * operator image, and leaves the membership it then observes in its termination message.
 *
 * - Secret `<c>-etcd-member-client` (tls.crt, tls.key, ca.crt): a client leaf of the etcd CA (CN
 *   kube-on-kube-etcd-membership), so a Job never holds a member's server or peer key, and etcd's
 *   logs name who changed the membership.
 * - NetworkPolicy `<c>-etcd-membership`: the Jobs' Pods may reach etcd's client port and DNS,
 *   nothing else, and nothing may connect to them.
 *
 * Why Jobs in the masters' namespace and not the operator: the operator needs no network path to
 * a tenant's etcd (the masters' NetworkPolicies admit only their own namespace to it) and may run
 * outside the meta-cluster's Pod network; the backups work the same way (etcd-backup.ts).
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { ETCD_MEMBER_CLIENT_CN, ETCD_MEMBERSHIP_COMPONENT_LABEL } from "../api/v1alpha1";
import { objectNames, selectorLabels, type ClusterContext } from "./cluster-context";
import { ETCD_CLIENT_PORT } from "./etcd";
import type { PemPair } from "./pki";
import { renewalWindowDays } from "./pki";
import { componentType } from "./type-tokens";

export interface EtcdMembershipArgs {
  readonly cluster: ClusterContext;
  /** The etcd CA: it signs the Jobs' client leaf. */
  readonly etcdCa: PemPair;
  /** Every etcd CA trusted now (PEM), which the Jobs check the members' certificates with. Default: `etcdCa`'s. */
  readonly etcdTrustBundle?: pulumi.Input<string>;
  /** Leaf lifetimes in hours (ClusterPkiArgs.leafHours, a rotation drill). */
  readonly leafHours?: { readonly validity: number; readonly renewBefore: number };
}

/** Where a membership Job's Pod finds its client certificate. */
export const MEMBER_CLIENT_DIR = "/etc/kube-on-kube/etcd-membership";
const HOURS_PER_DAY = 24;

/** The labels of the membership objects, the Jobs and their Pods. */
export function etcdMembershipLabels(cluster: string): Record<string, string> {
  return {
    "kubeonkube.io/cluster": cluster,
    [ETCD_MEMBERSHIP_COMPONENT_LABEL.key]: ETCD_MEMBERSHIP_COMPONENT_LABEL.value,
    "app.kubernetes.io/part-of": "kube-on-kube",
  };
}

/** The Jobs' egress: etcd's client port and DNS. No ingress. */
export function etcdMembershipNetworkPolicySpec(cluster: string): k8s.types.input.networking.v1.NetworkPolicySpec {
  return {
    podSelector: { matchLabels: { "kubeonkube.io/cluster": cluster, [ETCD_MEMBERSHIP_COMPONENT_LABEL.key]: ETCD_MEMBERSHIP_COMPONENT_LABEL.value } },
    policyTypes: ["Ingress", "Egress"],
    egress: [
      { to: [{ podSelector: { matchLabels: selectorLabels(cluster, "etcd") } }], ports: [{ protocol: "TCP", port: ETCD_CLIENT_PORT }] },
      { ports: [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 53 }] },
    ],
  };
}

export class EtcdMembership extends pulumi.ComponentResource {
  readonly clientSecret: k8s.core.v1.Secret;
  readonly networkPolicy: k8s.networking.v1.NetworkPolicy;

  constructor(name: string, args: EtcdMembershipArgs, opts?: pulumi.ComponentResourceOptions) {
    super(componentType("EtcdMembership"), name, {}, opts);
    const ctx = args.cluster;
    const names = objectNames(ctx.name);
    const labels = { ...etcdMembershipLabels(ctx.name), "app.kubernetes.io/managed-by": "pulumi" };
    const child = { parent: this };
    const certs = ctx.spec.certificates;

    // Issued here rather than in ClusterPki: only these Jobs use it, as pki.ts issues the
    // backup's leaf only for the backup. Same key type and renewal window as every leaf there;
    // the full drift check's refresh (at least daily) re-issues it inside its window.
    const key = new tls.PrivateKey(`${name}-client-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
    const csr = new tls.CertRequest(`${name}-client-csr`, { privateKeyPem: key.privateKeyPem, subject: { commonName: ETCD_MEMBER_CLIENT_CN } }, child);
    const cert = new tls.LocallySignedCert(
      `${name}-client`,
      {
        certRequestPem: csr.certRequestPem,
        caCertPem: args.etcdCa.certPem,
        caPrivateKeyPem: args.etcdCa.keyPem,
        validityPeriodHours: args.leafHours?.validity ?? certs.validityDays * HOURS_PER_DAY,
        earlyRenewalHours: args.leafHours?.renewBefore ?? renewalWindowDays(certs.validityDays, certs.renewBeforeDays) * HOURS_PER_DAY,
        allowedUses: ["digital_signature", "key_encipherment", "client_auth"],
      },
      child,
    );
    const files: Record<string, pulumi.Input<string>> = { "ca.crt": args.etcdTrustBundle ?? args.etcdCa.certPem, "tls.crt": cert.certPem, "tls.key": key.privateKeyPem };
    this.clientSecret = new k8s.core.v1.Secret(
      `${name}-client-secret`,
      {
        metadata: { name: names.etcdMemberClient, namespace: ctx.namespace, labels },
        type: "kubernetes.io/tls",
        stringData: pulumi.secret(pulumi.output(files)) as pulumi.Output<Record<string, string>>,
      },
      child,
    );
    this.networkPolicy = new k8s.networking.v1.NetworkPolicy(
      `${name}-network-policy`,
      { metadata: { name: names.etcdMembership, namespace: ctx.namespace, labels }, spec: etcdMembershipNetworkPolicySpec(ctx.name) },
      child,
    );
    this.registerOutputs({});
  }
}
