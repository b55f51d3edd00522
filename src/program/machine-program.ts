/**
 * The Pulumi program of one operator-managed Machine: a WorkerNode whose steps run through the
 * OpenSSH client (SshStep). The operator runs it as an inline Automation API program in a stack
 * of its own (`<namespace>.<name>` in project `kube-on-kube-machines`; see docs/architecture.md
 * for why one stack per machine).
 *
 * Everything secret (SSH credentials, the cluster CA key, the admin kubeconfig) arrives here from
 * Secrets read at reconcile time and enters the program as Pulumi secrets, so the state holds it
 * encrypted and nothing prints it.
 */
import * as pulumi from "@pulumi/pulumi";
import type { ContainerRuntimeSettings, MachineSpec, ObservedVersions, WorkerPackages } from "../api/v1alpha1";
import { WorkerNode, type WorkerCertificates, type WorkerNodeArgs } from "../components/worker-node";

/**
 * Host settings the operator applies to every Machine (`kok operator --worker-defaults FILE`):
 * what differs between a datacenter's hosts and a sandbox's, not per-machine facts.
 */
export interface WorkerDefaults {
  readonly serviceManager?: WorkerNodeArgs["serviceManager"];
  readonly installRoot?: string;
  readonly kubelet?: WorkerNodeArgs["kubelet"];
  readonly containerd?: WorkerNodeArgs["containerd"];
  readonly preflight?: WorkerNodeArgs["preflight"];
  readonly readyTimeoutSeconds?: number;
  readonly certificateValidityHours?: number;
  /**
   * When the operator renews the kubelet's certificates, as fractions of their validity: the
   * renewal window opens at `windowStart` (default 0.7) and each Machine's point is spread over
   * the next `spread` (default 0.15) by its uid; at most `maxConcurrentPerCluster` renewals or
   * trust re-installs run at once per Cluster (default a tenth of its Machines, at least 1).
   */
  readonly certificateRenewal?: { readonly windowStart?: number; readonly spread?: number; readonly maxConcurrentPerCluster?: number };
  /**
   * Bind the kubelet's API and health endpoints to the machine's IP instead of all addresses:
   * several kubelets sharing one network stack (test hosts on 127.0.0.x) must not collide.
   */
  readonly kubeletBindToMachineIp?: boolean;
}

export interface MachineProgramArgs {
  /** The Machine's name: the WorkerNode's name and so the prefix of every step. */
  readonly name: string;
  readonly spec: MachineSpec;
  readonly packages: WorkerPackages;
  /** The catalog's sandbox image (else the Cluster's imageRepository's pause) and registry mirrors. */
  readonly runtime?: ContainerRuntimeSettings;
  readonly credentials: { readonly privateKey?: string; readonly password?: string };
  readonly cluster: {
    readonly endpoint: string;
    readonly caCertificate: string;
    /** What the host trusts (the CA Secret's ca-bundle.crt); default caCertificate. */
    readonly trustBundle?: string;
    readonly caPrivateKey: string;
    readonly adminKubeconfig: string;
    /** The Cluster's spec.network.serviceCIDR: the kubelet's clusterDNS is its tenth address. */
    readonly serviceCIDR?: string;
    /** The Cluster's spec.network.clusterDomain: the kubelet's clusterDomain. */
    readonly clusterDomain?: string;
  };
  readonly defaults?: WorkerDefaults;
  /** Per-machine install root (test hosts that share one filesystem); wins over defaults.installRoot. */
  readonly installRoot?: string;
  /** WorkerNodeArgs.reinstall: bumped by a repair that re-runs the install. */
  readonly reinstall?: number;
  /** WorkerNodeArgs.renewal: bumped at the Machine's planned certificate renewal. */
  readonly renewal?: number;
}

export interface MachineProgramOutputs {
  readonly observedVersions: pulumi.Output<ObservedVersions>;
  readonly nodeName: pulumi.Output<string>;
  /** The kubelet's certificates (public PEMs) and the trust bundle on the host (worker-node.ts, WorkerCertificates). */
  readonly certificates: pulumi.Output<WorkerCertificates>;
}

/** The WorkerNode arguments of a Machine (exported for the component tests). */
export function machineNodeArgs(args: MachineProgramArgs): WorkerNodeArgs {
  const d = args.defaults ?? {};
  const kubelet = d.kubeletBindToMachineIp
    ? { ...d.kubelet, config: { ...d.kubelet?.config, address: args.spec.ip, healthzBindAddress: args.spec.ip } }
    : d.kubelet;
  const secret = (v: string | undefined) => (v === undefined ? undefined : pulumi.secret(v));
  return {
    machine: args.spec,
    packages: args.packages,
    credentials: { privateKey: secret(args.credentials.privateKey), password: secret(args.credentials.password) },
    cluster: {
      endpoint: args.cluster.endpoint,
      caCertificate: args.cluster.caCertificate,
      ...(args.cluster.trustBundle === undefined ? {} : { trustBundle: args.cluster.trustBundle }),
      caPrivateKey: pulumi.secret(args.cluster.caPrivateKey),
      adminKubeconfig: pulumi.secret(args.cluster.adminKubeconfig),
      serviceCIDR: args.cluster.serviceCIDR,
      clusterDomain: args.cluster.clusterDomain,
    },
    stepProvider: "openssh",
    serviceManager: d.serviceManager,
    installRoot: args.installRoot ?? d.installRoot,
    kubelet,
    runtime: args.runtime,
    containerd: d.containerd,
    preflight: d.preflight,
    readyTimeoutSeconds: d.readyTimeoutSeconds,
    certificateValidityHours: d.certificateValidityHours,
    reinstall: args.reinstall,
    renewal: args.renewal,
  };
}

export function machineProgram(args: MachineProgramArgs): MachineProgramOutputs {
  const node = new WorkerNode(args.name, machineNodeArgs(args));
  return { observedVersions: node.observedVersions, nodeName: node.nodeName, certificates: node.certificates };
}
