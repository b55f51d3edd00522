import { describe, expect, it } from "vitest";
import { DEFAULT_ROLLOUT_TIMEOUT_SECONDS } from "../../src/components/rollout-gate";
import { CONFIG_CHECKSUM_ANNOTATION, DEFAULT_TERMINATION_GRACE_SECONDS, installManifests, OPERATOR_PATHS, POLICY_CONFIGMAP, WORKER_DEFAULTS_CONFIGMAP } from "../../src/operator/install-manifests";
import { CONFINED_RESOURCES } from "../../src/operator/operator-admission-policy";

type Objects = ReturnType<typeof installManifests>;
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Container {
  name: string;
  args: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  volumeMounts: Array<{ name: string; mountPath: string }>;
  securityContext: Record<string, unknown>;
}
interface PodSpec {
  containers: Container[];
  volumes: Array<{ name: string; emptyDir?: unknown; persistentVolumeClaim?: unknown }>;
  securityContext: Record<string, unknown>;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
}
const podSpec = (objects: Objects): PodSpec => (objects.find((o) => o.kind === "Deployment") as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
const operatorContainer = (objects: Objects): Container => podSpec(objects).containers.find((c) => c.name === "operator")!;
const byKind = (objects: Objects, kind: string) => objects.filter((o) => o.kind === kind) as Array<{ metadata: { name: string; namespace?: string }; rules: Rule[] }>;
/** The operator's own ClusterRoles (the tenant roles aggregate into edit/admin/view, bound by no one of ours). */
const clusterRules = (objects: Objects): Rule[] =>
  byKind(objects, "ClusterRole")
    .filter((r) => r.metadata.name.startsWith("kube-on-kube-operator"))
    .flatMap((r) => r.rules);
const allRules = (objects: Objects): Rule[] => [...clusterRules(objects), ...byKind(objects, "Role").flatMap((r) => r.rules)];

interface Policy {
  spec: {
    failurePolicy: string;
    matchConstraints: { resourceRules: Array<{ apiGroups: string[]; operations: string[]; resources: string[] }> };
    matchConditions: Array<{ expression: string }>;
  };
}
const policyOf = (objects: Objects) => objects.find((o) => o.kind === "ValidatingAdmissionPolicy") as unknown as Policy;

const WRITE_TO_OPERATION: Record<string, string> = { create: "CREATE", update: "UPDATE", patch: "UPDATE", delete: "DELETE" };
/** Writes RBAC alone bounds: the operator's own kinds and Events, which hold nothing to escalate with. */
const UNCONFINED = new Set(["kubeonkube.io/clusters", "kubeonkube.io/machines", "kubeonkube.io/clusterpackageversions", "/events"]);

describe("installManifests: RBAC", () => {
  const objects = installManifests();

  it("lists every group, resource and verb: no wildcard anywhere", () => {
    for (const rule of allRules(objects)) {
      for (const field of [rule.apiGroups, rule.resources, rule.verbs]) expect(field.some((v) => v.includes("*")), JSON.stringify(rule)).toBe(false);
    }
  });

  it("grants nothing the operator could escalate with: RBAC, impersonation, exec, Nodes, tokens, CRDs, webhooks", () => {
    for (const rule of allRules(objects)) {
      expect(rule.apiGroups, JSON.stringify(rule)).not.toContain("rbac.authorization.k8s.io");
      expect(rule.apiGroups).not.toContain("apiextensions.k8s.io");
      expect(rule.apiGroups).not.toContain("admissionregistration.k8s.io");
      expect(rule.apiGroups).not.toContain("certificates.k8s.io");
      expect(rule.verbs.filter((v) => ["impersonate", "escalate", "bind", "deletecollection", "approve", "sign"].includes(v))).toEqual([]);
      expect(rule.resources.filter((r) => ["nodes", "pods/exec", "pods/attach", "pods/portforward", "nodes/proxy", "serviceaccounts/token", "serviceaccounts"].includes(r))).toEqual([]);
      // A Pod the operator could create or change would run code with any ServiceAccount of its
      // namespace; deleting one (an etcd member being replaced) runs nothing.
      if (rule.resources.includes("pods")) expect(rule.verbs, "Pods are only read and deleted").toEqual(["get", "list", "watch", "delete"]);
    }
  });

  it("confines every cluster-wide write of RBAC with the admission policy (Secrets, Namespaces, workloads ...)", () => {
    const policy = policyOf(objects);
    const confined = (group: string, resource: string, operation: string) =>
      policy.spec.matchConstraints.resourceRules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.operations.includes(operation));
    const unconfined: string[] = [];
    for (const rule of clusterRules(objects)) {
      for (const group of rule.apiGroups) {
        for (const resource of rule.resources) {
          if (UNCONFINED.has(`${group}/${resource.split("/")[0]}`)) continue;
          for (const verb of rule.verbs.filter((v) => v in WRITE_TO_OPERATION)) {
            if (!confined(group, resource, WRITE_TO_OPERATION[verb])) unconfined.push(`${verb} ${group}/${resource}`);
          }
        }
      }
    }
    expect(unconfined).toEqual([]);
    // And the writes this boundary is about are indeed among them.
    const written = (resource: string) => clusterRules(objects).some((r) => r.resources.includes(resource) && r.verbs.includes("delete"));
    expect(written("namespaces") && written("secrets") && written("deployments")).toBe(true);
  });

  it("grants Secrets reads cluster-wide, and writes only as the admission policy confines them", () => {
    const secretRules = clusterRules(objects).filter((r) => r.resources.includes("secrets"));
    expect(secretRules.flatMap((r) => r.verbs).sort()).toEqual(["create", "delete", "get", "list", "patch", "update", "watch"]);
    expect(CONFINED_RESOURCES.find((r) => r.group === "")!.resources).toContain("secrets");
  });

  it("binds the admission policy to the operator's ServiceAccount, failing closed, with Deny", () => {
    const objs = installManifests({ namespace: "platform-ops" });
    const policy = policyOf(objs);
    expect(policy.spec.failurePolicy).toBe("Fail");
    expect(policy.spec.matchConditions.map((c) => c.expression)).toEqual(["request.userInfo.username == 'system:serviceaccount:platform-ops:kube-on-kube-operator'"]);
    const binding = objs.find((o) => o.kind === "ValidatingAdmissionPolicyBinding") as { spec: { policyName: string; validationActions: string[] } };
    expect(binding.spec).toEqual({ policyName: (policy as unknown as { metadata: { name: string } }).metadata.name, validationActions: ["Deny"] });
    const subjects = objs.filter((o) => o.kind === "ClusterRoleBinding" || o.kind === "RoleBinding").flatMap((b) => (b as { subjects: unknown[] }).subjects);
    expect(new Set(subjects.map((s) => JSON.stringify(s)))).toEqual(new Set([JSON.stringify({ kind: "ServiceAccount", name: "kube-on-kube-operator", namespace: "platform-ops" })]));
  });

  it("touches only its own Lease after creating it, in its own namespace", () => {
    const roles = byKind(objects, "Role");
    expect(roles.map((r) => r.metadata.namespace)).toEqual(["kube-on-kube-system"]);
    const leaseRules = roles.flatMap((r) => r.rules);
    expect(leaseRules).toEqual([
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], resourceNames: ["kube-on-kube-operator", "kube-on-kube-operator-holders"], verbs: ["get", "update"] },
    ]);
    expect(clusterRules(objects).some((r) => r.resources.includes("leases"))).toBe(false);
  });
});

describe("installManifests: the Deployment", () => {
  it("caps the operator's V8 heap (512 MB by default, or as asked) and takes the passphrase from a Secret", () => {
    const env = (o?: Parameters<typeof installManifests>[0]) => Object.fromEntries((operatorContainer(installManifests(o)).env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
    expect(env().NODE_OPTIONS).toBe("--max-old-space-size=512");
    expect(env({ operatorHeapMb: 256 }).NODE_OPTIONS).toBe("--max-old-space-size=256");
    expect(env().PULUMI_CONFIG_PASSPHRASE).toEqual({ secretKeyRef: { name: "kube-on-kube-operator-state-passphrase", key: "passphrase" } });
  });

  it("runs with a read-only root filesystem, seccomp RuntimeDefault, no privilege escalation and no capabilities, as non-root", () => {
    const spec = podSpec(installManifests());
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    expect(operatorContainer(installManifests()).securityContext).toMatchObject({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(spec.automountServiceAccountToken).toBe(true);
  });

  it.each([["file backend", {}], ["object store", { backendUrl: "s3://kok-state/operator" }]])("puts every path it writes on a volume (%s)", (_, options) => {
    const objects = installManifests(options);
    const container = operatorContainer(objects);
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
    const stateDir = container.args.find((a) => a.startsWith("--state-dir="))?.slice("--state-dir=".length);
    const written = [stateDir, env.HOME, env.PULUMI_HOME, env.TMPDIR];
    expect(written).toEqual([OPERATOR_PATHS.data, OPERATOR_PATHS.home, `${OPERATOR_PATHS.home}/.pulumi`, OPERATOR_PATHS.tmp]);
    const volumes = new Set(podSpec(objects).volumes.map((v) => v.name));
    for (const p of written) {
      const mount = container.volumeMounts.find((m) => p === m.mountPath || p!.startsWith(`${m.mountPath}/`));
      expect(mount, `${p} is on no volume`).toBeDefined();
      expect(volumes.has(mount!.name)).toBe(true);
    }
    const backend = container.args.find((a) => a.startsWith("--backend-url="))!.slice("--backend-url=".length);
    if (backend.startsWith("file://")) {
      expect(backend.startsWith(`file://${OPERATOR_PATHS.data}/`)).toBe(true);
      expect(podSpec(objects).volumes.find((v) => v.name === "data")?.persistentVolumeClaim).toEqual({ claimName: "kube-on-kube-operator-state" });
    }
  });

  it("gives an update in flight longer to finish than its longest single wait (SSH step 900 s, rollout gate)", () => {
    expect(DEFAULT_TERMINATION_GRACE_SECONDS).toBeGreaterThan(Math.max(900, DEFAULT_ROLLOUT_TIMEOUT_SECONDS));
    expect(podSpec(installManifests()).terminationGracePeriodSeconds).toBe(DEFAULT_TERMINATION_GRACE_SECONDS);
    expect(podSpec(installManifests({ terminationGracePeriodSeconds: 3600 })).terminationGracePeriodSeconds).toBe(3600);
  });

  it("enforces the restricted Pod Security level on its namespace", () => {
    const ns = installManifests().find((o) => o.kind === "Namespace") as { metadata: { labels: Record<string, string> } };
    expect(ns.metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
  });
});

describe("installManifests: tenants' roles", () => {
  const roles = byKind(installManifests(), "ClusterRole").filter((r) => r.metadata.name.startsWith("kube-on-kube-tenant")) as Array<{
    metadata: { name: string; labels: Record<string, string> };
    rules: Rule[];
  }>;
  const aggregatedTo = (role: string) => roles.filter((r) => r.metadata.labels[`rbac.authorization.k8s.io/aggregate-to-${role}`] === "true").flatMap((r) => r.rules);

  it("lets edit and admin write the three kinds' specs, and view read them", () => {
    for (const role of ["edit", "admin"]) {
      expect(aggregatedTo(role)).toContainEqual(expect.objectContaining({ resources: ["clusters", "machines", "clusterpackageversions"], verbs: expect.arrayContaining(["create", "update", "delete"]) }));
    }
    expect(aggregatedTo("view").flatMap((r) => r.verbs)).toEqual(["get", "list", "watch"]);
  });

  it("never lets a tenant write status (the operator's account of what it did) nor touch anything but the three kinds", () => {
    for (const rule of roles.flatMap((r) => r.rules)) {
      expect(rule.apiGroups).toEqual(["kubeonkube.io"]);
      const statusWrites = rule.resources.filter((r) => r.endsWith("/status")).length > 0 && rule.verbs.some((v) => !["get", "list", "watch"].includes(v));
      expect(statusWrites, JSON.stringify(rule)).toBe(false);
    }
  });
});

describe("installManifests: the admin policy", () => {
  it("ships a given policy as a ConfigMap in the operator's namespace, mounted read-only and passed to --policy", () => {
    const objects = installManifests({ policyText: "sshTargets:\n  allowed: [10.0.0.0/8]\n" });
    const configMap = objects.find((o) => o.kind === "ConfigMap") as { metadata: { name: string; namespace: string }; data: Record<string, string> };
    expect(configMap.metadata).toMatchObject({ name: POLICY_CONFIGMAP.name, namespace: "kube-on-kube-system" });
    expect(configMap.data[POLICY_CONFIGMAP.key]).toContain("10.0.0.0/8");
    expect(operatorContainer(objects).args).toContain(`--policy=${POLICY_CONFIGMAP.mountPath}/${POLICY_CONFIGMAP.key}`);
    expect(operatorContainer(objects).volumeMounts).toContainEqual({ name: "admin-policy", mountPath: POLICY_CONFIGMAP.mountPath, readOnly: true });
  });

  it("passes no --policy without one (the built-in policy applies)", () => {
    const objects = installManifests();
    expect(objects.some((o) => o.kind === "ConfigMap")).toBe(false);
    expect(operatorContainer(objects).args.some((a) => a.startsWith("--policy"))).toBe(false);
  });

  it("rolls the operator when the policy or the worker defaults change: they are read at start", () => {
    const checksum = (policyText?: string, workerDefaultsText?: string) => {
      const deployment = installManifests({ policyText, workerDefaultsText }).find((o) => o.kind === "Deployment") as unknown as { spec: { template: { metadata: { annotations: Record<string, string> } } } };
      return deployment.spec.template.metadata.annotations[CONFIG_CHECKSUM_ANNOTATION];
    };
    const sums = [checksum(), checksum("sshTargets: {}\n"), checksum("sshTargets: { allowed: [10.0.0.0/8] }\n"), checksum(undefined, "serviceManager: process\n"), checksum("sshTargets: {}\n", "serviceManager: process\n")];
    expect(sums.every((s) => /^[0-9a-f]{64}$/.test(s))).toBe(true);
    expect(new Set(sums).size).toBe(sums.length);
    expect(checksum("sshTargets: {}\n")).toBe(checksum("sshTargets: {}\n"));
  });

  it("tells the operator its namespace, for the masters' NetworkPolicies", () => {
    expect(operatorContainer(installManifests()).env).toContainEqual({ name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } });
  });
});

describe("installManifests: the worker defaults", () => {
  type ConfigMapJson = { metadata: { name: string; namespace: string }; data: Record<string, string> };
  type PodSpecJson = { spec: { template: { spec: { volumes: { name: string; configMap?: { name: string } }[] } } } };
  const text = "serviceManager: process\nkubelet:\n  cgroupDriver: cgroupfs\n";

  it("ships them as a ConfigMap of their own, mounted read-only beside the admin policy's and passed to --worker-defaults", () => {
    const objects = installManifests({ policyText: "sshTargets:\n  allowed: [10.0.0.0/8]\n", workerDefaultsText: text });
    const configMaps = objects.filter((o) => o.kind === "ConfigMap") as ConfigMapJson[];
    expect(configMaps.map((c) => c.metadata.name).sort()).toEqual([POLICY_CONFIGMAP.name, WORKER_DEFAULTS_CONFIGMAP.name].sort());
    const defaults = configMaps.find((c) => c.metadata.name === WORKER_DEFAULTS_CONFIGMAP.name)!;
    expect(defaults.metadata.namespace).toBe("kube-on-kube-system");
    expect(defaults.data).toEqual({ [WORKER_DEFAULTS_CONFIGMAP.key]: text });
    const container = operatorContainer(objects);
    expect(container.args).toContain(`--worker-defaults=${WORKER_DEFAULTS_CONFIGMAP.mountPath}/${WORKER_DEFAULTS_CONFIGMAP.key}`);
    expect(container.volumeMounts).toContainEqual({ name: "worker-defaults", mountPath: WORKER_DEFAULTS_CONFIGMAP.mountPath, readOnly: true });
    // Not under the policy's read-only volume, where no mount point can be made.
    expect(WORKER_DEFAULTS_CONFIGMAP.mountPath.startsWith(`${POLICY_CONFIGMAP.mountPath}/`)).toBe(false);
    const deployment = objects.find((o) => o.kind === "Deployment") as unknown as PodSpecJson;
    expect(deployment.spec.template.spec.volumes).toContainEqual({ name: "worker-defaults", configMap: { name: WORKER_DEFAULTS_CONFIGMAP.name } });
  });

  it("passes no --worker-defaults without them (the operator's defaults apply)", () => {
    const objects = installManifests();
    expect(operatorContainer(objects).args.some((a) => a.startsWith("--worker-defaults"))).toBe(false);
    expect(operatorContainer(objects).volumeMounts.some((m) => m.name === "worker-defaults")).toBe(false);
  });
});
