/**
 * What a ControlPlane tells its users, stated once: the component's properties, its registered
 * outputs, the Cluster program's outputs and the operator's reading of a stack's outputs are all
 * typed from this interface, so an output added here reaches every one of them or fails to compile.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { CaSecretReference } from "../api/v1alpha1";

/** The outputs of a ControlPlane as plain values (what a stack's outputs hold once applied). */
export interface ControlPlaneOutputs {
  /** Meta-cluster namespace of the masters. */
  readonly namespace: string;
  /** URL of the business cluster's apiserver, as users and workers reach it. */
  readonly endpoint: string;
  /** URL inside the meta-cluster (the apiserver Service's DNS name). */
  readonly internalEndpoint: string;
  /** PEM of the business cluster's CA. */
  readonly caCertificate: string;
  /**
   * The Secret (in `namespace`) that holds the cluster CA's certificate and private key, and
   * their keys: what signs the kubelet certificates of workers. A reference; the key is not an output.
   */
  readonly caSecret: CaSecretReference;
  /** Kubeconfig of `kubernetes-admin` (group system:masters) for `endpoint`; a secret. */
  readonly adminKubeconfig: string;
  /** Name of the Secret (in `namespace`) holding `kubeconfig` and `kubeconfig-internal`. */
  readonly adminKubeconfigSecret: string;
  /** The Kubernetes version the masters run once this update completes. */
  readonly version: string;
  /** Earliest expiry of the leaf certificates (RFC 3339). */
  readonly certificatesExpireAt: string;
  /** The public halves of the authorities, for status.certificates (PEM; nothing secret). */
  readonly certificateAuthorities: CertificateAuthorityPems;
}

/** PEM of each signing authority, and the cluster trust bundle. */
export interface CertificateAuthorityPems {
  /** The signing cluster CA (the CA Secret's certificate). */
  readonly cluster: string;
  /** Every cluster CA trusted now (the CA Secret's ca-bundle.crt). */
  readonly clusterBundle: string;
  readonly etcd: string;
  readonly frontProxy: string;
  /** The public key that verifies the tokens the apiserver signs now. */
  readonly serviceAccount: string;
}

/** The same fields as Pulumi outputs, as a component or a program holds them. */
export type Outputs<T> = { readonly [K in keyof T]: pulumi.Output<T[K]> };

/** Every output's name; a Record, so that leaving one out does not compile. */
const OUTPUT_NAMES: Record<keyof ControlPlaneOutputs, true> = {
  namespace: true,
  endpoint: true,
  internalEndpoint: true,
  caCertificate: true,
  caSecret: true,
  adminKubeconfig: true,
  adminKubeconfigSecret: true,
  version: true,
  certificatesExpireAt: true,
  certificateAuthorities: true,
};

/** The outputs of `cp` alone (a ControlPlane also has children and secrets that are not outputs). */
export function controlPlaneOutputs(cp: Outputs<ControlPlaneOutputs>): Outputs<ControlPlaneOutputs> {
  return Object.fromEntries(Object.keys(OUTPUT_NAMES).map((k) => [k, cp[k as keyof ControlPlaneOutputs]])) as unknown as Outputs<ControlPlaneOutputs>;
}
