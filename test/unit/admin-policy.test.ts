/** The admin policy: its loader, its defaults and the checks of a hostile spec against it. */
import { describe, expect, it } from "vitest";
import {
  clusterPolicyProblems,
  DEFAULT_ADMIN_POLICY,
  DEFAULT_FLANNEL_IMAGE,
  formatPolicyProblem,
  loadAdminPolicy,
  machinePolicyProblems,
  resolveAdminPolicy,
  SpecValidationError,
  type ClusterSpec,
} from "../../src/api/v1alpha1";
import { machine } from "../support/worker-fixtures";
import { minimalSpec, standardSpec } from "../support/specs";

const policy = resolveAdminPolicy();
const ruleAt = (spec: ClusterSpec, p = policy) => Object.fromEntries(clusterPolicyProblems(spec, p).map((x) => [x.path, x.rule]));

describe("loadAdminPolicy", () => {
  it("fills in the defaults for an empty file", () => {
    expect(loadAdminPolicy("", "p.yaml")).toEqual(DEFAULT_ADMIN_POLICY);
  });

  it("names every problem of a bad file at once", () => {
    const text = [
      "allowedRegistry: [x]",
      "etcdVolumeTypes: [hostPath, nfs]",
      "hostPathPrefixes: [/, /data/../etc]",
      "sshTargets: { allowed: [10.0.0.1/8, nonsense] }",
      "caps: { maxCpu: lots }",
    ].join("\n");
    let error: unknown;
    try {
      loadAdminPolicy(text, "bad.yaml");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SpecValidationError);
    const paths = (error as SpecValidationError).problems.map((p) => p.path).sort();
    expect(paths).toEqual([
      "policy.allowedRegistry",
      "policy.caps.maxCpu",
      "policy.etcdVolumeTypes[1]",
      "policy.hostPathPrefixes[0]",
      "policy.hostPathPrefixes[1]",
      "policy.sshTargets.allowed[0]",
      "policy.sshTargets.allowed[1]",
    ]);
    expect((error as Error).message).toContain("admin policy bad.yaml");
  });

  it("refuses hostPath without prefixes, and YAML that does not parse", () => {
    expect(() => loadAdminPolicy("etcdVolumeTypes: [hostPath]", "p")).toThrow(/policy.hostPathPrefixes/);
    expect(() => loadAdminPolicy("a: [", "p")).toThrow(/\(yaml\)/);
  });
});

describe("clusterPolicyProblems", () => {
  it("accepts the documented examples under the default policy", () => {
    expect(clusterPolicyProblems(minimalSpec(), policy)).toEqual([]);
    expect(clusterPolicyProblems(standardSpec({ imageRepository: "registry.k8s.io" }), policy)).toEqual([]);
  });

  it("refuses a foreign registry, for the repository and for etcd's own image", () => {
    expect(ruleAt(minimalSpec({ imageRepository: "evil.example.com", etcd: { ...minimalSpec().etcd, image: "registry.k8s.io.evil.com/etcd:3.6.16-0" } }))).toEqual({
      "spec.imageRepository": "allowedRegistries",
      "spec.etcd.image": "allowedRegistries",
    });
    const mirror = resolveAdminPolicy({ allowedRegistries: ["mirror.corp:5000/k8s"] });
    expect(ruleAt(minimalSpec({ imageRepository: "mirror.corp:5000/k8s" }), mirror)).toEqual({});
    expect(ruleAt(minimalSpec(), mirror)).toEqual({ "spec.imageRepository": "allowedRegistries" });
  });

  it("refuses a flannel image outside allowedRegistries, but not the pinned default", () => {
    expect(ruleAt(minimalSpec({ addons: { network: { image: "evil.example.com/flannel:v1" } } }))).toEqual({ "spec.addons.network.image": "allowedRegistries" });
    expect(ruleAt(minimalSpec({ addons: { network: { image: "registry.k8s.io.evil.com/flannel:v1" } } }))).toEqual({ "spec.addons.network.image": "allowedRegistries" });
    expect(ruleAt(minimalSpec({ addons: { network: { image: DEFAULT_FLANNEL_IMAGE } } }))).toEqual({});
    expect(ruleAt(minimalSpec({ addons: { network: { image: "registry.k8s.io/flannel/flannel:v0.28.10" } } }))).toEqual({});
    const problem = clusterPolicyProblems(minimalSpec({ addons: { network: { image: "evil.example.com/flannel:v1" } } }), policy)[0];
    expect(formatPolicyProblem(problem)).toBe(
      'spec.addons.network.image: "evil.example.com/flannel:v1" is not from an allowed registry (registry.k8s.io) (admin policy: allowedRegistries)',
    );
  });

  it("refuses hostPath / unless listed and under a prefix", () => {
    const root = minimalSpec({ etcd: { version: "3.6.16", storage: { volumeSource: { hostPath: { path: "/" } } } } });
    expect(ruleAt(root)).toEqual({ "spec.etcd.storage.volumeSource.hostPath": "etcdVolumeTypes" });
    const allowing = resolveAdminPolicy({ etcdVolumeTypes: ["emptyDir", "hostPath"], hostPathPrefixes: ["/var/lib/kok"] });
    expect(ruleAt(root, allowing)).toEqual({ "spec.etcd.storage.volumeSource.hostPath.path": "hostPathPrefixes" });
    expect(ruleAt(minimalSpec({ etcd: { version: "3.6.16", storage: { volumeSource: { hostPath: { path: "/var/lib/kokx" } } } } }), allowing)).toEqual({
      "spec.etcd.storage.volumeSource.hostPath.path": "hostPathPrefixes",
    });
    expect(ruleAt(minimalSpec({ etcd: { version: "3.6.16", storage: { volumeSource: { hostPath: { path: "/var/lib/kok/a" } } } } }), allowing)).toEqual({});
  });

  it("refuses security-relevant flags on every component, and names the pattern", () => {
    const problems = clusterPolicyProblems(
      minimalSpec({
        apiServer: { extraArgs: { "authorization-mode": "AlwaysAllow", "anonymous-auth": "true", "audit-log-maxage": "30" } },
        etcd: { ...minimalSpec().etcd, extraArgs: { "listen-client-urls": "http://0.0.0.0:2379" } },
        controllerManager: { extraArgs: { "service-account-private-key-file": "/x" } },
        scheduler: { extraArgs: { profiling: "true" } },
      }),
      policy,
    );
    expect(problems.map(formatPolicyProblem)).toEqual([
      'spec.etcd.extraArgs["listen-client-urls"]: --listen-client-urls is security-relevant and set by the platform (matches "listen-*") (admin policy: extraArgs.denied)',
      'spec.apiServer.extraArgs["authorization-mode"]: --authorization-mode is security-relevant and set by the platform (matches "authorization-*") (admin policy: extraArgs.denied)',
      'spec.apiServer.extraArgs["anonymous-auth"]: --anonymous-auth is security-relevant and set by the platform (matches "anonymous-auth") (admin policy: extraArgs.denied)',
      'spec.controllerManager.extraArgs["service-account-private-key-file"]: --service-account-private-key-file is security-relevant and set by the platform (matches "*-file") (admin policy: extraArgs.denied)',
      'spec.scheduler.extraArgs["profiling"]: --profiling is security-relevant and set by the platform (matches "profiling") (admin policy: extraArgs.denied)',
    ]);
    const oidc = resolveAdminPolicy({ extraArgs: { exempt: ["oidc-*"], denied: ["feature-gates"] } });
    expect(ruleAt(minimalSpec({ apiServer: { extraArgs: { "oidc-issuer-url": "https://login.example.com", "feature-gates": "X=true", "anonymous-auth": "true" } } }), oidc)).toEqual({
      'spec.apiServer.extraArgs["feature-gates"]': "extraArgs.denied",
      'spec.apiServer.extraArgs["anonymous-auth"]': "extraArgs.denied",
    });
    const allowlist = resolveAdminPolicy({ extraArgs: { allowed: ["feature-gates"] } });
    expect(ruleAt(minimalSpec({ apiServer: { extraArgs: { "audit-log-maxage": "30", "feature-gates": "X=true" } } }), allowlist)).toEqual({
      'spec.apiServer.extraArgs["audit-log-maxage"]': "extraArgs.allowed",
    });
  });

  it("caps replicas, storage and container resources", () => {
    expect(
      ruleAt(
        minimalSpec({
          apiServer: { replicas: 25, resources: { limits: { cpu: "100000", memory: "1Ti" }, requests: { cpu: "500m" } } },
          etcd: { version: "3.6.16", storage: { claimTemplate: { size: "10Ti" } } },
        }),
      ),
    ).toEqual({
      "spec.apiServer.replicas": "caps.maxReplicas",
      "spec.apiServer.resources.limits.cpu": "caps.maxCpu",
      "spec.apiServer.resources.limits.memory": "caps.maxMemory",
      "spec.etcd.storage.claimTemplate.size": "caps.maxEtcdStorage",
    });
  });

  it("keeps the masters off nodes the platform did not give them", () => {
    expect(
      ruleAt(
        minimalSpec({
          masterNodeSelector: { "kubernetes.io/hostname": "platform-node-1" },
          masterTolerations: [{ operator: "Exists" }, { key: "node-role.kubernetes.io/control-plane", operator: "Exists", effect: "NoSchedule" }],
        }),
      ),
    ).toEqual({
      'spec.masterNodeSelector["kubernetes.io/hostname"]': "masters.allowedNodeSelectorKeys",
      "spec.masterTolerations[0]": "masters.allowedTolerationKeys",
      "spec.masterTolerations[1].key": "masters.allowedTolerationKeys",
    });
    const pool = resolveAdminPolicy({ masters: { requiredNodeSelector: { pool: "masters" } } });
    expect(ruleAt(minimalSpec(), pool)).toEqual({ 'spec.masterNodeSelector["pool"]': "masters.requiredNodeSelector" });
    expect(ruleAt(minimalSpec({ masterNodeSelector: { pool: "masters" } }), pool)).toEqual({});
  });
});

describe("the apiserver Service", () => {
  it("refuses annotations (they steer the platform's load balancers) and types the policy does not list", () => {
    const spec = minimalSpec({ apiServer: { service: { type: "LoadBalancer", annotations: { "metallb.universe.tf/loadBalancerIPs": "203.0.113.1" } } } });
    expect(ruleAt(spec)).toEqual({ 'spec.apiServer.service.annotations["metallb.universe.tf/loadBalancerIPs"]': "apiServerService.allowedAnnotations" });
    const strict = resolveAdminPolicy({ apiServerService: { allowedTypes: ["ClusterIP"], allowedAnnotations: ["service.beta.kubernetes.io/*"] } });
    expect(ruleAt(minimalSpec({ apiServer: { service: { type: "NodePort", annotations: { "service.beta.kubernetes.io/x": "y" } } } }), strict)).toEqual({
      "spec.apiServer.service.type": "apiServerService.allowedTypes",
    });
  });
});

describe("machinePolicyProblems", () => {
  it("refuses loopback by default and allows it where the policy says so (the dev hosts)", () => {
    expect(machinePolicyProblems(machine({ ip: "127.0.0.1" }), policy)).toEqual([
      { path: "spec.ip", rule: "sshTargets.denied", message: "127.0.0.1 is in 127.0.0.0/8, where the operator may not open SSH connections" },
    ]);
    expect(machinePolicyProblems(machine({ ip: "::1" }), policy).map((p) => p.rule)).toEqual(["sshTargets.denied"]);
    const dev = resolveAdminPolicy({ sshTargets: { allowed: ["127.0.0.0/8"], denied: [] } });
    expect(machinePolicyProblems(machine({ ip: "127.0.1.10" }), dev)).toEqual([]);
    expect(machinePolicyProblems(machine({ ip: "192.0.2.11" }), dev).map((p) => p.rule)).toEqual(["sshTargets.allowed"]);
    expect(machinePolicyProblems(machine(), policy)).toEqual([]);
  });
});
