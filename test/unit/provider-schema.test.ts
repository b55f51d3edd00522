import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { packageVersion } from "../../src/provider/provider";
import { packageSchema } from "../../src/provider/schema";

const root = join(__dirname, "..", "..");

describe("the component package schema", () => {
  it("provider/schema.json is up to date with the API (run `npm run schema`)", () => {
    expect(JSON.parse(readFileSync(join(root, "provider", "schema.json"), "utf8"))).toEqual(packageSchema(packageVersion()).schema);
  });

  it("flattens exactly the API's string unions to string, listing their values", () => {
    const { schema, flattenedUnions } = packageSchema("0.0.0");
    expect(flattenedUnions).toContain('spec.mode: "standard" | "minimal"');
    expect(flattenedUnions).toContain('spec.apiServer.service.type: "ClusterIP" | "NodePort" | "LoadBalancer"');
    // The one union of another kind: IntOrPercent, a string the provider reads back as a count.
    expect(flattenedUnions).toContain('packageVersion.rollout.maxUnavailable: integer | string (a string; "2" is read as the count 2)');
    const types = schema.types as Record<string, { properties: Record<string, { type?: string; description?: string }> }>;
    expect(types["kube-on-kube:index:ClusterSpec"].properties.mode).toMatchObject({ type: "string", description: expect.stringContaining('One of "standard", "minimal".') });
    // No property anywhere is left without a type or a reference.
    for (const [name, t] of Object.entries(types)) {
      for (const [key, p] of Object.entries(t.properties)) expect(p.type ?? (p as { $ref?: string }).$ref, `${name}.${key}`).toBeDefined();
    }
  });

  it("names every component in the module index", () => {
    expect(Object.keys(packageSchema("0.0.0").schema.resources as object).sort()).toEqual(["kube-on-kube:index:ClusterPki", "kube-on-kube:index:ControlPlane", "kube-on-kube:index:NodePool", "kube-on-kube:index:WorkerNode"]);
  });
});
