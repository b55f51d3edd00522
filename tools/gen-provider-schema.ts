/** Writes provider/schema.json, the package schema the provider serves (`npm run schema`). */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { packageVersion } from "../src/provider/provider";
import { packageSchema } from "../src/provider/schema";

const file = join(__dirname, "..", "provider", "schema.json");
writeFileSync(file, `${JSON.stringify(packageSchema(packageVersion()).schema, null, 2)}\n`);
console.log(`wrote ${file}`);
