/**
 * The components' Pulumi type tokens. Every component is `kube-on-kube:index:<Type>`: a package
 * offered to other Pulumi languages (src/provider) names its resources in the module `index`.
 * Before, most components lived in the modules `masters`, `workers` and `pki`; each one keeps an
 * alias to its old token, so a stack deployed before the move is neither replaced nor re-created. The
 * engine derives the children's aliases from their parent's, so aliasing the component covers
 * everything under it (proved by test/integration/type-token-aliases.test.ts).
 */
import type * as pulumi from "@pulumi/pulumi";

/** Each component's module before the move (`kube-on-kube:<module>:<Type>`); undefined: always `index`. */
const LEGACY_MODULES = {
  ApiServer: "masters",
  ControllerManager: "masters",
  Etcd: "masters",
  NetworkPolicies: "masters",
  Scheduler: "masters",
  ClusterPki: "pki",
  NodePool: "workers",
  WorkerNode: "workers",
  ControlPlane: undefined,
  EtcdBackup: undefined,
  EtcdMembership: undefined,
  ClusterAddons: undefined,
  FlannelNetwork: undefined,
  KubeProxy: undefined,
  CoreDns: undefined,
} as const;

export type ComponentTypeName = keyof typeof LEGACY_MODULES;

/** `kube-on-kube:index:<Type>`. */
export function componentType(type: ComponentTypeName): string {
  return `kube-on-kube:index:${type}`;
}

/** The token a component had before the move, or undefined when it is unchanged. */
export function legacyComponentType(type: ComponentTypeName): string | undefined {
  const module = LEGACY_MODULES[type];
  return module === undefined ? undefined : `kube-on-kube:${module}:${type}`;
}

/** The caller's options plus an alias to the component's old token (the caller's aliases kept). */
export function withLegacyAlias<T extends pulumi.ComponentResourceOptions>(type: ComponentTypeName, opts: T | undefined): T {
  const legacy = legacyComponentType(type);
  if (legacy === undefined) return { ...opts } as T;
  return { ...opts, aliases: [...(opts?.aliases ?? []), { type: legacy }] } as T;
}
