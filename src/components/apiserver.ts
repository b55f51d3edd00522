/**
 * ApiServer: kube-apiserver of a business cluster as a Deployment, a headless Service for
 * in-meta-cluster peers (DNS round-robin over the pods) and a Service of
 * `spec.apiServer.service.type` for everyone else. Audit logging (to stdout, where the
 * meta-cluster's log pipeline collects container output) and the encryption of Secrets at rest are
 * on by default (apiserver-config.ts).
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  componentLabels,
  etcdClientUrl,
  objectNames,
  renderFlags,
  selectorLabels,
  type ClusterContext,
} from "./cluster-context";
import { auditPolicyYaml, secretEncryptionConfig } from "./apiserver-config";
import { disruptionBudget, httpProbe, masterDeployment, masterDeploymentSpec, masterSecret, type MasterDeploymentParams } from "./master-workload";
import type { PemPair } from "./pki";
import { RolloutGate, RolloutKind, specRevision } from "./rollout-gate";
import { componentType, withLegacyAlias } from "./type-tokens";

export interface ApiServerArgs {
  readonly cluster: ClusterContext;
  readonly certificates: {
    /** Every cluster CA trusted now (PEM): the CA of kubelets' serving certificates. */
    readonly trustBundle: pulumi.Input<string>;
    /**
     * Every CA a client certificate may come from (PEM): the trust bundle and each user
     * kubeconfig's own CA (pki.ts, `clientCaBundle`). Default: the trust bundle alone.
     */
    readonly clientCaBundle?: pulumi.Input<string>;
    readonly serving: PemPair;
    readonly kubeletClient: PemPair;
    readonly etcdCa: pulumi.Input<string>;
    readonly etcdClient: PemPair;
    /** Every front-proxy CA trusted now (PEM). */
    readonly frontProxyCa: pulumi.Input<string>;
    readonly frontProxyClient: PemPair;
    /** Every service-account public key that verifies tokens (PEM, one or two around a rotation). */
    readonly serviceAccountPublicKey: pulumi.Input<string>;
    readonly serviceAccountPrivateKey: pulumi.Input<string>;
  };
  /**
   * Kubeconfig of the meta-cluster for the rollout gate, which reads the Deployment itself: the
   * one the Kubernetes provider uses. Default: the engine's ambient kubeconfig.
   */
  readonly metaKubeconfig?: pulumi.Input<string>;
  /** Generation of the Secret encryption key (see apiserver-config.ts); raising it by one rotates. Default: 1. */
  readonly encryptionKeyGeneration?: number;
}

const PKI = "/etc/kubernetes/pki";
const AUDIT = "/etc/kubernetes/audit";
export const APISERVER_PORT = 6443;
/** The file names inside the apiserver's Secret and audit ConfigMap. */
export const ENCRYPTION_CONFIG_FILE = "encryption-config.yaml";
export const AUDIT_POLICY_FILE = "policy.yaml";
/** The apiserver's --client-ca-file: ca.crt and the user kubeconfigs' CAs (pki.ts). */
export const CLIENT_CA_FILE = "client-ca.crt";

export function apiServerFlags(ctx: ClusterContext): string[] {
  const { spec } = ctx;
  return renderFlags(
    {
      ...(spec.apiServer.advertiseAddress ? { "advertise-address": spec.apiServer.advertiseAddress } : { "advertise-address": "$(POD_IP)" }),
      "secure-port": String(APISERVER_PORT),
      "allow-privileged": "true",
      "authorization-mode": "Node,RBAC",
      "enable-admission-plugins": "NodeRestriction",
      "enable-bootstrap-token-auth": "true",
      "client-ca-file": `${PKI}/${CLIENT_CA_FILE}`,
      "tls-cert-file": `${PKI}/apiserver.crt`,
      "tls-private-key-file": `${PKI}/apiserver.key`,
      "kubelet-client-certificate": `${PKI}/apiserver-kubelet-client.crt`,
      "kubelet-client-key": `${PKI}/apiserver-kubelet-client.key`,
      // Kubelets serve with a certificate the cluster CA signed (WorkerNode): logs, exec and
      // port-forward verify it. The Node's InternalIP (the machine's IP) is that certificate's SAN.
      "kubelet-certificate-authority": `${PKI}/ca.crt`,
      "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
      "etcd-servers": etcdClientUrl(ctx),
      "etcd-cafile": `${PKI}/etcd-ca.crt`,
      "etcd-certfile": `${PKI}/apiserver-etcd-client.crt`,
      "etcd-keyfile": `${PKI}/apiserver-etcd-client.key`,
      // Each business cluster keeps its own keys in its own etcd; the prefix makes that explicit.
      "etcd-prefix": "/registry",
      "proxy-client-cert-file": `${PKI}/front-proxy-client.crt`,
      "proxy-client-key-file": `${PKI}/front-proxy-client.key`,
      "requestheader-client-ca-file": `${PKI}/front-proxy-ca.crt`,
      "requestheader-allowed-names": "front-proxy-client",
      "requestheader-extra-headers-prefix": "X-Remote-Extra-",
      "requestheader-group-headers": "X-Remote-Group",
      "requestheader-username-headers": "X-Remote-User",
      "service-account-issuer": `https://kubernetes.default.svc.${spec.network.clusterDomain}`,
      "service-account-key-file": `${PKI}/sa.pub`,
      "service-account-signing-key-file": `${PKI}/sa.key`,
      "service-cluster-ip-range": spec.network.serviceCIDR,
      "endpoint-reconciler-type": "lease",
      // A rollout (an upgrade, a CA rotation) deletes the old Pod while the Service still sends
      // it connections until its endpoint is gone everywhere: it keeps serving 5 s after SIGTERM,
      // then answers what still arrives with a 429 and Retry-After (clients retry) instead of a
      // refused connection.
      "shutdown-delay-duration": "5s",
      "shutdown-send-retry-after": "true",
      "tls-min-version": "VersionTLS12",
      profiling: "false",
      "audit-policy-file": `${AUDIT}/${AUDIT_POLICY_FILE}`,
      "audit-log-path": "-",
      "audit-log-format": "json",
      "encryption-provider-config": `${PKI}/${ENCRYPTION_CONFIG_FILE}`,
    },
    spec.apiServer.extraArgs,
  );
}

export class ApiServer extends pulumi.ComponentResource {
  readonly deployment: k8s.apps.v1.Deployment;
  readonly service: k8s.core.v1.Service;
  readonly headlessService: k8s.core.v1.Service;
  /** Done only once the Deployment's rollout has finished and no older apiserver Pod is left. */
  readonly rollout: RolloutGate;

  constructor(name: string, args: ApiServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super(componentType("ApiServer"), name, {}, withLegacyAlias("ApiServer", opts));
    const ctx = args.cluster;
    const spec = ctx.spec.apiServer;
    const names = objectNames(ctx.name);
    const labels = componentLabels(ctx.name, "kube-apiserver");
    const child = { parent: this };

    const files = apiServerFiles(name, args, this);
    const secret = masterSecret(`${name}-certs`, ctx, names.apiServerCerts, "kube-apiserver", files, child);
    const auditFiles = { [AUDIT_POLICY_FILE]: auditPolicyYaml() };
    const auditPolicy = new k8s.core.v1.ConfigMap(
      `${name}-audit-policy`,
      { metadata: { name: names.apiServerAuditPolicy, namespace: ctx.namespace, labels }, data: auditFiles },
      child,
    );

    const services = apiServerServices(name, ctx, child);
    this.headlessService = services.headless;
    this.service = services.service;

    const deployment: MasterDeploymentParams = {
      objectName: names.apiServer,
      component: "kube-apiserver",
      replicas: spec.replicas,
      files,
      secretName: names.apiServerCerts,
      mountPath: PKI,
      configMap: { name: names.apiServerAuditPolicy, mountPath: AUDIT, files: auditFiles },
      // Never drop below the wanted count during an upgrade: a new pod must be Ready first.
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      container: {
        image: spec.image,
        command: ["kube-apiserver", ...apiServerFlags(ctx)],
        env: [{ name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } }],
        ports: [{ name: "https", containerPort: APISERVER_PORT }],
        resources: spec.resources,
        startupProbe: httpProbe("/livez", APISERVER_PORT, "HTTPS", 30),
        readinessProbe: httpProbe("/readyz", APISERVER_PORT, "HTTPS", 3),
        livenessProbe: httpProbe("/livez", APISERVER_PORT, "HTTPS", 8),
      },
    };
    const deploymentSpec = masterDeploymentSpec(ctx, deployment);
    this.deployment = masterDeployment(`${name}-deployment`, ctx, deployment, { parent: this, dependsOn: [secret, auditPolicy] }, deploymentSpec);
    this.rollout = new RolloutGate(
      `${name}-rollout`,
      {
        workload: { kind: RolloutKind.Deployment, namespace: ctx.namespace, name: names.apiServer },
        revision: specRevision(deploymentSpec),
        kubeconfig: args.metaKubeconfig,
      },
      { parent: this, dependsOn: [this.deployment] },
    );
    disruptionBudget(`${name}-pdb`, ctx, names.apiServer, "kube-apiserver", child);
    this.registerOutputs({});
  }
}

/** The files of the apiserver's Secret: every certificate and key it reads, and its encryption config. */
function apiServerFiles(name: string, args: ApiServerArgs, parent: pulumi.Resource): Record<string, pulumi.Input<string>> {
  const c = args.certificates;
  return {
    // A bundle: during a CA rotation both CAs (ca-rotation.ts).
    "ca.crt": c.trustBundle,
    [CLIENT_CA_FILE]: c.clientCaBundle ?? c.trustBundle,
    "apiserver.crt": c.serving.certPem,
    "apiserver.key": c.serving.keyPem,
    "apiserver-kubelet-client.crt": c.kubeletClient.certPem,
    "apiserver-kubelet-client.key": c.kubeletClient.keyPem,
    "etcd-ca.crt": c.etcdCa,
    "apiserver-etcd-client.crt": c.etcdClient.certPem,
    "apiserver-etcd-client.key": c.etcdClient.keyPem,
    "front-proxy-ca.crt": c.frontProxyCa,
    "front-proxy-client.crt": c.frontProxyClient.certPem,
    "front-proxy-client.key": c.frontProxyClient.keyPem,
    "sa.pub": c.serviceAccountPublicKey,
    "sa.key": c.serviceAccountPrivateKey,
    [ENCRYPTION_CONFIG_FILE]: secretEncryptionConfig(name, args.encryptionKeyGeneration ?? 1, parent),
  };
}

/** A headless Service for the apiservers' peers, and one of the spec's type for everyone else. */
function apiServerServices(name: string, ctx: ClusterContext, child: pulumi.CustomResourceOptions): { headless: k8s.core.v1.Service; service: k8s.core.v1.Service } {
  const spec = ctx.spec.apiServer;
  const names = objectNames(ctx.name);
  const labels = componentLabels(ctx.name, "kube-apiserver");
  const selector = selectorLabels(ctx.name, "kube-apiserver");
  const servicePort = { name: "https", port: spec.service.port, targetPort: APISERVER_PORT };
  const headless = new k8s.core.v1.Service(
    `${name}-headless`,
    {
      metadata: { name: names.apiServerHeadlessService, namespace: ctx.namespace, labels },
      spec: { clusterIP: "None", selector, ports: [servicePort] },
    },
    child,
  );
  const service = new k8s.core.v1.Service(
    `${name}-service`,
    {
      metadata: {
        name: names.apiServerService,
        namespace: ctx.namespace,
        labels,
        annotations: Object.keys(spec.service.annotations).length ? spec.service.annotations : undefined,
      },
      spec: {
        type: spec.service.type,
        selector,
        ports: [{ ...servicePort, nodePort: spec.service.nodePort }],
      },
    },
    child,
  );
  return { headless, service };
}
