/**
 * kube-on-kube: Kubernetes as a service on your own hardware.
 *
 * The public API: the Pulumi components and the v1alpha1 resource model they take as arguments.
 * Everything else under src/ is internal and may change without notice.
 */
export { ControlPlane, controlPlaneProblems, type ControlPlaneArgs } from "./components/control-plane";
export { ClusterPki, type ClusterPkiArgs, type PemPair } from "./components/pki";
export { Etcd, type EtcdArgs } from "./components/etcd";
export { ApiServer, type ApiServerArgs } from "./components/apiserver";
export { ControllerManager, type ControllerManagerArgs } from "./components/controller-manager";
export { Scheduler, type SchedulerArgs } from "./components/scheduler";
export type { ClusterContext } from "./components/cluster-context";
export { WorkerNode, workerNodeProblems, StepProvider, ServiceManager, type WorkerNodeArgs } from "./components/worker-node";
export { NodePool, nodePoolProblems, type NodePoolArgs, type NodePoolMachine } from "./components/node-pool";
export { planRollout, type RolloutBatch } from "./components/rollout-plan";
export { SshStep, type SshStepArgs, type SshConnection } from "./components/ssh-step";
export { ClusterAddons, type ClusterAddonsArgs } from "./components/addons/cluster-addons";
export { FlannelNetwork, type FlannelNetworkArgs } from "./components/addons/flannel";
export { KubeProxy, type KubeProxyArgs } from "./components/addons/kube-proxy";
export { CoreDns, type CoreDnsArgs } from "./components/addons/coredns";

export {
  API_GROUP,
  API_VERSION,
  API_GROUP_VERSION,
  type Condition,
  type LastOperation,
  type LocalObjectReference,
  type ResourceRequirements,
  type Taint,
  type Toleration,
} from "./api/v1alpha1/common";
export {
  ClusterMode,
  ServiceType,
  AntiAffinity,
  type ClusterSpec,
  type ClusterStatus,
  type ClusterPhase,
  type EtcdSpec,
  type EtcdStorage,
  type ApiServerSpec,
  type ApiServerServiceSpec,
  type MasterComponentSpec,
  type NetworkSpec,
  type CertificatesSpec,
  type UserKubeconfigSpec,
} from "./api/v1alpha1/cluster";
export { resolveClusterSpec, MODE_REPLICAS, type ResolvedClusterSpec } from "./api/v1alpha1/cluster-defaults";
export type { MachineSpec, MachineStatus, SshSpec, ObservedVersions } from "./api/v1alpha1/machine";
export type { ClusterPackageVersionSpec, ClusterPackageVersionStatus, WorkerPackages, PackageArtifact, RolloutSpec } from "./api/v1alpha1/package-version";
export { validateMachineSpec, validateClusterPackageVersionSpec, validateNodePool } from "./api/v1alpha1/machine-validation";
export { validateClusterSpec, clusterNameProblems } from "./api/v1alpha1/cluster-validation";
export { SpecValidationError, formatProblem, type Problem } from "./api/v1alpha1/validation";
export { kubernetesUpgradeProblems, etcdUpgradeProblems, parseKubernetesVersion } from "./api/v1alpha1/versions";
