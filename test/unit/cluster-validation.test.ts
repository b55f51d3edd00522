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

  it("refuses a service range without a 10th address (the cluster DNS Service), IPv4 and IPv6", () => {
    for (const small of ["10.96.0.0/29", "10.96.0.0/30", "10.96.0.0/32", "fd00:10:96::/125", "fd00:10:96::/128"]) {
      const problems = validateClusterSpec(standardSpec({ network: { serviceCIDR: small, podCIDR: "10.244.0.0/16" } }));
      expect(paths(problems), small).toEqual(["spec.network.serviceCIDR"]);
      expect(messageAt(problems, "spec.network.serviceCIDR")).toMatch(/too small: .*cluster DNS Service \(10th\); use \/(28|124) or larger/);
    }
    for (const enough of ["10.96.0.0/28", "fd00:10:96::/124", "fd00:10:96::/108"]) {
      expect(validateClusterSpec(standardSpec({ network: { serviceCIDR: enough, podCIDR: "10.244.0.0/16" } })), enough).toEqual([]);
    }
  });

  it("refuses a Pod range the controller-manager cannot split into per-Node ranges (/24 IPv4, /64 IPv6, at most 2^16 of them)", () => {
    const at = (podCIDR: string, extraArgs?: Record<string, string>) =>
      validateClusterSpec(standardSpec({ network: { serviceCIDR: "172.16.0.0/16", podCIDR }, ...(extraArgs ? { controllerManager: { extraArgs } } : {}) }));
    for (const ok of ["10.244.0.0/16", "11.0.0.0/8", "10.244.0.0/24", "fd00:244::/48", "fd00:244::/64"]) expect(at(ok), ok).toEqual([]);
    expect(messageAt(at("10.244.0.0/25"), "spec.network.podCIDR")).toContain("each Node gets a /24 of it");
    expect(messageAt(at("8.0.0.0/7"), "spec.network.podCIDR")).toContain("use /8 or smaller");
    expect(messageAt(at("fd00::/32"), "spec.network.podCIDR")).toContain("use /48 or smaller");
    expect(messageAt(at("fd00:244::/80"), "spec.network.podCIDR")).toContain("each Node gets a /64");
    // The tenant's own --node-cidr-mask-size counts.
    expect(at("10.244.0.0/26", { "node-cidr-mask-size-ipv4": "28" })).toEqual([]);
    expect(paths(at("11.0.0.0/8", { "node-cidr-mask-size": "26" }))).toEqual(["spec.network.podCIDR"]);
  });

  it("accepts add-ons switched off, overridden within the skew policy, or left out", () => {
    expect(validateClusterSpec(standardSpec({ addons: {} }))).toEqual([]);
    const own = { network: { enabled: false }, kubeProxy: { enabled: false }, coreDNS: { enabled: false } };
    expect(validateClusterSpec(standardSpec({ addons: own }))).toEqual([]);
    for (const version of ["v1.36.3", "v1.36.9", "v1.35.0", "v1.33.2"]) {
      expect(validateClusterSpec(standardSpec({ addons: { kubeProxy: { version, mode: "nftables" } } })), version).toEqual([]);
    }
    expect(validateClusterSpec(standardSpec({ addons: { network: { backend: "vxlan", image: "mirror.corp/flannel/flannel:v0.28.10" }, coreDNS: { replicas: 3, version: "v1.12.1" } } }))).toEqual([]);
  });

  it("refuses a kube-proxy newer than the masters or more than 3 minors older, with the field path", () => {
    const newer = validateClusterSpec(standardSpec({ addons: { kubeProxy: { version: "v1.37.0" } } }));
    expect(paths(newer)).toEqual(["spec.addons.kubeProxy.version"]);
    expect(messageAt(newer, "spec.addons.kubeProxy.version")).toContain("v1.37.0 is newer than the masters' v1.36.3");
    const older = validateClusterSpec(standardSpec({ addons: { kubeProxy: { version: "v1.32.9" } } }));
    expect(messageAt(older, "spec.addons.kubeProxy.version")).toContain("4 minors older than the masters' v1.36.3: kube-proxy may be at most 3 older");
    expect(paths(validateClusterSpec(standardSpec({ addons: { kubeProxy: { version: "v2.36.0" } } })))).toEqual(["spec.addons.kubeProxy.version"]);
  });

  it("refuses nftables for a kube-proxy older than v1.31", () => {
    const spec = standardSpec({ kubernetesVersion: "v1.33.1", addons: { kubeProxy: { version: "v1.30.4", mode: "nftables" } } });
    const problems = validateClusterSpec(spec);
    expect(paths(problems)).toEqual(["spec.addons.kubeProxy.mode"]);
    expect(messageAt(problems, "spec.addons.kubeProxy.mode")).toContain("nftables needs kube-proxy v1.31 or later (this one runs v1.30)");
  });

  it("reports bad add-on fields by path: unknown keys, plugin, backend, replicas, version tag and image", () => {
    const problems = validateClusterSpec(
      standardSpec({
        addons: {
          network: { plugin: "calico", backend: "ipip", image: "not an image" },
          kubeProxy: { version: "1.36.3", mode: "ipvs" },
          coreDNS: { replicas: 0, version: "latest" },
          dashboard: {},
        } as never,
      }),
    );
    expect(paths(problems).sort()).toEqual(
      [
        "spec.addons.coreDNS.replicas",
        "spec.addons.coreDNS.version",
        "spec.addons.dashboard",
        "spec.addons.kubeProxy.mode",
        "spec.addons.kubeProxy.version",
        "spec.addons.network.backend",
        "spec.addons.network.image",
        "spec.addons.network.plugin",
      ].sort(),
    );
    expect(paths(validateClusterSpec(standardSpec({ addons: { coreDNS: { replicas: 11 } } })))).toEqual(["spec.addons.coreDNS.replicas"]);
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
