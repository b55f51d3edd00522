/**
 * The admin policy: what the platform lets tenants ask for in a Cluster or Machine. Tenants write
 * those objects in their own namespaces and may be hostile; the policy is configuration of the
 * operator (`kok operator --policy FILE`), which tenants cannot change. It bounds what a spec may
 * do to the meta-cluster's nodes (images, volumes, placement, sizes), to the masters' security
 * (flags) and to the network the operator reaches over SSH. The checks are in policy-checks.ts;
 * this file holds the shape, the defaults and the loader.
 */
import { Type, type Static } from "@sinclair/typebox";
import { parse as parseYaml } from "yaml";
import { StringEnum } from "./common";
import { parseCidr } from "./cidr";
import { isNormalAbsolutePath } from "./cluster-validation";
import { IMAGE_REPOSITORY_PATTERN, QUANTITY_PATTERN } from "./patterns";
import { backupEndpointRuleProblems, type BackupEndpointRule } from "./backup-endpoints";
import { preferSemantic, SpecValidationError, schemaProblems, type Problem } from "./validation";

export const ETCD_VOLUME_TYPES = ["claimTemplate", "emptyDir", "hostPath"] as const;
export type EtcdVolumeType = (typeof ETCD_VOLUME_TYPES)[number];

const patterns = (description: string) => Type.Array(Type.String({ minLength: 1, pattern: "^[a-z0-9*][a-z0-9*-]*$" }), { description });
const cidrs = (description: string) => Type.Array(Type.String({ minLength: 1 }), { description });
const quantity = (description: string) => Type.String({ pattern: QUANTITY_PATTERN, description });

export const AdminPolicy = Type.Object(
  {
    allowedRegistries: Type.Optional(
      Type.Array(Type.String({ pattern: IMAGE_REPOSITORY_PATTERN }), {
        description: "Registry prefixes every image a tenant names must come from (imageRepository, which also serves kube-proxy and CoreDNS; etcd.image; addons.network.image unless it is the pinned default; a catalog's sandboxImage and registryMirrors), matched at '/' boundaries. Default [registry.k8s.io].",
      }),
    ),
    etcdVolumeTypes: Type.Optional(
      Type.Array(StringEnum(ETCD_VOLUME_TYPES), { description: "Where etcd data may live. Default [claimTemplate, emptyDir]." }),
    ),
    hostPathPrefixes: Type.Optional(
      Type.Array(Type.String({ minLength: 2 }), {
        description: "Directories a hostPath volume must lie under (with hostPath in etcdVolumeTypes). Default none.",
      }),
    ),
    extraArgs: Type.Optional(
      Type.Object(
        {
          denied: Type.Optional(patterns("Flags refused in addition to the built-in list (`*` matches any text).")),
          allowed: Type.Optional(patterns("When set, only these flags may be given at all; the denylist still applies.")),
          exempt: Type.Optional(patterns("Flags of the built-in denylist the platform lets tenants set anyway, e.g. oidc-* for their own login.")),
        },
        { additionalProperties: false },
      ),
    ),
    caps: Type.Optional(
      Type.Object(
        {
          maxReplicas: Type.Optional(Type.Integer({ minimum: 1, description: "Replicas of any master component. Default 5." })),
          maxEtcdStorage: Type.Optional(quantity("etcd storage per member (claim size, emptyDir sizeLimit). Default 100Gi.")),
          maxCpu: Type.Optional(quantity("cpu request or limit of one master container. Default 8.")),
          maxMemory: Type.Optional(quantity("memory request or limit of one master container. Default 32Gi.")),
        },
        { additionalProperties: false },
      ),
    ),
    masters: Type.Optional(
      Type.Object(
        {
          allowedNodeSelectorKeys: Type.Optional(
            Type.Array(Type.String({ minLength: 1 }), { description: "Label keys masterNodeSelector may use. Default: the master role and topology keys." }),
          ),
          requiredNodeSelector: Type.Optional(
            Type.Record(Type.String(), Type.String(), { description: "Labels every masterNodeSelector must contain (the masters' node pool). Default none." }),
          ),
          allowedTolerationKeys: Type.Optional(
            Type.Array(Type.String({ minLength: 1 }), { description: "Taint keys masterTolerations may name; a toleration without a key is never allowed. Default [node-role.kubeonkube.io/master]." }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    apiServerService: Type.Optional(
      Type.Object(
        {
          allowedTypes: Type.Optional(
            Type.Array(StringEnum(["ClusterIP", "NodePort", "LoadBalancer"] as const), {
              description: "Service types a Cluster's apiserver may use (NodePort takes a port on every meta-cluster node). Default all three.",
            }),
          ),
          allowedAnnotations: Type.Optional(
            Type.Array(Type.String({ minLength: 1 }), {
              description: "Annotation keys (`*` matches any text) the apiserver Service may carry; they steer the platform's load-balancer controller. Default none.",
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    allowedBackupEndpoints: Type.Optional(
      Type.Array(
        Type.Object(
          {
            host: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: "A DNS name as written in the endpoint, a `*.` suffix, or an IP address." })),
            cidr: Type.Optional(Type.String({ minLength: 1, description: "A range an endpoint written as an IP address may be in." })),
            plainHttp: Type.Optional(Type.Boolean({ description: "Allow http:// to this entry (credentials and snapshots travel in clear). Default false." })),
          },
          { additionalProperties: false },
        ),
        {
          description:
            "Object stores a Cluster's spec.etcd.backup.store.s3.endpoint may name (the backup job dials it from the masters' namespace). Loopback, link-local and metadata addresses are refused regardless. Default none: no backups until the platform lists its stores.",
        },
      ),
    ),
    sshTargets: Type.Optional(
      Type.Object(
        {
          allowed: Type.Optional(cidrs("Ranges a Machine's ip must be in. Default [0.0.0.0/0, ::/0].")),
          denied: Type.Optional(cidrs("Ranges a Machine's ip must not be in. Default [127.0.0.0/8, ::1/128] (the operator's own host).")),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type AdminPolicy = Static<typeof AdminPolicy>;

/**
 * Flags that turn off or redirect a master's security: authentication and authorization,
 * admission, audit, encryption at rest, TLS and the certificates the platform issues, the
 * listeners and peers of etcd, and any flag that reads or writes a file in the container.
 */
export const DENIED_EXTRA_ARGS: readonly string[] = [
  "*-file", "*-dir", "*-path", "*-config", "*kubeconfig*",
  "authorization-*", "authentication-*", "anonymous-auth", "insecure-*", "token-auth-file", "basic-auth-file",
  "enable-bootstrap-token-auth", "oidc-*", "service-account-*", "api-audiences",
  "enable-admission-plugins", "disable-admission-plugins", "admission-control*",
  "audit-policy-file", "audit-log-path", "audit-log-mode", "audit-log-format", "audit-log-batch-*", "audit-log-truncate-*", "audit-webhook-*",
  "encryption-provider-*", "tls-*", "client-ca-file", "client-cert-auth", "cert-dir", "requestheader-*", "proxy-client-*",
  "kubelet-*", "etcd-*", "egress-selector-*", "allow-privileged", "cors-allowed-origins", "enable-priority-and-fairness",
  "profiling", "contention-profiling", "enable-pprof", "debug-*",
  "bind-address", "secure-port", "advertise-address", "service-cluster-ip-range", "runtime-config", "endpoint-reconciler-type",
  "use-service-account-credentials", "cluster-signing-*", "root-ca-file", "controllers", "leader-elect*", "master",
  "listen-*", "initial-*", "advertise-client-urls", "peer-*", "auto-tls", "trusted-ca-file", "cipher-suites", "discovery*",
  "force-new-cluster", "unsafe-*", "experimental-*", "name", "log-outputs", "metrics", "enable-grpc-gateway", "host-whitelist", "cors",
];

/** What applies when the operator is given no policy file. */
export const DEFAULT_ADMIN_POLICY = {
  allowedRegistries: ["registry.k8s.io"],
  etcdVolumeTypes: ["claimTemplate", "emptyDir"] as EtcdVolumeType[],
  hostPathPrefixes: [] as string[],
  extraArgs: { denied: [] as string[], allowed: undefined as string[] | undefined, exempt: [] as string[] },
  caps: { maxReplicas: 5, maxEtcdStorage: "100Gi", maxCpu: "8", maxMemory: "32Gi" },
  masters: {
    allowedNodeSelectorKeys: ["node-role.kubeonkube.io/master", "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "kubernetes.io/arch"],
    requiredNodeSelector: {} as Record<string, string>,
    allowedTolerationKeys: ["node-role.kubeonkube.io/master"],
  },
  apiServerService: {
    allowedTypes: ["ClusterIP", "NodePort", "LoadBalancer"] as ("ClusterIP" | "NodePort" | "LoadBalancer")[],
    allowedAnnotations: [] as string[],
  },
  sshTargets: { allowed: ["0.0.0.0/0", "::/0"], denied: ["127.0.0.0/8", "::1/128"] },
  allowedBackupEndpoints: [] as BackupEndpointRule[],
};

/** A policy with every default filled in: what the checks read. */
export type ResolvedAdminPolicy = typeof DEFAULT_ADMIN_POLICY;

export function resolveAdminPolicy(policy: AdminPolicy = {}): ResolvedAdminPolicy {
  const d = DEFAULT_ADMIN_POLICY;
  return {
    allowedRegistries: policy.allowedRegistries ?? d.allowedRegistries,
    etcdVolumeTypes: policy.etcdVolumeTypes ?? d.etcdVolumeTypes,
    hostPathPrefixes: policy.hostPathPrefixes ?? d.hostPathPrefixes,
    extraArgs: { denied: policy.extraArgs?.denied ?? d.extraArgs.denied, allowed: policy.extraArgs?.allowed, exempt: policy.extraArgs?.exempt ?? d.extraArgs.exempt },
    caps: { ...d.caps, ...policy.caps },
    masters: {
      allowedNodeSelectorKeys: policy.masters?.allowedNodeSelectorKeys ?? d.masters.allowedNodeSelectorKeys,
      requiredNodeSelector: policy.masters?.requiredNodeSelector ?? d.masters.requiredNodeSelector,
      allowedTolerationKeys: policy.masters?.allowedTolerationKeys ?? d.masters.allowedTolerationKeys,
    },
    apiServerService: {
      allowedTypes: policy.apiServerService?.allowedTypes ?? d.apiServerService.allowedTypes,
      allowedAnnotations: policy.apiServerService?.allowedAnnotations ?? d.apiServerService.allowedAnnotations,
    },
    sshTargets: { allowed: policy.sshTargets?.allowed ?? d.sshTargets.allowed, denied: policy.sshTargets?.denied ?? d.sshTargets.denied },
    allowedBackupEndpoints: policy.allowedBackupEndpoints ?? d.allowedBackupEndpoints,
  };
}

/** Every problem of a policy document (shape, CIDRs, prefixes), each with its field path. */
export function adminPolicyProblems(policy: unknown): Problem[] {
  if (policy === null || policy === undefined) return [];
  if (typeof policy !== "object" || Array.isArray(policy)) return [{ path: "(policy)", message: "must be a YAML mapping" }];
  const problems = schemaProblems(AdminPolicy, policy, "policy");
  const p = policy as AdminPolicy;
  for (const key of ["allowed", "denied"] as const) {
    const list = p.sshTargets?.[key];
    (Array.isArray(list) ? list : []).forEach((text, i) => {
      const cidr = typeof text === "string" ? parseCidr(text) : undefined;
      if (typeof text === "string" && (!cidr || cidr.hostBitsSet)) {
        problems.push({ path: `policy.sshTargets.${key}[${i}]`, message: `"${text}" is not a CIDR like 10.0.0.0/8 (without host bits)` });
      }
    });
  }
  (Array.isArray(p.hostPathPrefixes) ? p.hostPathPrefixes : []).forEach((prefix, i) => {
    if (typeof prefix === "string" && (prefix === "/" || !isNormalAbsolutePath(prefix))) {
      problems.push({ path: `policy.hostPathPrefixes[${i}]`, message: `"${prefix}" must be an absolute directory other than "/", without "." or ".." segments or a trailing "/"` });
    }
  });
  problems.push(...backupEndpointRuleProblems(p.allowedBackupEndpoints));
  if (Array.isArray(p.etcdVolumeTypes) && p.etcdVolumeTypes.includes("hostPath") && !(p.hostPathPrefixes?.length)) {
    problems.push({ path: "policy.hostPathPrefixes", message: "hostPath is in etcdVolumeTypes: list the directories hostPath volumes may use" });
  }
  return preferSemantic(problems);
}

/** Parses and checks a policy file's text; throws one error naming every problem. */
export function loadAdminPolicy(text: string, source: string): ResolvedAdminPolicy {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new SpecValidationError(`admin policy ${source}`, [{ path: "(yaml)", message: (error as Error).message }]);
  }
  const problems = adminPolicyProblems(document);
  if (problems.length) throw new SpecValidationError(`admin policy ${source}`, problems);
  return resolveAdminPolicy((document ?? {}) as AdminPolicy);
}
