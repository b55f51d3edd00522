import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { validateManifests } from "../../src/cli/validate";

describe("kok validate", () => {
  it("accepts the sample Cluster resource", () => {
    const file = join(__dirname, "..", "..", "examples", "resources", "cluster.yaml");
    const reports = validateManifests(file, readFileSync(file, "utf8"));
    expect(reports.map((r) => [r.subject, r.problems])).toEqual([["Cluster fleet/prod-a", []]]);
  });

  it("reports every problem of every document, ignores foreign kinds and names unknown kinds", () => {
    const text = [
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}",
      "apiVersion: kubeonkube.io/v1alpha1\nkind: Cluster\nmetadata: {name: Bad_Name}\nspec: {mode: huge, kubernetesVersion: v1.36.3, etcd: {version: 3.6.16, storage: {emptyDir: {}}}}",
      "apiVersion: kubeonkube.io/v1alpha1\nkind: Clustre\nmetadata: {name: a}\nspec: {}",
      "key: [unclosed",
    ].join("\n---\n");
    const reports = validateManifests("f.yaml", text);
    expect(reports.map((r) => r.subject)).toEqual(["Cluster Bad_Name", "Clustre a", "document 4"]);
    expect(reports[0].problems.map((p) => p.path).sort()).toEqual(["metadata.name", "spec.etcd.storage", "spec.etcd.storage.emptyDir", "spec.mode"]);
    expect(reports[1].problems[0].message).toContain('"Clustre" is not a kind');
    expect(reports[2].problems[0].path).toBe("(yaml)");
  });
});
