import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { referenceTable } from "../../src/api/reference";
import { renderApiReference } from "../../src/api/reference-doc";
import { ClusterSpec } from "../../src/api/v1alpha1";

const root = join(__dirname, "..", "..");

describe("API reference", () => {
  it("documents every field of the ClusterSpec with its type and default", () => {
    const table = referenceTable(ClusterSpec, "spec");
    expect(table).toContain("| `spec.mode` | `standard` \\| `minimal` | yes |");
    expect(table).toContain("| `spec.network.serviceCIDR` | string |  | `\"10.96.0.0/12\"` |");
    expect(table).toContain("| `spec.kubeconfigs[].name` | string | yes |");
    expect(table).toContain("| `spec.etcd.storage.claimTemplate.size` | string | yes |");
  });

  it("docs/api.md is up to date with the schemas (run `npm run docs`)", () => {
    expect(readFileSync(join(root, "docs", "api.md"), "utf8")).toBe(renderApiReference(root));
  });
});
