import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { pruneStateHistory } from "../../src/runtime/state-history";

// Pruning after real updates, and a stack locked by a running one: test/integration/state-backends.test.ts.
describe("pruneStateHistory: what it refuses", () => {
  const dirs: string[] = [];
  const backend = () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kok-prune-"));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it("a backend with no meta.yaml has no stack: nothing to do", () => {
    expect(pruneStateHistory(backend(), 3)).toEqual({ pruned: [], locked: [] });
  });

  it("an unscoped backend of an older layout is left alone, naming the command that upgrades it", () => {
    const dir = backend();
    mkdirSync(path.join(dir, ".pulumi"));
    writeFileSync(path.join(dir, ".pulumi", "meta.yaml"), "version: 0\n");
    expect(() => pruneStateHistory(dir, 3)).toThrow(/meta\.yaml: state layout version 0 is not pruned; `pulumi state upgrade`/);
  });

  it("keeps at least one update", () => {
    expect(() => pruneStateHistory(backend(), 0)).toThrow("keep must be a positive integer, got 0");
  });
});
