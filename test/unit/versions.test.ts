import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compareVersions,
  etcdUpgradeProblems,
  formatKubernetesVersion,
  kubeProxySkewProblem,
  kubeletSkewProblems,
  kubernetesUpgradeProblems,
  MAX_KUBE_PROXY_SKEW,
  parseKubernetesVersion,
} from "../../src/api/v1alpha1";

const version = fc.record({ major: fc.constant(1), minor: fc.integer({ min: 20, max: 40 }), patch: fc.integer({ min: 0, max: 20 }) });
const k = (v: { major: number; minor: number; patch: number }) => formatKubernetesVersion(v);

describe("kubernetesUpgradeProblems", () => {
  it("allows staying, patch upgrades and one minor forward", () => {
    expect(kubernetesUpgradeProblems("v1.36.3", "v1.36.3")).toEqual([]);
    expect(kubernetesUpgradeProblems("v1.36.3", "v1.36.4")).toEqual([]);
    expect(kubernetesUpgradeProblems("v1.35.4", "v1.36.3")).toEqual([]);
  });

  it("refuses a minor skip and says which minor comes next", () => {
    expect(kubernetesUpgradeProblems("v1.34.4", "v1.36.3")).toEqual([
      "v1.34.4 → v1.36.3 skips 1 minor version(s); upgrade one minor at a time (first to v1.35.x)",
    ]);
  });

  it("refuses downgrades, including patch downgrades", () => {
    expect(kubernetesUpgradeProblems("v1.36.3", "v1.35.4")[0]).toContain("downgrade");
    expect(kubernetesUpgradeProblems("v1.36.3", "v1.36.2")[0]).toContain("downgrade");
  });

  it("refuses unparseable versions", () => {
    expect(kubernetesUpgradeProblems("1.36.3", "v1.36.3")[0]).toContain("running version");
  });

  it("allows a move exactly when it goes forward by at most one minor (property)", () => {
    fc.assert(
      fc.property(version, version, (from, to) => {
        const allowed = kubernetesUpgradeProblems(k(from), k(to)).length === 0;
        const expected = compareVersions(to, from) >= 0 && to.minor - from.minor <= 1;
        expect(allowed).toBe(expected);
      }),
    );
  });

  it("reaches any later version through a chain of allowed steps (property)", () => {
    fc.assert(
      fc.property(version, version, (a, b) => {
        const [from, to] = compareVersions(a, b) <= 0 ? [a, b] : [b, a];
        let current = from;
        while (current.minor < to.minor) {
          const next = { ...current, minor: current.minor + 1, patch: 0 };
          expect(kubernetesUpgradeProblems(k(current), k(next))).toEqual([]);
          current = next;
        }
        const last = { ...current, patch: Math.max(current.patch, to.patch) };
        expect(kubernetesUpgradeProblems(k(current), k(last))).toEqual([]);
      }),
    );
  });
});

describe("version parsing", () => {
  it("round-trips Kubernetes versions and orders pre-releases first", () => {
    expect(formatKubernetesVersion(parseKubernetesVersion("v1.36.0-rc.1")!)).toBe("v1.36.0-rc.1");
    expect(compareVersions(parseKubernetesVersion("v1.36.0-rc.1")!, parseKubernetesVersion("v1.36.0")!)).toBeLessThan(0);
    expect(parseKubernetesVersion("v01.36.0")).toBeUndefined();
  });
});

describe("etcdUpgradeProblems", () => {
  it("allows patch and one-minor upgrades, refuses downgrades and skips", () => {
    expect(etcdUpgradeProblems("3.5.21", "3.6.16")).toEqual([]);
    expect(etcdUpgradeProblems("3.6.16", "3.5.21")[0]).toContain("downgrade");
    expect(etcdUpgradeProblems("3.4.0", "3.6.16")[0]).toContain("skips");
  });
});

describe("kubeProxySkewProblem", () => {
  it("allows kube-proxy exactly from the masters' minor down to 3 older, same major (property)", () => {
    fc.assert(
      fc.property(version, version, (proxy, masters) => {
        const allowed = kubeProxySkewProblem(proxy, masters) === undefined;
        expect(allowed).toBe(proxy.minor <= masters.minor && masters.minor - proxy.minor <= MAX_KUBE_PROXY_SKEW);
      }),
    );
    expect(kubeProxySkewProblem({ major: 2, minor: 36, patch: 0 }, { major: 1, minor: 36, patch: 0 })).toContain("another major version");
  });

  it("looks at minors only: a newer patch of the masters' minor is fine", () => {
    expect(kubeProxySkewProblem({ major: 1, minor: 36, patch: 9 }, { major: 1, minor: 36, patch: 1 })).toBeUndefined();
    expect(kubeProxySkewProblem({ major: 1, minor: 37, patch: 0 }, { major: 1, minor: 36, patch: 9 })).toContain("must never be newer than kube-apiserver");
  });
});

describe("kubeletSkewProblems", () => {
  it("allows the masters' minor and up to three older, against both the running and the target masters", () => {
    expect(kubeletSkewProblems("v1.36.3", { running: "v1.36.3", target: "v1.36.3" })).toEqual([]);
    expect(kubeletSkewProblems("v1.33.0", { running: "v1.36.3", target: "v1.36.3" })).toEqual([]);
    // Mid-upgrade both masters answer: a kubelet of either minor is fine.
    expect(kubeletSkewProblems("v1.35.4", { running: "v1.35.4", target: "v1.36.3" })).toEqual([]);
    expect(kubeletSkewProblems("v1.36.3", { target: "v1.36.3" })).toEqual([]);
  });

  it("refuses a kubelet newer than the older masters while they upgrade, naming them", () => {
    expect(kubeletSkewProblems("v1.37.0", { running: "v1.36.3", target: "v1.36.3" })).toEqual([
      "kubelet v1.37.0 is newer than the masters' v1.36.3: kubelet must never be newer than kube-apiserver (version skew policy)",
    ]);
    expect(kubeletSkewProblems("v1.36.3", { running: "v1.35.4", target: "v1.36.3" })).toEqual([
      "kubelet v1.36.3 is newer than the masters' v1.35.4: kubelet must never be newer than kube-apiserver (version skew policy)",
    ]);
  });

  it("refuses a kubelet more than three minors behind the newer masters, and one of another major", () => {
    expect(kubeletSkewProblems("v1.32.9", { running: "v1.35.4", target: "v1.36.3" })).toEqual([
      "kubelet v1.32.9 is 4 minors older than the masters' v1.36.3: kubelet may be at most 3 older (version skew policy)",
    ]);
    expect(kubeletSkewProblems("v2.36.0", { target: "v1.36.3" })[0]).toContain("another major version");
  });

  it("refuses a version it cannot read instead of letting it through unchecked", () => {
    expect(kubeletSkewProblems("1.36.3", { target: "v1.36.3" })[0]).toContain('kubelet version "1.36.3" is not a Kubernetes version like v1.36.3');
  });
});
