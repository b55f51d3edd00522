/**
 * Loading the optional peer @pulumi/command: the real package when installed; when it is not,
 * an error naming it and the alternative; a broken install's own error passed on unchanged.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadPulumiCommand } from "../../src/components/command-steps";

const work = mkdtempSync(path.join(tmpdir(), "kok-command-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("loadPulumiCommand", () => {
  it("loads the installed package", () => {
    const command = loadPulumiCommand("WorkerNode w");
    expect(typeof command.remote.Command).toBe("function");
    expect(typeof command.local.Command).toBe("function");
  });

  it("names the package to install and the openssh step provider when it is not installed", () => {
    // Resolved from a directory with no node_modules above it that holds the package.
    const requireFromNowhere = createRequire(path.join(work, "app.js"));
    expect(() => loadPulumiCommand("WorkerNode w", requireFromNowhere)).toThrow(
      /^WorkerNode w: stepProvider "command" \(the default\) runs the steps with @pulumi\/command, an optional peer dependency that is not installed: run `npm install @pulumi\/command`.*stepProvider: "openssh"/,
    );
  });

  it("passes on the error of an installed package that cannot load one of its own dependencies", () => {
    const app = path.join(work, "broken");
    const pkg = path.join(app, "node_modules", "@pulumi", "command");
    mkdirSync(pkg, { recursive: true });
    writeFileSync(path.join(pkg, "package.json"), JSON.stringify({ name: "@pulumi/command", main: "index.js" }));
    writeFileSync(path.join(pkg, "index.js"), 'require("kok-absent-dependency");\n');
    expect(() => loadPulumiCommand("WorkerNode w", createRequire(path.join(app, "app.js")))).toThrow(/Cannot find module 'kok-absent-dependency'/);
  });
});
