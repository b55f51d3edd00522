import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { exitedWithLog } from "../../../src/dev/log-tail";
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

describe("exitedWithLog", () => {
  it("says nothing while the process lives, even with a command line that lacks its marker (mid-exec)", () => {
    expect(exitedWithLog(pidFile("mid-exec", process.pid, "versitygw"), join(dir, "none.log"), "object store")()).toBeUndefined();
  });

  it("names the process and shows its log's last lines once it has exited", () => {
    const log = join(dir, "gone.log");
    writeFileSync(log, "line 1\nbind: address already in use\n");
    const why = exitedWithLog(pidFile("gone2", spawnSync("true").pid, "true"), log, "object store")();
    expect(why).toBe(`object store exited; last lines of ${log}:\nline 1\nbind: address already in use`);
  });
});
