import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { hasExited } from "../../../src/dev/processes";

const dir = mkdtempSync(join(tmpdir(), "kok-processes-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pidFile = (name: string, pid: number, marker: string) => {
  const file = join(dir, `${name}.pid`);
  writeFileSync(file, JSON.stringify({ pid, marker, startedAt: new Date().toISOString() }));
  return file;
};

describe("hasExited", () => {
  it("is false for a live process whatever its command line shows (it may be mid-exec)", () => {
    expect(hasExited(pidFile("live", process.pid, "a marker this command line does not hold"))).toBe(false);
  });

  it("is true for a process that has exited, and when there is no pid file", () => {
    const gone = spawnSync("true").pid;
    expect(hasExited(pidFile("gone", gone, "true"))).toBe(true);
    expect(hasExited(join(dir, "absent.pid"))).toBe(true);
  });
});
