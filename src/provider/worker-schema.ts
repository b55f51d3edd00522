/**
 * The schema of WorkerNode for the component package (see schema.ts): its machine and packages
 * from the TypeBox API, the rest from WorkerNodeArgs. `after` (resources to wait for) is not an
 * input: other languages give the resource option `dependsOn`, which the provider passes on.
 */
import * as api from "../api/v1alpha1";
import { StepProvider } from "../components/worker-node";
import { ServiceManager } from "../host/scripts/install";
import { PreflightCheck } from "../host/scripts/preflight";
import { ref, secretStr, str, typeToken, type TypeCollector } from "./schema-types";

const oneOf = (description: string, values: Record<string, string>) => ({
  type: "string",
  description: `${description} One of ${Object.values(values).map((v) => JSON.stringify(v)).join(", ")}.`,
});

export function workerNodeResource(collector: TypeCollector): Record<string, unknown> {
  const machine = collector.property(api.MachineSpec, "machine", "MachineSpec");
  const packages = collector.property(api.WorkerPackages, "packages", "WorkerPackages");
  collector.types[typeToken("WorkerCredentials")] = {
    type: "object",
    description: "SSH credentials; the private key wins over the password.",
    properties: { privateKey: secretStr("PEM private key."), password: secretStr("Password.") },
  };
  collector.types[typeToken("WorkerCluster")] = {
    type: "object",
    description: "The business cluster the node joins.",
    properties: {
      endpoint: str("The kube-apiserver URL the kubelet connects to."),
      caCertificate: str("The cluster CA certificate (PEM)."),
      trustBundle: str(
        "What the kubelet trusts (PEM, one or more CAs): its kubeconfig's CA data and its --client-ca-file. During a CA rotation the old and the new CA (a ControlPlane's certificateAuthorities.clusterBundle). Default: caCertificate.",
      ),
      caPrivateKey: secretStr("The cluster CA key (PEM): the kubelet's client certificate is signed with it. Mutually exclusive with bootstrapToken."),
      bootstrapToken: secretStr("A bootstrap token (<id>.<secret>) instead of a signed certificate."),
      adminKubeconfig: secretStr("An admin kubeconfig: enables drain, the Ready gate, uncordon and Node removal on delete."),
      serviceCIDR: str("The cluster's service range (its network.serviceCIDR): the kubelet's clusterDNS is its tenth address, the cluster DNS Service's. Must be known at construct time."),
      clusterDomain: str("The cluster's DNS domain (its network.clusterDomain): the kubelet's clusterDomain. Must be known at construct time."),
    },
    required: ["endpoint", "caCertificate"],
  };
  collector.types[typeToken("KubeletSettings")] = {
    type: "object",
    properties: {
      clusterDNS: {
        type: "array",
        items: { type: "string" },
        description: "Default: the tenth address of cluster.serviceCIDR when given, else [\"10.96.0.10\"]. Set it for a node-local DNS cache.",
      },
      clusterDomain: str("Default: cluster.clusterDomain when given, else cluster.local."),
      maxPods: { type: "integer", description: "Default: 110." },
      cgroupDriver: str('Default: "systemd". One of "systemd", "cgroupfs".'),
      config: { type: "object", additionalProperties: { $ref: "pulumi.json#/Any" }, description: "Extra KubeletConfiguration fields; they override the generated ones." },
    },
  };
  collector.types[typeToken("ContainerRuntime")] = {
    type: "object",
    properties: {
      sandboxImage: str("The pod sandbox (pause) image. Default: registry.k8s.io/pause:3.10.2."),
      registryMirrors: {
        type: "object",
        additionalProperties: { type: "array", items: { type: "string" } },
        description: "Registry host[:port] -> mirror URLs tried in order (one certs.d/<registry>/hosts.toml each).",
      },
    },
  };
  collector.types[typeToken("ContainerdHost")] = {
    type: "object",
    properties: {
      restrictOomScoreAdj: { type: "boolean", description: "No container gets a lower oom_score_adj than containerd's own (hosts without CAP_SYS_RESOURCE). Default: false." },
    },
  };
  collector.types[typeToken("Preflight")] = {
    type: "object",
    properties: {
      arch: str("Expected architecture (uname -m)."),
      minFreeDiskMiB: { type: "integer" },
      // A schema's array items carry no description: the values go on the array.
      ignore: { type: "array", items: { type: "string" }, description: oneOf("Checks reported as warnings instead of failing.", PreflightCheck).description },
    },
  };
  collector.types[typeToken("KubeletCertificate")] = {
    type: "object",
    description: "A kubelet certificate as issued (public PEMs, never a key).",
    properties: { certPem: str("The certificate."), caCertPem: str("The CA that signed it.") },
    required: ["certPem", "caCertPem"],
  };
  collector.types[typeToken("WorkerCertificates")] = {
    type: "object",
    description: "The kubelet's certificates with the CA that signed each, and the trust bundle installed on the host; no certificate with a bootstrap token.",
    properties: {
      kubeletClient: ref("KubeletCertificate"),
      kubeletServing: ref("KubeletCertificate"),
      trustBundle: str("The trust bundle installed on the host (ca.crt and the kubelet kubeconfig's CA data)."),
    },
    required: ["trustBundle"],
  };
  return {
    isComponent: true,
    description: "One worker host joined to a business cluster over SSH: preflight, containerd, kubelet, CNI, join, verify.",
    inputProperties: {
      machine,
      packages,
      credentials: ref("WorkerCredentials"),
      cluster: ref("WorkerCluster"),
      runtime: ref("ContainerRuntime"),
      ...nodeOptions(),
      reinstall: { type: "integer", description: "A repair token: changing it re-runs every install step." },
      renewal: { type: "integer", description: "A renewal token (≥ 0): changing it replaces the kubelet's keys and so re-issues both certificates now, whatever their expiry." },
    },
    requiredInputs: ["machine", "credentials", "cluster"],
    properties: {
      nodeName: str("The Node's name (the machine's hostname)."),
      observedVersions: { type: "object", additionalProperties: { type: "string" }, description: "Versions read back from the host." },
      binaryVersions: { type: "object", additionalProperties: { type: "string" }, description: "The first line each installed binary prints for --version." },
      certificates: ref("WorkerCertificates"),
    },
    required: ["nodeName", "observedVersions", "binaryVersions", "certificates"],
  };
}

/** The options NodePool passes to every WorkerNode (its `node` input), as WorkerNode's inputs. */
export function nodeOptions(): Record<string, Record<string, unknown>> {
  return {
    installRoot: str('Where files go on the host. Default: "/".'),
    serviceManager: oneOf('Default: "systemd".', ServiceManager),
    stepProvider: oneOf('What runs the steps. Default: "command" (needs the command provider plugin).', StepProvider),
    allowUnknownHostKey: { type: "boolean", description: "Accept a machine without ssh.hostKey. Default: false." },
    kubelet: ref("KubeletSettings"),
    containerd: ref("ContainerdHost"),
    preflight: ref("Preflight"),
    certificateValidityHours: { type: "integer", description: "Validity of the kubelet's client certificate. Default: 8760." },
    readyTimeoutSeconds: { type: "integer", description: "Drain and Ready-gate timeout. Default: 600." },
  };
}
