/**
 * `WorkerNode`: one worker host over SSH. Each step is a @pulumi/command `remote.Command` whose
 * script and triggers are built only from that step's own inputs, so an upgrade re-runs exactly the
 * steps whose inputs changed (and the verify step, which reads the versions back).
 *
 * Steps, in order: host → preflight → [drain] → containerd → [runc] → kubelet → cni → join →
 * verify → [ready]. `drain` and `ready` run kubectl on the Pulumi host and exist only when
 * `cluster.adminKubeconfig` is given. Deleting the WorkerNode removes the Node (drain first) and
 * then cleans the host (the `host` step's delete).
 */
import * as pulumi from "@pulumi/pulumi";
import {
  SpecValidationError,
  validateMachineSpec,
  validatePackages,
  registryMirrorsProblems,
  CLUSTER_DNS_ADDRESS_INDEX,
  IMAGE_PATTERN,
  cidrSize,
  clusterDnsAddress,
  isDns1123Subdomain,
  matches,
  parseCidr,
  type ContainerRuntimeSettings,
  type MachineSpec,
  type ObservedVersions,
  type Problem,
  type WorkerPackages,
} from "../api/v1alpha1";
import { containerdScript, cniScript, kubeletScript, runcScript, ServiceManager, type ContainerdHostSettings, type HostLayout, type KubeletSettings } from "../host/scripts/install";
import { drainScript, readyScript, removeNodeScript } from "../host/scripts/kubectl";
import { cleanupScript, hostMarkerScript, joinScript, nodeLabels, verifyScript } from "../host/scripts/node";
import { preflightScript, type PreflightCheck } from "../host/scripts/preflight";
import { asRoot } from "../host/scripts/sudo";

import { loadPulumiCommand, type RemoteConnectionArgs } from "./command-steps";
import { SshStep } from "./ssh-step";
import { kubeletCredentials, kubeletServingCertificate, kubeletTrustBundle } from "./kubelet-certificates";
import { trustedKubeconfig, trustedKubeconfigParts, UntrustedKubeconfigError } from "./trusted-kubeconfig";
import { componentType, withLegacyAlias } from "./type-tokens";

export { ServiceManager } from "../host/scripts/install";

/**
 * Which Pulumi provider runs a WorkerNode's steps: @pulumi/command's `remote.Command`, or SshStep's
 * dynamic provider over the OpenSSH client (ssh-step.ts).
 */
export const StepProvider = { Command: "command", OpenSsh: "openssh" } as const;
export type StepProvider = (typeof StepProvider)[keyof typeof StepProvider];

export interface WorkerNodeArgs {
  /** The machine. Validated before anything is created. */
  readonly machine: MachineSpec;
  /** What to install. Default: `machine.packages` (one of the two must be set). */
  readonly packages?: WorkerPackages;
  /** SSH credentials (made Pulumi secrets). The private key wins over the password. */
  readonly credentials: { readonly privateKey?: pulumi.Input<string>; readonly password?: pulumi.Input<string> };
  /** The business cluster the node joins. */
  readonly cluster: {
    /** The kube-apiserver URL the kubelet connects to, e.g. https://prod-a.k8s.example.com:6443. */
    readonly endpoint: pulumi.Input<string>;
    /** The cluster CA certificate (PEM). */
    readonly caCertificate: pulumi.Input<string>;
    /**
     * What the kubelet trusts (PEM, one or more CAs): its kubeconfig's CA data (the apiserver's
     * serving certificate) and its --client-ca-file (the apiserver's client certificate when it
     * calls the kubelet). During a CA rotation the old and the new CA. Default: caCertificate.
     */
    readonly trustBundle?: pulumi.Input<string>;
    /** The cluster CA key (PEM): the kubelet's client certificate is signed with it. Mutually exclusive with bootstrapToken. */
    readonly caPrivateKey?: pulumi.Input<string>;
    /** A bootstrap token (`<id>.<secret>`) instead of a signed certificate; the cluster must approve the kubelet's CSR. */
    readonly bootstrapToken?: pulumi.Input<string>;
    /**
     * The cluster's service range (its spec.network.serviceCIDR): the kubelet's clusterDNS is its
     * tenth address, where the cluster DNS Service sits, unless `kubelet.clusterDNS` says otherwise.
     * Default: none (clusterDNS 10.96.0.10, the tenth of the default 10.96.0.0/12).
     */
    readonly serviceCIDR?: string;
    /** The cluster's DNS domain (spec.network.clusterDomain), unless `kubelet.clusterDomain` says otherwise. Default: cluster.local. */
    readonly clusterDomain?: string;
    /**
     * An admin kubeconfig: enables drain before upgrades, the Ready gate, uncordon, and Node removal
     * on delete. Default none. Only its server, CA and client certificate (or token) are used:
     * kubectl gets a kubeconfig rebuilt from them, and one with `exec`, `auth-provider`, file paths,
     * `proxy-url` or `insecure-skip-tls-verify` is refused (trusted-kubeconfig.ts).
     */
    readonly adminKubeconfig?: pulumi.Input<string>;
  };
  /** Where files go on the host. Default "/"; tests use a directory per host. */
  readonly installRoot?: string;
  /**
   * Default "systemd". "process" runs containerd and the kubelet as detached processes with pid
   * files (hosts without systemd); "none" writes unit files but starts nothing. Both skip the
   * kernel set-up of preflight (see docs/workers.md).
   */
  readonly serviceManager?: ServiceManager;
  /**
   * What runs the steps. "command" (default): @pulumi/command, an optional peer loaded only then (needs its provider plugin).
   * "openssh": the OpenSSH client from a dynamic provider (see ssh-step.ts), for machines where
   * that plugin cannot be installed. Same steps, names, scripts and secrets either way.
   */
  readonly stepProvider?: StepProvider;
  /** Accept a machine without `ssh.hostKey` (the host is then not authenticated). Default false. */
  readonly allowUnknownHostKey?: boolean;
  readonly kubelet?: KubeletSettings;
  /**
   * containerd's pod sandbox image (default registry.k8s.io/pause:3.10.2) and registry mirrors
   * (one certs.d/<registry>/hosts.toml each). The operator takes them from the catalog and the Cluster.
   */
  readonly runtime?: ContainerRuntimeSettings;
  /** Host-level containerd settings (restrictOomScoreAdj for hosts without CAP_SYS_RESOURCE). */
  readonly containerd?: ContainerdHostSettings;
  readonly preflight?: { readonly arch?: string; readonly minFreeDiskMiB?: number; readonly ignore?: readonly PreflightCheck[] };
  /**
   * Validity of the kubelet's client and serving certificates (both signed by the cluster CA when
   * caPrivateKey is given). Default 8760 h (a year); re-issued 720 h before expiry on refresh.
   */
  readonly certificateValidityHours?: number;
  /**
   * A renewal token: changing it replaces the kubelet's keys and so re-issues both certificates
   * now, whatever their expiry. The operator bumps it at the Machine's planned renewal. Default none.
   */
  readonly renewal?: number;
  /** Drain and Ready-gate timeout. Default 600 s. */
  readonly readyTimeoutSeconds?: number;
  /**
   * A repair token: changing it re-runs every install step (runtime, kubelet, CNI, join, verify)
   * even though their inputs did not change. The operator bumps it to reinstall a broken host.
   */
  readonly reinstall?: number;
  /** Resources the first step waits for (NodePool: the previous batch's health gates). */
  readonly after?: pulumi.Input<pulumi.Resource>[];
}

/** Every problem of the arguments that is known at plan time. */
export function workerNodeProblems(args: WorkerNodeArgs): Problem[] {
  const problems = validateMachineSpec(args.machine, "machine", {
    credentials: "inline",
    allowUnknownHostKey: args.allowUnknownHostKey ?? false,
  });
  if (args.packages !== undefined) problems.push(...validatePackages(args.packages, "packages"));
  else if (args.machine?.packages === undefined) problems.push({ path: "packages", message: "set packages or machine.packages" });
  if (!args.credentials || (args.credentials.privateKey === undefined && args.credentials.password === undefined)) {
    problems.push({ path: "credentials", message: "set privateKey or password for the SSH connection" });
  }
  const c = args.cluster;
  if (!c || c.endpoint === undefined || c.caCertificate === undefined) {
    problems.push({ path: "cluster", message: "endpoint and caCertificate are required" });
  } else if ((c.caPrivateKey === undefined) === (c.bootstrapToken === undefined)) {
    problems.push({ path: "cluster", message: "set exactly one of caPrivateKey (sign the kubelet certificate) or bootstrapToken" });
  }
  if (c?.serviceCIDR !== undefined) {
    const cidr = parseCidr(c.serviceCIDR);
    if (!cidr || cidr.hostBitsSet) problems.push({ path: "cluster.serviceCIDR", message: `${JSON.stringify(c.serviceCIDR)} is not a CIDR like 10.96.0.0/12 (without host bits)` });
    else if (cidrSize(cidr) <= BigInt(CLUSTER_DNS_ADDRESS_INDEX)) {
      problems.push({ path: "cluster.serviceCIDR", message: `${c.serviceCIDR} has no ${CLUSTER_DNS_ADDRESS_INDEX}th address for the cluster DNS Service` });
    }
  }
  if (c?.clusterDomain !== undefined && !isDns1123Subdomain(c.clusterDomain)) {
    problems.push({ path: "cluster.clusterDomain", message: `${JSON.stringify(c.clusterDomain)} is not a DNS domain like cluster.local` });
  }
  // A trust bundle given as a value must hold a certificate; an Output (a ControlPlane's bundle) is PEM its CAs made.
  const bundle = c?.trustBundle;
  if (bundle !== undefined && !pulumi.Output.isInstance(bundle) && !(bundle instanceof Promise) && !(typeof bundle === "string" && bundle.includes("-----BEGIN CERTIFICATE-----"))) {
    problems.push({ path: "cluster.trustBundle", message: "must be PEM text holding one or more CA certificates (-----BEGIN CERTIFICATE-----)" });
  }
  // A plain text is checked here with the rest; an Output when its value is known (trustedAdminKubeconfig).
  if (typeof c?.adminKubeconfig === "string") {
    try {
      trustedKubeconfigParts(c.adminKubeconfig);
    } catch (error) {
      if (!(error instanceof UntrustedKubeconfigError)) throw error;
      problems.push(...error.problems.map((message) => ({ path: "cluster.adminKubeconfig", message })));
    }
  }
  if (args.serviceManager !== undefined && !Object.values(ServiceManager).includes(args.serviceManager)) {
    problems.push({ path: "serviceManager", message: `must be one of ${Object.values(ServiceManager).join(", ")}` });
  }
  if (args.stepProvider !== undefined && !Object.values(StepProvider).includes(args.stepProvider)) {
    problems.push({ path: "stepProvider", message: `must be one of ${Object.values(StepProvider).join(", ")}` });
  }
  if (args.runtime?.sandboxImage !== undefined && !matches(IMAGE_PATTERN, args.runtime.sandboxImage)) {
    problems.push({ path: "runtime.sandboxImage", message: `${JSON.stringify(args.runtime.sandboxImage)} is not an image reference such as registry.k8s.io/pause:3.10.2` });
  }
  problems.push(...registryMirrorsProblems(args.runtime?.registryMirrors, "runtime.registryMirrors"));
  if (args.installRoot !== undefined && !args.installRoot.startsWith("/")) {
    problems.push({ path: "installRoot", message: `"${args.installRoot}" must be an absolute path` });
  }
  if (args.reinstall !== undefined && !(Number.isInteger(args.reinstall) && args.reinstall >= 0)) {
    problems.push({ path: "reinstall", message: `must be a non-negative integer (got ${JSON.stringify(args.reinstall)})` });
  }
  if (args.renewal !== undefined && !(Number.isInteger(args.renewal) && args.renewal >= 0)) {
    problems.push({ path: "renewal", message: `must be a non-negative integer (got ${JSON.stringify(args.renewal)})` });
  }
  return problems;
}

/** The observed versions printed by the verify step (`{"observedVersions":…,"binaries":…}`). */
export function parseVerifyOutput(stdout: string | undefined): { observedVersions: ObservedVersions; binaries: Record<string, string> } {
  const last = (stdout ?? "").trim().split("\n").pop();
  if (!last) return { observedVersions: {}, binaries: {} };
  const parsed = JSON.parse(last) as { observedVersions?: ObservedVersions; binaries?: Record<string, string> };
  return { observedVersions: parsed.observedVersions ?? {}, binaries: parsed.binaries ?? {} };
}

export class WorkerNode extends pulumi.ComponentResource {
  /** Versions read back from the host by the verify step. */
  readonly observedVersions: pulumi.Output<ObservedVersions>;
  /** The first line each installed binary prints for --version. */
  readonly binaryVersions: pulumi.Output<Record<string, string>>;
  readonly nodeName: pulumi.Output<string>;
  /**
   * The kubelet's certificates as issued (public PEMs, never a key) with the CA that signed each,
   * and the trust bundle installed on the host; no certificate with a bootstrap token.
   */
  readonly certificates: pulumi.Output<WorkerCertificates>;
  /** The step a later batch waits for: `ready` when the cluster is reachable, else `verify`. */
  readonly healthGate: pulumi.Resource;
  /** Every step by its role, for dependsOn and tests. */
  readonly steps: Readonly<Record<string, pulumi.Resource>>;

  constructor(name: string, args: WorkerNodeArgs, opts?: pulumi.ComponentResourceOptions) {
    const problems = workerNodeProblems(args);
    if (problems.length > 0) throw new SpecValidationError(`WorkerNode ${name}`, problems);
    super(componentType("WorkerNode"), name, {}, withLegacyAlias("WorkerNode", opts));
    const created = createWorkerNode(name, this, args);
    this.steps = created.steps;
    this.healthGate = created.healthGate;
    this.observedVersions = created.verify.stdout.apply((out) => parseVerifyOutput(out).observedVersions);
    this.binaryVersions = created.verify.stdout.apply((out) => parseVerifyOutput(out).binaries);
    this.nodeName = pulumi.output(args.machine.hostname);
    this.certificates = created.certificates;
    this.registerOutputs({ observedVersions: this.observedVersions, binaryVersions: this.binaryVersions, nodeName: this.nodeName, certificates: this.certificates });
  }
}

function createWorkerNode(name: string, parent: pulumi.Resource, args: WorkerNodeArgs) {
  const m = args.machine;
  const packages = (args.packages ?? m.packages) as WorkerPackages;
  const layout: HostLayout = { installRoot: args.installRoot ?? "/", serviceManager: args.serviceManager ?? ServiceManager.Systemd };
  const timeout = args.readyTimeoutSeconds ?? 600;
  const { steps, remote, local } = stepChain(name, parent, args);

  remote("host", hostMarkerScript(m.hostname, layout), [m.hostname, layout.installRoot], { delete: cleanupScript(layout) });
  const preflight = { hostname: m.hostname, ...args.preflight };
  remote("preflight", preflightScript(preflight, layout), [preflight, layout]);
  // Drain before anything the node's pods run on changes: the runtime as much as the kubelet.
  const admin = trustedAdminKubeconfig(name, args.cluster.adminKubeconfig);
  if (admin !== undefined) {
    local("drain", drainScript(m.hostname, timeout), [packages.kubelet, packages.containerd, packages.runc ?? null], admin, removeNodeScript(m.hostname, timeout));
  }
  const cgroupDriver = args.kubelet?.cgroupDriver ?? "systemd";
  // Only a set token joins the triggers, so states written before the token existed stay as they are.
  const repair = args.reinstall ? [{ reinstall: args.reinstall }] : [];
  // Only set runtime settings join the triggers, so states written before they existed stay as they are.
  const runtime: unknown[] = args.runtime?.sandboxImage !== undefined || args.runtime?.registryMirrors !== undefined ? [{ runtime: args.runtime }] : [];
  if (args.containerd?.restrictOomScoreAdj !== undefined) runtime.push({ containerd: args.containerd });
  remote("containerd", containerdScript(packages.containerd, layout, cgroupDriver, args.runtime, args.containerd), [packages.containerd, cgroupDriver, ...runtime, ...repair]);
  if (packages.runc) remote("runc", runcScript(packages.runc, layout), [packages.runc, ...repair]);
  // The cluster's network joins the triggers only when given, so states written before it existed stay as they are.
  const network = args.cluster.serviceCIDR !== undefined || args.cluster.clusterDomain !== undefined ? [{ network: clusterNetwork(args) }] : [];
  const kubelet = { ...clusterNetwork(args), ...args.kubelet };
  // The serving certificate needs the CA key; with a bootstrap token the kubelet keeps its self-signed one (see docs/workers.md).
  const serving = kubeletServingCertificate(name, parent, args);
  remote(
    "kubelet",
    kubeletScript(packages.kubelet, kubelet, layout, serving !== undefined),
    [packages.kubelet, args.kubelet ?? {}, ...network, ...repair],
    serving === undefined ? {} : { stdin: serving.stdin },
    serving === undefined ? [] : ["stdin"],
  );
  remote("cni", cniScript(packages.cni, layout), [packages.cni, ...repair]);

  const labels = nodeLabels(m.labels, m.idc);
  const credentials = kubeletCredentials(name, parent, args);
  // The trust bundle is the join step's `caCertificate`: ca.crt (--client-ca-file) and the
  // kubeconfig's CA data. Without a rotation it is the CA itself, so states before it stay as they are.
  const caCertificate = kubeletTrustBundle(args);
  const join = caCertificate.apply((ca) =>
    joinScript(
      { ip: m.ip, hostname: m.hostname, labels, taints: m.taints ?? [], caCertificate: ca, credentials: args.cluster.bootstrapToken !== undefined ? "bootstrapToken" : "certificate" },
      layout,
    ),
  );
  remote("join", join, [m.ip, m.hostname, labels, m.taints ?? [], caCertificate, ...repair], { stdin: credentials.kubeconfig }, ["stdin", "stdout", "stderr"]);
  const verify = remote("verify", verifyScript(layout), [packages, ...repair]);
  const ready = admin !== undefined ? local("ready", readyScript(m.hostname, timeout), [packages, labels, m.taints ?? [], ...repair], admin) : undefined;
  // Reported once the join step installed them: the host has what the outputs say.
  const certificates = pulumi
    .all([credentials.issued?.certPem, credentials.issued?.caCertPem, serving?.issued.certPem, serving?.issued.caCertPem, caCertificate, steps.join.urn])
    .apply(([clientPem, clientCa, servingPem, servingCa, trustBundle]): WorkerCertificates => ({
      ...(clientPem && clientCa ? { kubeletClient: { certPem: clientPem, caCertPem: clientCa } } : {}),
      ...(servingPem && servingCa ? { kubeletServing: { certPem: servingPem, caCertPem: servingCa } } : {}),
      trustBundle,
    }));
  return { steps, verify, healthGate: ready ?? verify, certificates };
}

/** What a WorkerNode reports of its kubelet's certificates: public PEMs only. */
export interface WorkerCertificates {
  readonly kubeletClient?: { readonly certPem: string; readonly caCertPem: string };
  readonly kubeletServing?: { readonly certPem: string; readonly caCertPem: string };
  /** The trust bundle installed on the host (ca.crt and the kubelet kubeconfig's CA data). */
  readonly trustBundle: string;
}

/**
 * The steps of one WorkerNode as a chain: each runs after the one made before it (and after
 * `args.after`), through the provider `stepProvider` chooses. `remote` runs on the host, `local`
 * (kubectl against the business cluster) where Pulumi runs.
 */
function stepChain(name: string, parent: pulumi.Resource, args: WorkerNodeArgs) {
  const m = args.machine;
  const connection: RemoteConnectionArgs = {
    host: m.ip,
    port: m.ssh.port ?? 22,
    user: m.ssh.user ?? "root",
    hostKey: m.ssh.hostKey,
    privateKey: args.credentials.privateKey === undefined ? undefined : pulumi.secret(args.credentials.privateKey),
    password: args.credentials.password === undefined ? undefined : pulumi.secret(args.credentials.password),
    dialErrorLimit: 3,
    perDialTimeout: 10,
  };
  const steps: Record<string, pulumi.Resource> = {};
  let previous: pulumi.Resource | undefined;
  const after = args.after ?? [];

  // Loaded here, not at import: only this step provider needs the optional peer.
  const command = args.stepProvider === StepProvider.OpenSsh ? undefined : loadPulumiCommand(`WorkerNode ${name}`);
  const sshConnection = {
    host: m.ip,
    port: m.ssh.port ?? 22,
    user: m.ssh.user ?? "root",
    hostKey: m.ssh.hostKey,
    privateKey: connection.privateKey,
    password: connection.password,
  };
  const dependsOn = () => (previous ? [previous, ...after] : after);

  /** One remote step; `update` repeats `create` so a changed input re-runs the step in place (a replacement would run the old one's delete). */
  const remote = (role: string, text: pulumi.Input<string>, triggers: unknown[], given: { delete?: string; stdin?: pulumi.Input<string> } = {}, secretOutputs: string[] = []) => {
    // A user other than root runs every script through `sudo -n` (sudo.ts); root's text is unchanged.
    const script = typeof text === "string" ? asRoot(m.ssh.user, text) : pulumi.output(text).apply((t) => asRoot(m.ssh.user, t));
    const extra = { ...given, ...(given.delete === undefined ? {} : { delete: asRoot(m.ssh.user, given.delete) }) };
    const step = command
      ? new command.remote.Command(
          `${name}-${role}`,
          { connection, create: script, update: script, triggers, addPreviousOutputInEnv: false, ...extra },
          { parent, dependsOn: dependsOn(), additionalSecretOutputs: ["connection", ...secretOutputs] },
        )
      : new SshStep(`${name}-${role}`, { connection: sshConnection, create: script, update: script, triggers, ...extra }, { parent, dependsOn: dependsOn(), additionalSecretOutputs: secretOutputs });
    steps[role] = previous = step;
    return step;
  };
  const local = (role: string, create: string, triggers: unknown[], stdin: pulumi.Input<string>, del?: string) => {
    const step = command
      ? new command.local.Command(
          `${name}-${role}`,
          { create, update: create, delete: del, triggers, stdin: pulumi.secret(stdin), interpreter: ["/bin/bash", "-c"], addPreviousOutputInEnv: false },
          { parent, dependsOn: dependsOn(), additionalSecretOutputs: ["stdin"] },
        )
      : // stdin is the admin kubeconfig: a rotated one is stored, not a reason to drain again.
        new SshStep(`${name}-${role}`, { create, update: create, delete: del, triggers, stdin: pulumi.secret(stdin), stdinIsCredential: true }, { parent, dependsOn: dependsOn() });
    steps[role] = previous = step;
    return step;
  };
  return { steps, remote, local };
}

/**
 * The admin kubeconfig kubectl gets on stdin, rebuilt from its server, CA and credentials: the
 * kubectl steps run on the machine that runs Pulumi (the operator), where an `exec` entry would
 * run its command. A clean kubeconfig comes back unchanged, so the steps do not re-run for it.
 */
function trustedAdminKubeconfig(name: string, text: pulumi.Input<string> | undefined): pulumi.Output<string> | undefined {
  if (text === undefined) return undefined;
  return pulumi.secret(pulumi.output(text).apply((t) => trustedKubeconfig(t, `WorkerNode "${name}": cluster.adminKubeconfig`)));
}

/** The kubelet's DNS settings from the cluster's network, where given (explicit kubelet settings win). */
function clusterNetwork(args: WorkerNodeArgs): { clusterDNS?: string[]; clusterDomain?: string } {
  const { serviceCIDR, clusterDomain } = args.cluster;
  return {
    ...(serviceCIDR === undefined ? {} : { clusterDNS: [clusterDnsAddress(serviceCIDR)] }),
    ...(clusterDomain === undefined ? {} : { clusterDomain }),
  };
}
