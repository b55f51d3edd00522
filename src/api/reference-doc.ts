/**
 * docs/api.md = docs/api.template.md with each `<!-- table:Name -->` marker replaced by the
 * reference table of that schema. `npm run docs` writes it; a unit test fails when it is stale.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { TSchema } from "@sinclair/typebox";
import * as v1alpha1 from "./v1alpha1";
import { referenceTable } from "./reference";

/** Schemas the template may reference, with the root path their fields are shown under. */
export const DOCUMENTED_SCHEMAS: Record<string, { schema: TSchema; root: string }> = {
  ClusterSpec: { schema: v1alpha1.ClusterSpec, root: "spec" },
  ClusterStatus: { schema: v1alpha1.ClusterStatus, root: "status" },
  MachineSpec: { schema: v1alpha1.MachineSpec, root: "spec" },
  MachineStatus: { schema: v1alpha1.MachineStatus, root: "status" },
  ClusterPackageVersionSpec: { schema: v1alpha1.ClusterPackageVersionSpec, root: "spec" },
  ClusterPackageVersionStatus: { schema: v1alpha1.ClusterPackageVersionStatus, root: "status" },
};

export function renderApiReference(repoRoot: string): string {
  const template = readFileSync(join(repoRoot, "docs", "api.template.md"), "utf8");
  return template.replace(/<!-- table:(\w+) -->/g, (_, name: string) => {
    const entry = DOCUMENTED_SCHEMAS[name];
    if (!entry) throw new Error(`docs/api.template.md references unknown schema ${name}`);
    return `<!-- generated from src/api/v1alpha1 (${name}); edit the schema, then npm run docs -->\n${referenceTable(entry.schema, entry.root)}`;
  });
}
