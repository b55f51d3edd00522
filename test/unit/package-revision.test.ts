import { describe, expect, it } from "vitest";
import { packagesRevision } from "../../src/controllers/packageversion/revision";
import { packages } from "../support/worker-fixtures";

describe("packagesRevision", () => {
  it("is stable across key order and differs when any artifact changes", () => {
    const a = packages();
    const reordered = { cni: a.cni, kubelet: a.kubelet, containerd: { sha256: a.containerd.sha256, url: a.containerd.url, version: a.containerd.version } };
    expect(packagesRevision(reordered)).toBe(packagesRevision(a));
    expect(packagesRevision(a)).toMatch(/^[0-9a-f]{16}$/);
    expect(packagesRevision(packages("v1.35.4"))).not.toBe(packagesRevision(a));
    expect(packagesRevision({ ...a, cni: { ...a.cni, sha256: "f".repeat(64) } })).not.toBe(packagesRevision(a));
  });
});
