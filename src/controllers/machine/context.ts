/**
 * What a Machine's install needs besides its own spec, gathered at reconcile time: its Cluster's
 * endpoint and CA, the admin kubeconfig, its catalog, and its SSH credentials. Secrets are read
 * here, live, each time, and live only in memory for the length of one reconcile; nothing of them
 * goes into status, events or logs. A missing piece is not an error of the Machine: it waits,
 * with a reason a user can act on.
 *
 * Every Secret of the cluster is read from the masters' namespace, which only the operator's
 * stacks write. The tenant's namespace holds a copy of the admin kubeconfig (written by the
 * Cluster program for the tenant to read); it is never read back, and the kubeconfig is rebuilt
 * from its server, CA and client certificate only (trusted-kubeconfig.ts) before anything uses it.
 * The CA's Secret is the one the Cluster's status names (recorded from its stack's outputs), read
 * only inside the masters' namespace, and its certificate must be a CA of that admin
 * kubeconfig (during a CA rotation the kubeconfig's CA data is the trust bundle of both): the
 * certificate goes onto the host, so no other Secret value may pass for it. The trust bundle the
 * host installs is the same Secret's `ca-bundle.crt` (absent: the CA alone) and must hold the CA.
 */
import {
  adminKubeconfigSecretOf,
  CA_BUNDLE_KEY,
  caSecretOf,
  caSecretRefProblem,
  clusterDnsAddress,
  DEFAULT_CLUSTER_DOMAIN,
  DEFAULT_SERVICE_CIDR,
  defaultSandboxImage,
  kubeletSkewProblems,
  type ClusterObject,
  type ContainerRuntimeSettings,
  type MachineObject,
  type PackageVersionObject,
  type WorkerPackages,
} from "../../api/v1alpha1";
import { bundleFingerprint, certificateFingerprint, parseCertificates } from "../../runtime/certificates";
import { renderTrustedKubeconfig, trustedKubeconfigParts, UntrustedKubeconfigError } from "../../components/trusted-kubeconfig";
import { desiredPackages } from "../packageversion/rollout";
import { packagesRevision } from "../packageversion/revision";

/** Read access to what a Machine depends on. Clusters and catalogs come from informer caches. */
export interface MachineDependencies {
  cluster(namespace: string, name: string): ClusterObject | undefined;
  packageVersion(namespace: string, name: string): PackageVersionObject | undefined;
  /** The decoded data of a Secret, read from the API server (never cached). */
  secret(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /** The meta-cluster namespace of a Cluster's masters (masters-namespace.ts, mastersNamespaceFor). */
  mastersNamespace(cluster: ClusterObject): Promise<string>;
}

/** Annotation with a per-machine install root (test hosts that share one filesystem). */
export const INSTALL_ROOT_ANNOTATION = "kubeonkube.io/install-root";

/** What the caches tell: the Cluster is there and Ready, and which catalog the machine must run. */
export interface MachineCatalog {
  readonly clusterKey: string;
  readonly cluster: ClusterObject;
  readonly endpoint: string;
  /** Undefined while a rollout holds this host where it is (see desiredPackages): change nothing. */
  readonly packages: WorkerPackages | undefined;
  readonly revision: string | undefined;
  /** Why these packages (for events): "the machine's own spec.packages", "catalog rev …", … */
  readonly packagesReason: string;
  /** containerd's sandbox image and registry mirrors: the catalog's, else the Cluster's imageRepository's pause and none. */
  readonly runtime: ContainerRuntimeSettings;
  /**
   * The Cluster's service range and DNS domain: the kubelet's clusterDNS (the range's tenth
   * address) and clusterDomain. The tenant writes them, but for the tenant's own cluster, validated
   * and immutable (the CRD's rule), so a Machine never sees them change.
   */
  readonly network: { readonly serviceCIDR: string; readonly clusterDomain: string };
}

/** What only Secrets tell; read when an SSH or engine operation is about to use it. */
export interface MachineSecrets {
  readonly cluster: {
    readonly endpoint: string;
    /** The signing cluster CA. */
    readonly caCertificate: string;
    /** What the host trusts: the CA Secret's `ca-bundle.crt`, or caCertificate itself when they hold the same CAs. */
    readonly trustBundle: string;
    readonly caPrivateKey: string;
    readonly adminKubeconfig: string;
  };
  readonly credentials: { readonly privateKey?: string; readonly password?: string };
}

export type MachineContext = Omit<MachineCatalog, "cluster" | "packages" | "revision"> & MachineSecrets & { readonly packages: WorkerPackages; readonly revision: string };


export interface Waiting {
  readonly waiting: true;
  /** Condition reason, e.g. WaitingForCluster. */
  readonly reason: string;
  readonly message: string;
}

const wait = (reason: string, message: string): Waiting => ({ waiting: true, reason, message });

/** From the informer caches only: cheap enough for every health check of a large fleet. */
export function machineCatalog(machine: MachineObject, deps: MachineDependencies): MachineCatalog | Waiting {
  const ns = machine.metadata.namespace;
  const spec = machine.spec;
  const cluster = deps.cluster(ns, spec.clusterRef.name);
  if (!cluster) return wait("WaitingForCluster", `Cluster ${ns}/${spec.clusterRef.name} does not exist (yet); the machine is installed once it is Ready`);
  if (cluster.metadata.deletionTimestamp) return wait("ClusterDeleting", `Cluster ${ns}/${spec.clusterRef.name} is being deleted`);
  const endpoint = cluster.status?.endpoint;
  if (!endpoint) {
    return wait("WaitingForCluster", `Cluster ${ns}/${spec.clusterRef.name} is not Ready yet (phase ${cluster.status?.phase ?? "unknown"})`);
  }
  const clusterRuntime = { sandboxImage: defaultSandboxImage(cluster.spec.imageRepository) };
  const network = {
    serviceCIDR: cluster.spec.network?.serviceCIDR ?? DEFAULT_SERVICE_CIDR,
    clusterDomain: cluster.spec.network?.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN,
  };
  try {
    clusterDnsAddress(network.serviceCIDR);
  } catch (error) {
    // A range the Cluster's validation refuses now (it was smaller once): no kubelet config fits it.
    return wait("InvalidClusterNetwork", `Cluster ${ns}/${spec.clusterRef.name}: spec.network.serviceCIDR: ${(error as Error).message}`);
  }
  const base = { clusterKey: `${ns}/${spec.clusterRef.name}`, cluster, endpoint, runtime: clusterRuntime, network };
  if (spec.packages) {
    return { ...base, packages: spec.packages, revision: packagesRevision(spec.packages), packagesReason: "the machine's own spec.packages" };
  }
  const ref = spec.packageVersionRef?.name ?? "";
  const cpv = deps.packageVersion(ns, ref);
  if (!cpv) return wait("WaitingForPackageVersion", `ClusterPackageVersion ${ns}/${ref} does not exist (yet)`);
  if (cpv.spec.clusterRef.name !== spec.clusterRef.name) {
    return wait("PackageVersionMismatch", `ClusterPackageVersion ${ns}/${ref} is the catalog of Cluster ${cpv.spec.clusterRef.name}, not of ${spec.clusterRef.name}`);
  }
  const desired = desiredPackages(machine, cpv);
  const runtime = { sandboxImage: cpv.spec.sandboxImage ?? clusterRuntime.sandboxImage, registryMirrors: cpv.spec.registryMirrors };
  return { ...base, runtime, packages: desired.packages, revision: desired.revision, packagesReason: desired.reason };
}

/**
 * The version-skew policy between the kubelet about to be installed and the masters: a kubelet
 * newer than kube-apiserver, or more than three minors older, is refused before anything reaches
 * the host (the host keeps what it runs). The masters' versions are the Cluster's running one
 * (status.version) and its target (spec.kubernetesVersion): during a masters upgrade both answer.
 * Asked only before an install or upgrade: a host already running its packages keeps its health
 * care whatever the masters do. A rollout holding the host (packages undefined) installs nothing.
 */
export function kubeletSkewWait(catalog: MachineCatalog): Waiting | undefined {
  const { cluster, packages } = catalog;
  if (!packages) return undefined;
  const problems = kubeletSkewProblems(packages.kubelet.version, { running: cluster.status?.version, target: cluster.spec.kubernetesVersion });
  if (problems.length === 0) return undefined;
  const { namespace, name } = cluster.metadata;
  return wait(
    "VersionSkew",
    `${catalog.packagesReason} cannot run against the masters of Cluster ${namespace}/${name}: ${problems.join("; ")}; nothing is installed until the packages or the Cluster's spec.kubernetesVersion agree`,
  );
}

/** Reads the SSH credentials, the cluster CA and the admin kubeconfig, live, from their Secrets. */
export async function machineSecrets(machine: MachineObject, catalog: MachineCatalog, deps: MachineDependencies): Promise<MachineContext | Waiting> {
  const ns = machine.metadata.namespace;
  const clusterName = machine.spec.clusterRef.name;
  const credentialsRef = machine.spec.ssh.credentialsSecretRef?.name ?? "";
  const credentials = await deps.secret(ns, credentialsRef);
  if (!credentials) return wait("WaitingForCredentials", `Secret ${ns}/${credentialsRef} (spec.ssh.credentialsSecretRef) does not exist`);
  if (!credentials.privateKey && !credentials.password) {
    return wait("InvalidCredentials", `Secret ${ns}/${credentialsRef} has neither a "privateKey" nor a "password" key`);
  }
  const mastersNamespace = await deps.mastersNamespace(catalog.cluster);
  const caRef = caSecretOf(catalog.cluster, mastersNamespace);
  const refused = caSecretRefProblem(caRef, mastersNamespace);
  if (refused) return wait("UntrustedCaReference", `Cluster ${ns}/${clusterName}: ${refused}; nothing runs until its stack records the reference again`);
  const caAt = `Secret ${caRef.namespace}/${caRef.name}, keys ${caRef.certificateKey} and ${caRef.privateKeyKey}`;
  const ca = await deps.secret(caRef.namespace, caRef.name);
  const caCertificate = ca?.[caRef.certificateKey];
  const caPrivateKey = ca?.[caRef.privateKeyKey];
  if (!caCertificate || !caPrivateKey) return wait("WaitingForCluster", `the CA of Cluster ${ns}/${clusterName} (${caAt}) is not there yet`);
  const adminRef = adminKubeconfigSecretOf(catalog.cluster, mastersNamespace);
  const adminAt = `Secret ${adminRef.namespace}/${adminRef.name}, key ${adminRef.key}`;
  const admin = (await deps.secret(adminRef.namespace, adminRef.name))?.[adminRef.key];
  if (!admin) return wait("WaitingForCluster", `the admin kubeconfig of Cluster ${ns}/${clusterName} (${adminAt}) is not there yet`);
  let adminKubeconfig: string;
  let server: string;
  let trustBundle: string;
  try {
    const what = `the admin kubeconfig of Cluster ${ns}/${clusterName} (${adminAt})`;
    const parts = trustedKubeconfigParts(admin, what);
    adminKubeconfig = renderTrustedKubeconfig(parts);
    server = parts.server;
    const refused = trustProblem(caCertificate, ca?.[CA_BUNDLE_KEY], parts.caCertPem, {
      ca: `the CA of Cluster ${ns}/${clusterName} (${caAt})`,
      admin: `its admin kubeconfig (${adminAt})`,
      bundle: `Secret ${caRef.namespace}/${caRef.name}, key ${CA_BUNDLE_KEY}`,
    });
    if (refused) return wait("UntrustedCaReference", `${refused}; nothing runs until the stack of the Cluster writes them again`);
    // Rebuilt from its certificates only: whatever else the key held (a private key's PEM) never reaches the host's 0644 ca.crt.
    const bundle = ca?.[CA_BUNDLE_KEY];
    trustBundle = bundle && bundleFingerprint(bundle) !== bundleFingerprint(caCertificate) ? parseCertificates(bundle, CA_BUNDLE_KEY).map((c) => c.toString()).join("") : caCertificate;
  } catch (error) {
    if (error instanceof UntrustedKubeconfigError) return wait("UntrustedKubeconfig", `${error.message}; nothing runs until the stack of the Cluster writes it again`);
    throw error;
  }
  const { packages, revision } = catalog;
  if (!packages || !revision) return wait("HeldByRollout", catalog.packagesReason);
  return {
    clusterKey: catalog.clusterKey,
    // The server of the kubeconfig the stack wrote, not the Cluster's status (the tenant's to edit).
    endpoint: server,
    packagesReason: catalog.packagesReason,
    runtime: catalog.runtime,
    network: catalog.network,
    packages,
    revision,
    cluster: { endpoint: server, caCertificate, trustBundle, caPrivateKey, adminKubeconfig },
    credentials: { privateKey: credentials.privateKey || undefined, password: credentials.password || undefined },
  };
}

/**
 * Why the CA Secret's certificate and bundle may not go onto a host, or undefined: the signing CA
 * must be one of the admin kubeconfig's CAs (the stack wrote both; a CA reference naming another
 * Secret cannot pass a certificate of its choosing), and the bundle must hold it (a bundle without
 * it would make the kubelet refuse the certificates signed by it). Never quotes a value.
 */
export function trustProblem(caCertificate: string, bundle: string | undefined, adminCaPem: string, at: { ca: string; admin: string; bundle: string }): string | undefined {
  const fingerprints = (pem: string, what: string) => new Set(parseCertificates(pem, what).map((c) => certificateFingerprint(c.toString())));
  let admin: Set<string>;
  try {
    admin = fingerprints(adminCaPem, `the CA data of ${at.admin}`);
  } catch (error) {
    return (error as Error).message;
  }
  let signing: string | undefined;
  try {
    signing = certificateFingerprint(caCertificate, at.ca);
  } catch {
    signing = undefined;
  }
  if (signing === undefined || !admin.has(signing)) return `${at.ca} is not a CA of ${at.admin}`;
  if (bundle === undefined || bundle === "") return undefined;
  try {
    if (!fingerprints(bundle, `the trust bundle (${at.bundle})`).has(signing)) return `the trust bundle (${at.bundle}) does not hold ${at.ca}`;
  } catch (error) {
    return (error as Error).message;
  }
  return undefined;
}
