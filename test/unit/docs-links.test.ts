/**
 * The README and docs/ cite repository files by path (`src/host/ssh-client.ts`), by relative link
 * (`[docs/workers.md](docs/workers.md)`) and by bare file name (`worker-kubectl-engine.test.ts`).
 * Files move (the src/ reshape moved dozens) and docs rot silently, so every such citation must
 * name something that exists in the repository.
 */
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.join(__dirname, "..", "..");
const SKIP = new Set(["node_modules", ".git", "dist", "coverage", ".kok"]);

/** Every file and directory of the work tree, relative to its root, with "/" separators. */
function walk(dir = ROOT, prefix = ""): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    out.push(rel);
    if (entry.isDirectory()) out.push(...walk(path.join(dir, entry.name), rel));
  }
  return out;
}

const entries = walk();
const basenames = new Set(entries.map((e) => path.posix.basename(e)));
const docs = ["README.md", ...entries.filter((e) => /^docs\/[^/]+\.md$/.test(e)).sort()];

/**
 * Citations of things that are not in the work tree on purpose, each with why: kept short, and
 * each must still be cited somewhere (checked below), so the list cannot outlive its reasons.
 */
const NOT_IN_TREE: Record<string, string> = {
  "bench/results.json": "written by `npm run bench`, ignored by git",
  "tools/go/kube-X.Y": "a placeholder for a Kubernetes minor's module directory",
};

/** A cited path (with `*`, `**` or `{a,b}`) as a regular expression over work-tree paths. */
function pattern(cited: string): RegExp {
  let re = "";
  for (let i = 0; i < cited.length; i++) {
    const c = cited[i];
    if (c === "*" && cited[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "{") re += "(?:";
    else if (c === "}") re += ")";
    else if (c === ",") re += "|";
    else re += c.replace(/[.+?^$()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

interface Citation {
  readonly doc: string;
  readonly line: number;
  readonly cited: string;
  readonly kind: "path" | "link" | "file name";
}

function citations(doc: string): Citation[] {
  const out: Citation[] = [];
  const lines = readFileSync(path.join(ROOT, doc), "utf8").split("\n");
  lines.forEach((text, i) => {
    const line = i + 1;
    // Repository paths anywhere (prose, code spans, code blocks), not parts of URLs or home paths.
    for (const m of text.matchAll(/(?<![\w.~/$@:-])((?:src|test|docs|tools|examples|bench|\.ci)\/[\w.*{},/-]*[\w*}])/g)) {
      out.push({ doc, line, cited: m[1], kind: "path" });
    }
    // Relative Markdown links, resolved from the document's directory.
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1].split("#")[0];
      if (target === "" || /^[a-z]+:/i.test(target)) continue;
      out.push({ doc, line, cited: path.posix.normalize(path.posix.join(path.posix.dirname(doc), target)), kind: "link" });
    }
    // Bare source file names in code spans: `context.ts`, `worker-kubectl-engine.test.ts`.
    for (const m of text.matchAll(/`([A-Za-z][\w.-]*\.(?:ts|mts|sh))`/g)) out.push({ doc, line, cited: m[1], kind: "file name" });
  });
  return out;
}

const all = docs.flatMap(citations);

function exists(c: Citation): boolean {
  if (c.kind === "file name") return basenames.has(c.cited);
  const cited = c.cited.replace(/\/$/, "");
  if (cited in NOT_IN_TREE) return true;
  const re = pattern(cited);
  return entries.some((e) => re.test(e));
}

describe("paths cited in README.md and docs/*.md", () => {
  it("finds citations in every document (the scanner works)", () => {
    expect(docs).toContain("docs/workers.md");
    for (const kind of ["path", "link", "file name"] as const) expect(all.some((c) => c.kind === kind)).toBe(true);
    expect(all.length).toBeGreaterThan(50);
  });

  it("cites only files and directories that exist", () => {
    const missing = all.filter((c) => !exists(c)).map((c) => `${c.doc}:${c.line}: ${c.kind} ${c.cited}`);
    expect(missing, `cited but not in the repository:\n${missing.join("\n")}`).toEqual([]);
  });

  it("keeps no exception nobody cites any more", () => {
    const cited = new Set(all.map((c) => c.cited.replace(/\/$/, "")));
    expect(Object.keys(NOT_IN_TREE).filter((p) => !cited.has(p))).toEqual([]);
  });

  it("reads globs and braces as the docs mean them", () => {
    expect(pattern("src/controllers/{cluster,machine}").test("src/controllers/machine")).toBe(true);
    expect(pattern("test/e2e/*.test.ts").test("test/e2e/sub/x.test.ts")).toBe(false);
    expect(pattern("src/**/x.ts").test("src/a/b/x.ts")).toBe(true);
  });
});
