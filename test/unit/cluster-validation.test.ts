import { describe, expect, it } from "vitest";
import { validateClusterSpec, clusterNameProblems, SpecValidationError, type Problem } from "../../src/api/v1alpha1";
import { minimalSpec, standardSpec } from "../support/specs";

const paths = (problems: Problem[]) => problems.map((p) => p.path);
const messageAt = (problems: Problem[], path: string) => problems.find((p) => p.path === path)?.message ?? "";

describe("validateClusterSpec", () => {
  it("accepts the documented standard and minimal examples", () => {
    expect(validateClusterSpec(standardSpec())).toEqual([]);
    expect(validateClusterSpec(minimalSpec())).toEqual([]);
  });

  it("rejects a non-object", () => {
    expect(paths(validateClusterSpec(undefined))).toEqual(["spec"]);
    expect(paths(validateClusterSpec("standard"))).toEqual(["spec"]);
  });

  it("names every missing required field", () => {
    expect(paths(validateClusterSpec({}))).toEqual(expect.arrayContaining(["spec.mode", "spec.kubernetesVersion", "spec.etcd"]));
  });

  it("reports an unknown mode with the allowed values", () => {
    const problems = validateClusterSpec({ ...standardSpec(), mode: "huge" });
    expect(messageAt(problems, "spec.mode")).toBe('must be one of standard, minimal (got "huge")');
  });

  it("reports unknown fields so typos are not silently ignored", () => {
    const problems = validateClusterSpec({ ...standardSpec(), etcd: { ...standardSpec().etcd, replica: 3 } });
    expect(paths(problems)).toEqual(["spec.etcd.replica"]);
  });

  it.each([
    ["1.36.3", "leading"],
    ["v1.36", "Kubernetes version"],
    ["latest", "Kubernetes version"],
  ])("rejects kubernetesVersion %s", (version, words) => {
    expect(messageAt(validateClusterSpec(standardSpec({ kubernetesVersion: version })), "spec.kubernetesVersion")).toContain(words);
  });

  it("rejects etcd versions that are malformed or too old for the /livez probes", () => {
    const spec = standardSpec();
    expect(messageAt(validateClusterSpec({ ...spec, etcd: { ...spec.etcd, version: "v3.6.16" } }), "spec.etcd.version")).toContain("no leading");
    expect(messageAt(validateClusterSpec({ ...spec, etcd: { ...spec.etcd, version: "3.5.9" } }), "spec.etcd.version")).toContain("3.5.11");
  });

  it.each([2, 4, 6])("rejects an even etcd member count (%i)", (replicas) => {
    const spec = standardSpec();
    expect(messageAt(validateClusterSpec({ ...spec, etcd: { ...spec.etcd, replicas } }), "spec.etcd.replicas")).toContain("odd");
  });

  it("rejects more than seven etcd members and zero", () => {
    const spec = standardSpec();
    expect(messageAt(validateClusterSpec({ ...spec, etcd: { ...spec.etcd, replicas: 9 } }), "spec.etcd.replicas")).toContain("at most 7");
    expect(paths(validateClusterSpec({ ...spec, etcd: { ...spec.etcd, replicas: 0 } }))).toEqual(["spec.etcd.replicas"]);
  });

  it("requires exactly one etcd storage choice", () => {
    const base = standardSpec();
    const both = { ...base, etcd: { ...base.etcd, storage: { claimTemplate: { size: "1Gi" }, volumeSource: { emptyDir: {} } } } };
    const neither = { ...base, etcd: { ...base.etcd, storage: {} } };
    expect(messageAt(validateClusterSpec(both), "spec.etcd.storage")).toContain("both are set");
    expect(messageAt(validateClusterSpec(neither), "spec.etcd.storage")).toContain("neither is set");
  });

  it("checks the claim size and that a volumeSource names one volume type", () => {
    const base = standardSpec();
    const badSize = { ...base, etcd: { ...base.etcd, storage: { claimTemplate: { size: "twenty gigs" } } } };
    const twoKinds = { ...base, etcd: { ...base.etcd, storage: { volumeSource: { emptyDir: {}, hostPath: { path: "/x" } } } } };
    expect(paths(validateClusterSpec(badSize))).toEqual(["spec.etcd.storage.claimTemplate.size"]);
    expect(messageAt(validateClusterSpec(twoKinds), "spec.etcd.storage.volumeSource")).toContain("emptyDir, hostPath");
  });

  it("rejects invalid and overlapping CIDRs", () => {
    expect(paths(validateClusterSpec(standardSpec({ network: { serviceCIDR: "10.96.0.0/33" } })))).toEqual(["spec.network.serviceCIDR"]);
    expect(messageAt(validateClusterSpec(standardSpec({ network: { serviceCIDR: "10.96.0.1/12" } })), "spec.network.serviceCIDR")).toContain(
      "did you mean 10.96.0.0/12",
    );
    expect(messageAt(validateClusterSpec(standardSpec({ network: { serviceCIDR: "10.0.0.0/8" } })), "spec.network.serviceCIDR")).toContain("/12");
    const overlap = validateClusterSpec(standardSpec({ network: { serviceCIDR: "10.96.0.0/12", podCIDR: "10.100.0.0/16" } }));
    expect(messageAt(overlap, "spec.network.podCIDR")).toContain("overlaps serviceCIDR");
    expect(validateClusterSpec(standardSpec({ network: { serviceCIDR: "fd00:10:96::/108", podCIDR: "10.244.0.0/16" } }))).toEqual([]);
  });

  it("rejects a renewal window not shorter than the validity and leaves that outlive the CA", () => {
    const renew = validateClusterSpec(standardSpec({ certificates: { validityDays: 10, renewBeforeDays: 10 } }));
    expect(paths(renew)).toContain("spec.certificates.renewBeforeDays");
    const outlive = validateClusterSpec(standardSpec({ certificates: { validityDays: 4000, caValidityDays: 3650 } }));
    expect(paths(outlive)).toContain("spec.certificates.validityDays");
  });

  it("rejects duplicate kubeconfig names, bad names and several groups", () => {
    const problems = validateClusterSpec(
      standardSpec({
        kubeconfigs: [
          { name: "ops", user: "a" },
          { name: "ops", user: "b" },
          { name: "Ops_Admin", user: "c" },
          { name: "dev", user: "d", groups: ["one", "two"] },
          { name: "long", user: "e", validityDays: 5000 },
        ],
      }),
    );
    expect(messageAt(problems, "spec.kubeconfigs[1].name")).toContain("kubeconfigs[0]");
    expect(paths(problems)).toEqual(
      expect.arrayContaining(["spec.kubeconfigs[2].name", "spec.kubeconfigs[3].groups", "spec.kubeconfigs[4].validityDays"]),
    );
  });

  it("checks hosts, addresses, flags, quantities and labels", () => {
    const problems = validateClusterSpec(
      standardSpec({
        masterNodeSelector: { "bad key!": "x" },
        apiServer: {
          service: { type: "ClusterIP", externalHost: "Not A Host", nodePort: 30443 },
          advertiseAddress: "prod-a.example.com",
          certSANs: ["ok.example.com", "bad_name"],
          extraArgs: { "--v": "2" },
          resources: { requests: { cpu: "lots" } },
        },
      }),
    );
    expect(paths(problems).sort()).toEqual(
      [
        'spec.apiServer.extraArgs["--v"]',
        "spec.apiServer.advertiseAddress",
        "spec.apiServer.certSANs[1]",
        "spec.apiServer.resources.requests.cpu",
        "spec.apiServer.service.externalHost",
        "spec.apiServer.service.nodePort",
        'spec.masterNodeSelector["bad key!"]',
      ].sort(),
    );
  });

  it("collects every problem at once instead of stopping at the first", () => {
    const problems = validateClusterSpec({
      mode: "huge",
      kubernetesVersion: "1.36",
      etcd: { version: "3.6.16", replicas: 2, storage: {} },
      network: { serviceCIDR: "nope" },
    });
    expect(paths(problems)).toEqual(["spec.mode", "spec.kubernetesVersion", "spec.etcd.replicas", "spec.etcd.storage", "spec.network.serviceCIDR"]);
  });

  it("uses the caller's path prefix (stack config, resource)", () => {
    expect(paths(validateClusterSpec({ ...minimalSpec(), mode: "x" }, "kube-on-kube:cluster"))).toEqual(["kube-on-kube:cluster.mode"]);
  });
});

describe("clusterNameProblems", () => {
  it.each(["prod-a", "a", "x".repeat(40)])("accepts %s", (name) => expect(clusterNameProblems(name)).toEqual([]));
  it.each(["Prod", "1prod", "prod_a", "x".repeat(41), "-a", ""])("rejects %s", (name) => expect(clusterNameProblems(name)).toHaveLength(1));
});

describe("SpecValidationError", () => {
  it("lists every problem with its path in one message", () => {
    const error = new SpecValidationError('ControlPlane "prod-a"', [
      { path: "spec.mode", message: "bad" },
      { path: "spec.etcd.replicas", message: "must be odd" },
    ]);
    expect(error.message).toBe('ControlPlane "prod-a" is invalid (2 problems); nothing was changed:\n  - spec.mode: bad\n  - spec.etcd.replicas: must be odd');
  });
});
