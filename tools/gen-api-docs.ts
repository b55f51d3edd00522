/** Writes docs/api.md from docs/api.template.md and the v1alpha1 schemas (`npm run docs`). */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderApiReference } from "../src/api/reference-doc";

const root = join(__dirname, "..");
writeFileSync(join(root, "docs", "api.md"), renderApiReference(root));
console.log("wrote docs/api.md");
