/**
 * The layer rules of docs/architecture.md, checked on every import of src/ (static, dynamic and
 * `require`): a violation fails with the importing file, the import and the rule it breaks.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(__dirname, "../..");
const SRC = path.join(ROOT, "src");

type Layer = "api" | "components" | "host" | "program" | "provider" | "runtime" | "controllers" | "operator" | "cli" | "dev" | "images" | "backup" | "index";

/** Layers each layer must never import (itself always allowed). */
const FORBIDDEN: Record<Layer, readonly Layer[]> = {
  api: ["components", "host", "program", "provider", "runtime", "controllers", "operator", "cli", "dev", "images", "index", "backup"],
  host: ["components", "program", "provider", "runtime", "controllers", "operator", "cli", "dev", "images", "index", "backup"],
  components: ["program", "provider", "runtime", "controllers", "operator", "cli", "dev", "images", "index", "backup"],
  program: ["provider", "runtime", "controllers", "operator", "cli", "dev", "images", "index", "backup"],
  provider: ["program", "runtime", "controllers", "operator", "cli", "dev", "images", "index", "backup"],
  runtime: ["components", "host", "program", "provider", "controllers", "operator", "cli", "dev", "images", "index", "backup"],
  controllers: ["provider", "operator", "cli", "dev", "images", "index"],
  operator: ["provider", "cli", "dev", "images", "index", "backup"],
  cli: ["index"],
  dev: ["index"],
  // Images are built by `kok images build` and `kok dev up`. The operator image takes from the
  // operator, components and cli layers only what it must agree on with the operator's Deployment
  // (paths, user, the plugins preflight asks for); the other images need nothing of ours.
  images: ["api", "host", "program", "provider", "runtime", "controllers", "dev", "backup", "index"],
  // The etcd backups (`kok etcd backup`/`restore`): etcd's tools and the S3 client, no kind of ours.
  backup: ["components", "host", "program", "provider", "controllers", "operator", "cli", "dev", "images", "index"],
  index: ["dev", "cli", "operator", "provider", "images", "backup"],
};

function layerOf(file: string): Layer {
  const rel = path.relative(SRC, file);
  if (rel === "index.ts") return "index";
  const top = rel.split(path.sep)[0] as Layer;
  if (!(top in FORBIDDEN)) throw new Error(`src/${rel}: not in any layer of docs/architecture.md; add its folder to the rules`);
  return top;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

/** Relative imports of `file`, resolved to files: `from "…"`, `import("…")`, `require("…")`. */
export function importsOf(file: string): { spec: string; target: string }[] {
  const text = fs.readFileSync(file, "utf8");
  const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm)].map((m) => m[1]!);
  return specs.map((spec) => {
    const base = path.resolve(path.dirname(file), spec);
    const target = [`${base}.ts`, path.join(base, "index.ts"), base.replace(/\.js$/, ".ts")].find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
    if (!target) throw new Error(`${path.relative(ROOT, file)}: import "${spec}" resolves to no file`);
    return { spec, target };
  });
}

describe("import rules between layers (docs/architecture.md)", () => {
  const files = sourceFiles(SRC);

  it("finds the layers and their imports", () => {
    expect(files.length).toBeGreaterThan(100);
    expect(importsOf(path.join(SRC, "index.ts")).length).toBeGreaterThan(5);
  });

  it("no layer imports one it must not", () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      for (const { spec, target } of importsOf(file)) {
        const to = layerOf(target);
        if (to !== from && FORBIDDEN[from].includes(to)) violations.push(`src/${path.relative(SRC, file)} imports "${spec}": ${from} must not import ${to}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it("nothing reachable from the public entry (src/index.ts) is development code", () => {
    const reached = new Map<string, string>([[path.join(SRC, "index.ts"), "src/index.ts"]]);
    const queue = [path.join(SRC, "index.ts")];
    while (queue.length) {
      const file = queue.pop()!;
      for (const { target } of importsOf(file)) {
        if (reached.has(target)) continue;
        reached.set(target, `${reached.get(file)} → src/${path.relative(SRC, target)}`);
        queue.push(target);
      }
    }
    const dev = [...reached].filter(([file]) => ["dev", "cli", "operator", "images", "backup"].includes(layerOf(file))).map(([, chain]) => chain);
    expect(dev).toEqual([]);
    expect(reached.size).toBeGreaterThan(20);
  });
});
