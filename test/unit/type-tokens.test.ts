import { describe, expect, it } from "vitest";
import { componentType, legacyComponentType, withLegacyAlias } from "../../src/components/type-tokens";

describe("component type tokens", () => {
  it("puts every component in the module index", () => {
    expect(componentType("ClusterPki")).toBe("kube-on-kube:index:ClusterPki");
    expect(componentType("ControlPlane")).toBe("kube-on-kube:index:ControlPlane");
  });
  it("aliases each moved component to its old token and keeps the caller's aliases", () => {
    expect(legacyComponentType("Etcd")).toBe("kube-on-kube:masters:Etcd");
    expect(legacyComponentType("NodePool")).toBe("kube-on-kube:workers:NodePool");
    expect(withLegacyAlias("ClusterPki", { aliases: [{ name: "old-name" }], protect: true })).toEqual({
      aliases: [{ name: "old-name" }, { type: "kube-on-kube:pki:ClusterPki" }],
      protect: true,
    });
  });
  it("adds no alias to ControlPlane, whose token never changed", () => {
    expect(legacyComponentType("ControlPlane")).toBeUndefined();
    expect(withLegacyAlias("ControlPlane", undefined)).toEqual({});
  });
});
