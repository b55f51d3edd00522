/**
 * ControllerManager: kube-controller-manager of a business cluster. Leader election runs in the
 * business cluster's own kube-system, so its replicas never fight over the meta-cluster's Leases.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { CA_BUNDLE_KEY, type CaSecretReference } from "../api/v1alpha1";
import { objectNames, renderFlags, type ClusterContext } from "./cluster-context";
import { disruptionBudget, httpProbe, masterDeployment, masterSecret } from "./master-workload";
import type { PemPair } from "./pki";
import { componentType, withLegacyAlias } from "./type-tokens";

export interface ControllerManagerArgs {
  readonly cluster: ClusterContext;
  /** The cluster CA with its key: the controller-manager signs kubelet and CSR certificates. */
  readonly clusterCa: PemPair;
  /** Every cluster CA trusted now (PEM): the root CA published to Pods (kube-root-ca.crt) and the CA Secret's bundle. */
  readonly clusterTrustBundle: pulumi.Input<string>;
  /** Every front-proxy CA trusted now (PEM). */
  readonly frontProxyCa: pulumi.Input<string>;
  readonly serviceAccountPrivateKey: pulumi.Input<string>;
  /** Kubeconfig of `system:kube-controller-manager` (a Pulumi secret). */
  readonly kubeconfig: pulumi.Input<string>;
}

const PKI = "/etc/kubernetes/pki";
/** The cluster CA's files in the controller-manager's Secret (kubeadm's names). */
const CA_CERT = "ca.crt";
const CA_KEY = "ca.key";
export const CONTROLLER_MANAGER_PORT = 10257;

export function controllerManagerFlags(ctx: ClusterContext): string[] {
  const kubeconfig = `${PKI}/kubeconfig`;
  return renderFlags(
    {
      kubeconfig,
      "authentication-kubeconfig": kubeconfig,
      "authorization-kubeconfig": kubeconfig,
      "bind-address": "0.0.0.0",
      "secure-port": String(CONTROLLER_MANAGER_PORT),
      "leader-elect": "true",
      "cluster-name": ctx.name,
      "cluster-signing-cert-file": `${PKI}/${CA_CERT}`,
      "cluster-signing-key-file": `${PKI}/${CA_KEY}`,
      // What Pods trust the apiserver with: both CAs during a rotation, so its serving
      // certificate may switch CA in phase 2 (ca-rotation.ts).
      "root-ca-file": `${PKI}/${CA_BUNDLE_KEY}`,
      "requestheader-client-ca-file": `${PKI}/front-proxy-ca.crt`,
      "service-account-private-key-file": `${PKI}/sa.key`,
      "use-service-account-credentials": "true",
      "service-cluster-ip-range": ctx.spec.network.serviceCIDR,
      "cluster-cidr": ctx.spec.network.podCIDR,
      "allocate-node-cidrs": "true",
      controllers: "*,bootstrapsigner,tokencleaner",
      "tls-min-version": "VersionTLS12",
      profiling: "false",
    },
    ctx.spec.controllerManager.extraArgs,
  );
}

export class ControllerManager extends pulumi.ComponentResource {
  readonly deployment: k8s.apps.v1.Deployment;
  /** Where the cluster CA's certificate and private key are: this component's Secret. */
  readonly caSecret: pulumi.Output<CaSecretReference>;

  constructor(name: string, args: ControllerManagerArgs, opts?: pulumi.ComponentResourceOptions) {
    super(componentType("ControllerManager"), name, {}, withLegacyAlias("ControllerManager", opts));
    const ctx = args.cluster;
    const spec = ctx.spec.controllerManager;
    const names = objectNames(ctx.name);
    const child = { parent: this };

    const files = {
      [CA_CERT]: args.clusterCa.certPem,
      [CA_KEY]: args.clusterCa.keyPem,
      [CA_BUNDLE_KEY]: args.clusterTrustBundle,
      "front-proxy-ca.crt": args.frontProxyCa,
      "sa.key": args.serviceAccountPrivateKey,
      kubeconfig: args.kubeconfig,
    };
    const secret = masterSecret(`${name}-secret`, ctx, names.controllerManagerSecret, "kube-controller-manager", files, child);
    this.deployment = masterDeployment(
      `${name}-deployment`,
      ctx,
      {
        objectName: names.controllerManager,
        component: "kube-controller-manager",
        replicas: spec.replicas,
        files,
        secretName: names.controllerManagerSecret,
        mountPath: PKI,
        container: {
          image: spec.image,
          command: ["kube-controller-manager", ...controllerManagerFlags(ctx)],
          ports: [{ name: "https", containerPort: CONTROLLER_MANAGER_PORT }],
          resources: spec.resources,
          startupProbe: httpProbe("/healthz", CONTROLLER_MANAGER_PORT, "HTTPS", 24),
          livenessProbe: httpProbe("/healthz", CONTROLLER_MANAGER_PORT, "HTTPS", 8),
        },
      },
      { parent: this, dependsOn: [secret] },
    );
    disruptionBudget(`${name}-pdb`, ctx, names.controllerManager, "kube-controller-manager", child);
    // From the Secret's own outputs: known only once the Secret is written.
    this.caSecret = pulumi
      .all([secret.metadata.namespace, secret.metadata.name])
      .apply(([namespace, secretName]) => ({ namespace, name: secretName, certificateKey: CA_CERT, privateKeyKey: CA_KEY }));
    this.registerOutputs({ caSecret: this.caSecret });
  }
}
