/**
 * Writes charts/kube-on-kube from src/operator/helm-chart.ts (`npx tsx tools/gen-chart.ts`): the same objects
 * as `kok manifests`, with the chart's values in them. Files the generator no longer makes are
 * removed, so the directory is exactly what it renders. test/unit/helm-chart.test.ts fails when the
 * checked-in chart differs.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { chartSources, CHART_DIR, renderHelmChart } from "../src/operator/helm-chart";

const root = join(__dirname, "..");
const chartDir = join(root, CHART_DIR);
const files = renderHelmChart(chartSources(root));

const existing = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? existing(path) : [relative(chartDir, path)];
  });
mkdirSync(chartDir, { recursive: true });
for (const path of existing(chartDir)) if (!files.has(path)) rmSync(join(chartDir, path));
let written = 0;
for (const [path, content] of files) {
  const target = join(chartDir, path);
  mkdirSync(dirname(target), { recursive: true });
  let old: string | undefined;
  try {
    old = readFileSync(target, "utf8");
  } catch {
    old = undefined;
  }
  if (old !== content) {
    writeFileSync(target, content);
    written++;
  }
}
console.log(`${CHART_DIR}: ${files.size} files, ${written} changed`);
