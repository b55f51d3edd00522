/**
 * The admin policy as a ValidatingAdmissionPolicy (`kok manifests --policy FILE`): the same rules
 * the reconcilers enforce (policy-checks.ts), compiled into CEL with the policy's values, so that
 * `kubectl apply` of a Cluster or Machine the platform would refuse fails at once with the field and
 * the rule (the apiserver reports the first validation that fails; the operator lists them all).
 * The operator's own check stays the authority (a policy change takes effect there on
 * restart, and objects admitted before a change are refused by it); this is the early answer.
 * Only CREATE and spec changes are matched: an object admitted under an older policy can still
 * get its finalizer removed and be deleted.
 */
import { DEFAULT_FLANNEL_IMAGE, DEFAULT_IMAGE_REPOSITORY, DENIED_EXTRA_ARGS, isIP, type BackupEndpointRule, type ResolvedAdminPolicy } from "../api/v1alpha1";

type Json = Record<string, unknown>;
interface Validation {
  readonly expression: string;
  readonly message: string;
  readonly messageExpression?: string;
}

export const ADMISSION_POLICY_NAME = "kube-on-kube-admin-policy";

const list = (values: readonly string[]) => `[${values.map((v) => `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`).join(", ")}]`;
const globsRegex = (globs: readonly string[]) =>
  `^(${globs.map((g) => g.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\\\$&")).join(".*")).join("|")})$`;
const COMPONENTS = ["etcd", "apiServer", "controllerManager", "scheduler"] as const;
/** `has()` on each step of a path under `object.spec`, then the test. */
const given = (path: string, test: string) => {
  const steps = path.split(".");
  const guards = steps.map((_, i) => `has(object.spec.${steps.slice(0, i + 1).join(".")})`);
  return `!(${guards.join(" && ")}) || ${test}`;
};
const underAny = (value: string, prefixes: readonly string[]) => `${list(prefixes)}.exists(r, ${value} == r || ${value}.startsWith(r + '/'))`;
const quantityAtMost = (value: string, cap: string) => `quantity(${value}).compareTo(quantity('${cap}')) <= 0`;

function clusterValidations(policy: ResolvedAdminPolicy): Validation[] {
  const v: Validation[] = [];
  const registries = policy.allowedRegistries;
  const defaultAllowed = registries.some((r) => DEFAULT_IMAGE_REPOSITORY === r || DEFAULT_IMAGE_REPOSITORY.startsWith(`${r}/`));
  v.push({
    expression: has("imageRepository", underAny("object.spec.imageRepository", registries), defaultAllowed),
    message: `spec.imageRepository must be under ${registries.join(", ") || "no registry"} (admin policy: allowedRegistries)`,
  });
  v.push({
    expression: given("etcd.image", underAny("object.spec.etcd.image", registries)),
    message: `spec.etcd.image must be under ${registries.join(", ") || "no registry"} (admin policy: allowedRegistries)`,
  });
  v.push({
    expression: given("addons.network.image", `object.spec.addons.network.image == '${DEFAULT_FLANNEL_IMAGE}' || ${underAny("object.spec.addons.network.image", registries)}`),
    message: `spec.addons.network.image must be under ${registries.join(", ") || "no registry"} (admin policy: allowedRegistries)`,
  });
  const types = policy.etcdVolumeTypes;
  if (!types.includes("claimTemplate")) v.push({ expression: "!has(object.spec.etcd.storage.claimTemplate)", message: "spec.etcd.storage.claimTemplate is not an allowed etcd volume type (admin policy: etcdVolumeTypes)" });
  if (!types.includes("emptyDir")) v.push({ expression: given("etcd.storage.volumeSource", "!has(object.spec.etcd.storage.volumeSource.emptyDir)"), message: "spec.etcd.storage.volumeSource.emptyDir is not an allowed etcd volume type (admin policy: etcdVolumeTypes)" });
  v.push(
    types.includes("hostPath")
      ? {
          expression: given("etcd.storage.volumeSource.hostPath", underAny("object.spec.etcd.storage.volumeSource.hostPath.path", policy.hostPathPrefixes)),
          message: `spec.etcd.storage.volumeSource.hostPath.path must be under ${policy.hostPathPrefixes.join(", ")} (admin policy: hostPathPrefixes)`,
        }
      : {
          expression: given("etcd.storage.volumeSource", "!has(object.spec.etcd.storage.volumeSource.hostPath)"),
          message: "spec.etcd.storage.volumeSource.hostPath is not an allowed etcd volume type (admin policy: etcdVolumeTypes)",
        },
  );
  v.push({
    expression: given("etcd.storage.claimTemplate", quantityAtMost("object.spec.etcd.storage.claimTemplate.size", policy.caps.maxEtcdStorage)),
    message: `spec.etcd.storage.claimTemplate.size must be at most ${policy.caps.maxEtcdStorage} (admin policy: caps.maxEtcdStorage)`,
  });
  // A flag is refused when the built-in list names it and no exemption does, or the policy's own list names it.
  const exempt = policy.extraArgs.exempt.length ? globsRegex(policy.extraArgs.exempt) : "^$";
  const refused = (k: string) => `((${k}.matches('${globsRegex(DENIED_EXTRA_ARGS)}') && !${k}.matches('${exempt}'))${policy.extraArgs.denied.length ? ` || ${k}.matches('${globsRegex(policy.extraArgs.denied)}')` : ""})`;
  for (const c of COMPONENTS) {
    v.push({ expression: given(`${c}.replicas`, `object.spec.${c}.replicas <= ${policy.caps.maxReplicas}`), message: `spec.${c}.replicas must be at most ${policy.caps.maxReplicas} (admin policy: caps.maxReplicas)` });
    v.push({
      expression: given(`${c}.extraArgs`, `object.spec.${c}.extraArgs.all(k, !${refused("k")})`),
      message: `spec.${c}.extraArgs sets a security-relevant flag (admin policy: extraArgs.denied)`,
      messageExpression: `'spec.${c}.extraArgs: ' + object.spec.${c}.extraArgs.filter(k, ${refused("k")}).join(', ') + ' are set by the platform (admin policy: extraArgs.denied)'`,
    });
    if (policy.extraArgs.allowed) {
      v.push({
        expression: given(`${c}.extraArgs`, `object.spec.${c}.extraArgs.all(k, k.matches('${globsRegex(policy.extraArgs.allowed)}'))`),
        message: `spec.${c}.extraArgs may only set ${policy.extraArgs.allowed.join(", ") || "nothing"} (admin policy: extraArgs.allowed)`,
      });
    }
    for (const kind of ["requests", "limits"] as const) {
      for (const [resource, cap, rule] of [["cpu", policy.caps.maxCpu, "caps.maxCpu"], ["memory", policy.caps.maxMemory, "caps.maxMemory"]] as const) {
        const value = `object.spec.${c}.resources.${kind}['${resource}']`;
        v.push({
          expression: given(`${c}.resources.${kind}`, `!('${resource}' in object.spec.${c}.resources.${kind}) || ${quantityAtMost(value, cap)}`),
          message: `spec.${c}.resources.${kind}.${resource} must be at most ${cap} (admin policy: ${rule})`,
        });
      }
    }
  }
  const { allowedTypes, allowedAnnotations } = policy.apiServerService;
  v.push({
    expression: `${list(allowedTypes)}.exists(t, t == (has(object.spec.apiServer) && has(object.spec.apiServer.service) && has(object.spec.apiServer.service.type) ? object.spec.apiServer.service.type : 'ClusterIP'))`,
    message: `spec.apiServer.service.type must be one of ${allowedTypes.join(", ") || "none"} (admin policy: apiServerService.allowedTypes)`,
  });
  v.push({
    expression: given("apiServer.service.annotations", `object.spec.apiServer.service.annotations.all(k, ${allowedAnnotations.length ? `k.matches('${globsRegex(allowedAnnotations)}')` : "false"})`),
    message: `spec.apiServer.service.annotations may only use ${allowedAnnotations.join(", ") || "no key"} (admin policy: apiServerService.allowedAnnotations)`,
  });
  const { allowedNodeSelectorKeys, requiredNodeSelector, allowedTolerationKeys } = policy.masters;
  v.push({
    expression: given("masterNodeSelector", `object.spec.masterNodeSelector.all(k, k in ${list([...allowedNodeSelectorKeys, ...Object.keys(requiredNodeSelector)])})`),
    message: `spec.masterNodeSelector may only use ${allowedNodeSelectorKeys.join(", ")} (admin policy: masters.allowedNodeSelectorKeys)`,
  });
  for (const [key, value] of Object.entries(requiredNodeSelector)) {
    v.push({
      expression: `has(object.spec.masterNodeSelector) && '${key}' in object.spec.masterNodeSelector && object.spec.masterNodeSelector['${key}'] == '${value}'`,
      message: `spec.masterNodeSelector must contain ${key}: "${value}" (admin policy: masters.requiredNodeSelector)`,
    });
  }
  v.push({
    expression: given("masterTolerations", `object.spec.masterTolerations.all(t, has(t.key) && t.key in ${list(allowedTolerationKeys)})`),
    message: `spec.masterTolerations may only name ${allowedTolerationKeys.join(", ") || "no taint"} (admin policy: masters.allowedTolerationKeys)`,
  });
  v.push(...backupEndpointValidations(policy.allowedBackupEndpoints));
  return v;
}

const BACKUP_HOST = "url(object.spec.etcd.backup.store.s3.endpoint).getHostname()";
/** The CEL test of one allowedBackupEndpoints entry against the endpoint's host (backup-endpoints.ts ruleMatches). */
function backupRuleTest(rule: BackupEndpointRule): string {
  if (rule.cidr !== undefined) return `(isIP(${BACKUP_HOST}) && cidr('${rule.cidr}').containsIP(${BACKUP_HOST}))`;
  const host = (rule.host ?? "").toLowerCase();
  if (host.startsWith("*.")) return `(!isIP(${BACKUP_HOST}) && ${BACKUP_HOST}.endsWith('${host.slice(1)}'))`;
  return isIP(host) ? `(isIP(${BACKUP_HOST}) && ip(${BACKUP_HOST}) == ip('${host}'))` : `${BACKUP_HOST} == '${host}'`;
}

/**
 * The backup endpoint gate (backup-endpoints.ts): addresses no policy opens, then the listed
 * entries, then plain http only where an entry allows it. The CRD's pattern has already made the
 * endpoint a URL, so `url()` parses it.
 */
function backupEndpointValidations(rules: readonly BackupEndpointRule[]): Validation[] {
  const anyOf = (list: readonly BackupEndpointRule[]) => (list.length ? list.map(backupRuleTest).join(" || ") : "false");
  const listed = rules.map((r) => `${r.host ?? r.cidr}${r.plainHttp ? " (http)" : ""}`).join(", ") || "none";
  const never = ["localhost", "metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal", "metadata.azure.internal", "100.100.100.200", "fd00:ec2::254"];
  return [
    {
      expression: given("etcd.backup", `(!isIP(${BACKUP_HOST}) || ip(${BACKUP_HOST}).isGlobalUnicast()) && !(${BACKUP_HOST} in ${list(never)}) && !${BACKUP_HOST}.endsWith('.localhost')`),
      message: "spec.etcd.backup.store.s3.endpoint is a loopback, link-local or metadata address, which no policy allows (admin policy: allowedBackupEndpoints)",
    },
    {
      expression: given("etcd.backup", anyOf(rules)),
      message: `spec.etcd.backup.store.s3.endpoint must be one of ${listed} (admin policy: allowedBackupEndpoints)`,
    },
    {
      expression: given("etcd.backup", `url(object.spec.etcd.backup.store.s3.endpoint).getScheme() == 'https' || ${anyOf(rules.filter((r) => r.plainHttp === true))}`),
      message: "spec.etcd.backup.store.s3.endpoint must use https: no allowedBackupEndpoints entry for its host allows plain http (admin policy: allowedBackupEndpoints)",
    },
  ];
}

/** `has(object.spec.<field>)`-guarded test, where an absent field passes only if its default does. */
function has(field: string, test: string, absentPasses: boolean): string {
  return absentPasses ? `!has(object.spec.${field}) || ${test}` : `has(object.spec.${field}) && ${test}`;
}

function machineValidations(policy: ResolvedAdminPolicy): Validation[] {
  const { allowed, denied } = policy.sshTargets;
  const inAny = (cidrs: readonly string[]) => `${list(cidrs)}.exists(c, cidr(c).containsIP(object.spec.ip))`;
  return [
    { expression: `!isIP(object.spec.ip) || ${inAny(allowed)}`, message: `spec.ip must be in ${allowed.join(", ") || "no range"} (admin policy: sshTargets.allowed)` },
    { expression: `!isIP(object.spec.ip) || !${inAny(denied)}`, message: `spec.ip must not be in ${denied.join(", ")} (admin policy: sshTargets.denied)` },
  ];
}

function admissionPolicy(name: string, resource: string, validations: Validation[]): Json[] {
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
      metadata: { name, labels: { "app.kubernetes.io/part-of": "kube-on-kube" } },
      spec: {
        failurePolicy: "Fail",
        matchConstraints: { resourceRules: [{ apiGroups: ["kubeonkube.io"], apiVersions: ["v1alpha1"], operations: ["CREATE", "UPDATE"], resources: [resource] }] },
        matchConditions: [{ name: "spec-written", expression: "oldObject == null || object.spec != oldObject.spec" }],
        validations,
      },
    },
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicyBinding",
      metadata: { name, labels: { "app.kubernetes.io/part-of": "kube-on-kube" } },
      spec: { policyName: name, validationActions: ["Deny"] },
    },
  ];
}

/** The policies and bindings for Clusters and Machines under `policy`. */
export function admissionPolicies(policy: ResolvedAdminPolicy): Json[] {
  return [
    ...admissionPolicy(`${ADMISSION_POLICY_NAME}-clusters`, "clusters", clusterValidations(policy)),
    ...admissionPolicy(`${ADMISSION_POLICY_NAME}-machines`, "machines", machineValidations(policy)),
  ];
}
