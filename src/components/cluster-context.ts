/**
 * What every master component of one business cluster needs to know: its name, the meta-cluster
 * namespace it lives in, the resolved spec, and the names derived from them. Pure functions, so the
 * names, DNS names and certificate SANs are unit-tested without Pulumi.
 */
import { adminKubeconfigSecretName, httpsUrl, isIP, kubernetesServiceAddress, MAX_ETCD_MEMBERS, type ResolvedClusterSpec } from "../api/v1alpha1";

export interface ClusterContext {
  /** The business cluster's name; prefixes every object so a namespace could host several. */
  readonly name: string;
  /** Meta-cluster namespace of the masters. */
  readonly namespace: string;
  readonly spec: ResolvedClusterSpec;
  /** DNS domain of the meta-cluster (not of the business cluster); used for in-meta-cluster names. */
  readonly metaClusterDomain: string;
}

export type MasterComponent = "etcd" | "kube-apiserver" | "kube-controller-manager" | "kube-scheduler";

/** Names of the Kubernetes objects one business cluster owns in the meta-cluster. */
export function objectNames(cluster: string) {
  return {
    etcd: `${cluster}-etcd`,
    etcdPeerService: `${cluster}-etcd`,
    etcdClientService: `${cluster}-etcd-client`,
    etcdCerts: `${cluster}-etcd-certs`,
    // The operator reads these three by name (the on-demand backup copies the CronJob's jobTemplate).
    etcdBackup: `${cluster}-etcd-backup`,
    etcdBackupClient: `${cluster}-etcd-backup-client`,
    etcdBackupStore: `${cluster}-etcd-backup-store`,
    // The membership's ConfigMap (the joining member's --initial-cluster), the membership Jobs'
    // client certificate and NetworkPolicy (src/components/etcd-membership.ts).
    etcdMembership: `${cluster}-etcd-membership`,
    etcdMemberClient: `${cluster}-etcd-member-client`,
    apiServer: `${cluster}-apiserver`,
    apiServerService: `${cluster}-apiserver`,
    apiServerHeadlessService: `${cluster}-apiserver-headless`,
    apiServerCerts: `${cluster}-apiserver-certs`,
    apiServerAuditPolicy: `${cluster}-apiserver-audit-policy`,
    controllerManager: `${cluster}-controller-manager`,
    controllerManagerSecret: `${cluster}-controller-manager-certs`,
    scheduler: `${cluster}-scheduler`,
    schedulerKubeconfig: `${cluster}-scheduler-kubeconfig`,
    // The operator reads this one by name (src/api/v1alpha1/names.ts).
    adminKubeconfig: adminKubeconfigSecretName(cluster),
    userKubeconfig: (user: string) => `${cluster}-kubeconfig-${user}`,
    networkPolicy: (role: string) => `${cluster}-${role}`,
  };
}

/** Labels on every object of a master component. The first two are its selector. */
export function componentLabels(cluster: string, component: MasterComponent): Record<string, string> {
  return {
    ...selectorLabels(cluster, component),
    "app.kubernetes.io/name": component,
    "app.kubernetes.io/instance": cluster,
    "app.kubernetes.io/part-of": "kube-on-kube",
    "app.kubernetes.io/managed-by": "pulumi",
  };
}

export function selectorLabels(cluster: string, component: MasterComponent): Record<string, string> {
  return { "kubeonkube.io/cluster": cluster, "kubeonkube.io/component": component };
}

/** `svc`, `svc.<ns>`, `svc.<ns>.svc`, `svc.<ns>.svc.<domain>`: every way a pod can name a Service. */
export function serviceDnsNames(service: string, ctx: Pick<ClusterContext, "namespace" | "metaClusterDomain">): string[] {
  const { namespace, metaClusterDomain } = ctx;
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.${metaClusterDomain}`];
}

/** The stable DNS name of etcd member `i` (through the headless peer Service). */
export function etcdMemberHost(ctx: ClusterContext, i: number): string {
  const names = objectNames(ctx.name);
  return `${names.etcd}-${i}.${names.etcdPeerService}.${ctx.namespace}.svc`;
}

/** `--initial-cluster` of the first `count` members (default the spec's), as etcd wants it. */
export function etcdInitialCluster(ctx: ClusterContext, count = ctx.spec.etcd.replicas): string {
  const members = Array.from({ length: count }, (_, i) => `${objectNames(ctx.name).etcd}-${i}=https://${etcdMemberHost(ctx, i)}:2380`);
  return members.join(",");
}

/** What kube-apiserver dials: the client Service (balanced, survives member replacement). */
export function etcdClientUrl(ctx: ClusterContext): string {
  return `https://${objectNames(ctx.name).etcdClientService}.${ctx.namespace}.svc:2379`;
}

/** How components inside the meta-cluster reach the business cluster's apiserver. */
export function internalApiServerUrl(ctx: ClusterContext): string {
  return `https://${objectNames(ctx.name).apiServerService}.${ctx.namespace}.svc:${ctx.spec.apiServer.service.port}`;
}

/**
 * The endpoint users and workers use: the external host when given, else the in-meta-cluster name.
 * A NodePort Service is reached on its nodePort (externalHost then names a node, or a proxy that
 * forwards that same port), every other type on the Service port.
 */
export function externalApiServerUrl(ctx: ClusterContext): string {
  const { externalHost, port, type, nodePort } = ctx.spec.apiServer.service;
  if (!externalHost) return internalApiServerUrl(ctx);
  const reachablePort = type === "NodePort" && nodePort ? nodePort : port;
  return httpsUrl(externalHost, reachablePort);
}

/** The business cluster's `kubernetes` Service IP: the first address of the service CIDR. */
export function kubernetesServiceIP(spec: ResolvedClusterSpec): string {
  return kubernetesServiceAddress(spec.network.serviceCIDR);
}

export interface SubjectAltNames {
  readonly dnsNames: string[];
  readonly ipAddresses: string[];
}

function splitHosts(hosts: string[]): SubjectAltNames {
  const unique = [...new Set(hosts)];
  return { dnsNames: unique.filter((h) => !isIP(h)), ipAddresses: unique.filter((h) => isIP(h)) };
}

/** The apiserver serving certificate: in-business-cluster names, in-meta-cluster names, external ones. */
export function apiServerSANs(ctx: ClusterContext): SubjectAltNames {
  const names = objectNames(ctx.name);
  const { service, certSANs, advertiseAddress } = ctx.spec.apiServer;
  const domain = ctx.spec.network.clusterDomain;
  return splitHosts([
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    `kubernetes.default.svc.${domain}`,
    ...serviceDnsNames(names.apiServerService, ctx),
    ...serviceDnsNames(names.apiServerHeadlessService, ctx),
    "localhost",
    ...(service.externalHost ? [service.externalHost] : []),
    ...certSANs,
    kubernetesServiceIP(ctx.spec),
    "127.0.0.1",
    ...(advertiseAddress ? [advertiseAddress] : []),
  ]);
}

/** etcd serving and peer certificate: every member's name and the client Service. */
export function etcdSANs(ctx: ClusterContext): SubjectAltNames {
  const names = objectNames(ctx.name);
  // Every member the spec may ever ask for (etcd.replicas is mutable up to 7): scaling then
  // needs no new certificate, which would roll every member.
  const members = Array.from({ length: MAX_ETCD_MEMBERS }, (_, i) => etcdMemberHost(ctx, i));
  return splitHosts([
    ...members,
    ...members.map((m) => `${m}.${ctx.metaClusterDomain}`),
    ...serviceDnsNames(names.etcdClientService, ctx),
    "localhost",
    "127.0.0.1",
  ]);
}

/** Renders `--flag=value` arguments: generated ones, overridden by the user's extraArgs, sorted. */
export function renderFlags(generated: Record<string, string>, extra: Record<string, string>): string[] {
  const merged = { ...generated, ...extra };
  return Object.keys(merged)
    .sort()
    .map((flag) => `--${flag}=${merged[flag]}`);
}
