/**
 * What `npm pack` would publish, built from the working tree: the license, the entry points,
 * no source maps pointing at files that are not shipped, no test, bench or tool code, only the
 * development modules the CLI runs, and a README that says what dist/ holds. The main entry is
 * loaded in a child process to see which modules it pulls in.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packList, REPO, stagePackage, type PackList } from "../support/packed-package";

const work = mkdtempSync(path.join(tmpdir(), "kok-pack-"));
let staged: string;
let pack: PackList;
let shipped: Set<string>;

beforeAll(() => {
  staged = stagePackage(work);
  pack = packList(staged);
  shipped = new Set(pack.files);
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

const manifest = JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as {
  license: string;
  main: string;
  types: string;
  bin: Record<string, string>;
  exports: Record<string, string | Record<string, string>>;
};

/** "./dist/x.js" and "dist/x.js" alike as a path inside the package. */
const inPackage = (target: string) => path.posix.normalize(target).replace(/^\.\//, "");

/** The relative modules a compiled CommonJS file requires, as package paths. */
function relativeRequires(file: string): string[] {
  const text = readFileSync(path.join(staged, file), "utf8");
  const found = [...text.matchAll(/require\("(\.{1,2}\/[^"]+)"\)/g)].map((m) => path.posix.join(path.posix.dirname(file), m[1]));
  return found.map((p) => (shipped.has(`${p}.js`) ? `${p}.js` : shipped.has(`${p}/index.js`) ? `${p}/index.js` : p));
}

/** Every module reachable from `entries` through relative requires. */
function reachable(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.shift() as string;
    if (seen.has(file) || !shipped.has(file)) continue;
    seen.add(file);
    queue.push(...relativeRequires(file));
  }
  return seen;
}

describe("the published package", () => {
  it("holds the license, the manifest, the README and every entry point package.json names", () => {
    expect(manifest.license).toBe("Apache-2.0");
    const license = readFileSync(path.join(staged, "LICENSE"), "utf8");
    expect(license).toMatch(/Apache License\s+Version 2\.0, January 2004/);
    expect(license).toContain("END OF TERMS AND CONDITIONS");
    const targets = [manifest.main, manifest.types, ...Object.values(manifest.bin)];
    for (const value of Object.values(manifest.exports)) targets.push(...(typeof value === "string" ? [value] : Object.values(value)));
    const missing = ["LICENSE", "README.md", "package.json", ...targets.map(inPackage)].filter((f) => !shipped.has(f));
    expect(missing).toEqual([]);
  });

  it("ships no source map, and no compiled file points at a map or source that is not shipped", () => {
    const dangling: string[] = [];
    for (const file of pack.files) {
      if (file.endsWith(".map")) {
        const map = JSON.parse(readFileSync(path.join(staged, file), "utf8")) as { sources?: string[] };
        for (const source of map.sources ?? []) {
          const at = path.posix.join(path.posix.dirname(file), source);
          if (!shipped.has(at)) dangling.push(`${file} → ${at}`);
        }
      }
      if (/\.(js|d\.ts)$/.test(file)) {
        const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(path.join(staged, file), "utf8"))?.[1];
        if (url && !url.startsWith("data:") && !shipped.has(path.posix.join(path.posix.dirname(file), url))) dangling.push(`${file} → ${url}`);
      }
    }
    expect(dangling).toEqual([]);
    expect(pack.files.filter((f) => f.endsWith(".map"))).toEqual([]);
  });

  it("ships no test, bench, tool or example code, and no TypeScript sources", () => {
    const foreign = pack.files.filter((f) => /^(test|bench|tools|examples|src)\//.test(f) || (f.endsWith(".ts") && !f.endsWith(".d.ts")));
    expect(foreign).toEqual([]);
  });

  it("ships only the development modules the CLI runs (`kok dev`, `kok demo`) and the process it starts (the real node's forwarder)", () => {
    const dev = pack.files.filter((f) => f.startsWith("dist/dev/") && f.endsWith(".js"));
    expect(dev.length).toBeGreaterThan(0);
    // node/forwarder.ts starts it by its file path, not by a require.
    const used = reachable(["dist/cli/main.js", "dist/dev/node/forwarder-entry.js"]);
    expect(dev.filter((f) => !used.has(f))).toEqual([]);
    expect(reachable([inPackage(manifest.main)]).has("dist/dev/config.js")).toBe(false);
  });

  it("ships the image builder (`kok images build`) as modules the CLI reaches and the library does not", () => {
    const images = pack.files.filter((f) => f.startsWith("dist/images/") && f.endsWith(".js"));
    expect(images).toContain("dist/images/build.js");
    const used = reachable(["dist/cli/main.js"]);
    expect(images.filter((f) => !used.has(f))).toEqual([]);
    expect(images.filter((f) => reachable([inPackage(manifest.main)]).has(f))).toEqual([]);
  });

  it("README's Install section names every directory of dist/ the package ships", () => {
    const readme = readFileSync(path.join(REPO, "README.md"), "utf8");
    const install = /^## Install\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? "";
    const dirs = [...new Set(pack.files.filter((f) => f.startsWith("dist/") && f.split("/").length > 2).map((f) => `dist/${f.split("/")[1]}/`))];
    expect(dirs).toContain("dist/dev/");
    expect(dirs.filter((d) => !install.includes(d))).toEqual([]);
  });

  it("its main entry loads neither @pulumi/command nor the development environment or the CLI", () => {
    // The repository's node_modules hold @pulumi/command (a dev dependency): not loading it is the code's doing.
    const script = `require(${JSON.stringify(path.join(staged, inPackage(manifest.main)))});
const loaded = Object.keys(require.cache);
console.log(JSON.stringify({
  command: loaded.filter((f) => f.includes("/@pulumi/command/")),
  ours: loaded.filter((f) => f.startsWith(${JSON.stringify(staged + "/")})).map((f) => f.slice(${staged.length + 1})),
  controlPlane: typeof require(${JSON.stringify(path.join(staged, "dist", "index.js"))}).ControlPlane,
}));`;
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", env: { ...process.env, NODE_PATH: path.join(REPO, "node_modules") }, timeout: 120_000 });
    expect(r.stderr).toBe("");
    const seen = JSON.parse(r.stdout) as { command: string[]; ours: string[]; controlPlane: string };
    expect(seen.controlPlane).toBe("function");
    expect(seen.ours).toContain("dist/components/worker-node.js");
    expect(seen.command).toEqual([]);
    expect(seen.ours.filter((f) => f.startsWith("dist/dev/") || f.startsWith("dist/cli/") || f.startsWith("dist/images/"))).toEqual([]);
  });
});
