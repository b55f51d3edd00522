import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FakeClock } from "../support/fake-clock";
import { decideLock, EngineFence, engineProcesses, FencedError, FenceWatchdog, killEngines, parseHolderRecord, ENGINE_OWNER_VARIABLE, WATCHDOG_SOURCE } from "../../src/runtime/fencing";
import { holderRecordsFor } from "../../src/runtime/holder-files";

const started: number[] = [];

/** Whether `pid` is a live process (a zombie counts as gone: it runs nothing). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/**
 * An "engine" like the CLI's: a shell with a child, and a grandchild whose parent exits at once
 * (re-parented to init, as a provider is when its CLI is killed). Returns the pids it wrote.
 */
function startEngine(env: Record<string, string>, dir: string): number[] {
  const pidsFile = path.join(dir, `pids-${Math.random()}`);
  // The orphan's parent shell exits right away; `sleep` keeps the marker in its environment.
  const script = `sleep 600 & echo $! >> ${pidsFile}; (sleep 600 & echo $! >> ${pidsFile}) ; echo $$ >> ${pidsFile}; wait`;
  const child = spawn("bash", ["-c", script], { env: { ...process.env, ...env }, stdio: "ignore" });
  child.unref();
  for (let i = 0; i < 500 && (!existsSync(pidsFile) || readFileSync(pidsFile, "utf8").trim().split("\n").length < 3); i++) spawnSync("sleep", ["0.01"]);
  const pids = readFileSync(pidsFile, "utf8").trim().split("\n").map(Number);
  started.push(...pids);
  return pids;
}

afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already: the test did its job.
    }
  }
});

describe("fencing: engine processes", () => {
  it("finds every process carrying the marker, orphans included, and kills them all; others live on", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kok-fence-"));
    const marker = `test-${process.pid}-${Math.random()}`;
    const engine = startEngine({ [ENGINE_OWNER_VARIABLE]: marker }, dir);
    const bystander = startEngine({ [ENGINE_OWNER_VARIABLE]: `${marker}-other` }, dir);
    expect(engineProcesses(marker).sort()).toEqual([...engine].sort());
    expect(await killEngines(marker)).toEqual([]);
    for (const pid of engine) expect(alive(pid)).toBe(false);
    for (const pid of bystander) expect(alive(pid)).toBe(true);
    rmSync(dir, { recursive: true, force: true });
  });

  it("EngineFence: refuses operations outside a term, aborts and kills the running ones when the term ends", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kok-fence-"));
    const fence = new EngineFence({ identity: "replica-a" });
    expect(() => fence.admit("up of stack ns.a")).toThrow(FencedError);
    const term = { identity: "replica-a", transitions: 1, acquiredAt: 1_700_000_000_000 };
    fence.open(term);
    const op = fence.admit("up of stack ns.a");
    expect(op.term).toEqual(term);
    const engine = startEngine(fence.env(), dir);
    expect(await fence.close()).toEqual([]);
    expect(op.signal.aborted).toBe(true);
    expect(op.signal.reason).toBeInstanceOf(FencedError);
    for (const pid of engine) expect(alive(pid)).toBe(false);
    expect(() => fence.admit("up of stack ns.a")).toThrow(/does not lead/);
    rmSync(dir, { recursive: true, force: true });
  });

  it("EngineFence: settled() waits out the last close()'s kill; the next term's engines live", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kok-fence-"));
    const fence = new EngineFence({ identity: "replica-a" });
    fence.open({ identity: "replica-a", transitions: 1, acquiredAt: 1_700_000_000_000 });
    const engine = startEngine(fence.env(), dir);
    const closing = fence.close();
    await fence.settled();
    for (const pid of engine) expect(alive(pid)).toBe(false);
    expect(await closing).toEqual([]);
    fence.open({ identity: "replica-a", transitions: 3, acquiredAt: 1_700_000_100_000 });
    const next = startEngine(fence.env(), dir);
    await fence.settled();
    for (const pid of next) expect(alive(pid)).toBe(true);
    rmSync(dir, { recursive: true, force: true });
  });

  it("EngineFence: a replica that wakes up past its last renewal's deadline starts nothing new", async () => {
    const clock = new FakeClock();
    const fence = new EngineFence({ identity: "replica-a", clock });
    fence.open({ identity: "replica-a", transitions: 0, acquiredAt: clock.now() });
    fence.renewed(clock.now() + 14_000);
    expect(() => fence.admit("up of stack ns.a").done()).not.toThrow();
    expect(fence.isExpired()).toBe(false);
    // Frozen past the deadline: the elector has not noticed yet, the fence has (and the
    // watchdog, armed for the same moment, may have killed engines: their records stay).
    await clock.advance(14_000);
    expect(fence.isExpired()).toBe(true);
    expect(() => fence.admit("up of stack ns.a")).toThrow(FencedError);
    fence.renewed(clock.now() + 14_000);
    expect(fence.isExpired()).toBe(false);
    expect(() => fence.admit("up of stack ns.a").done()).not.toThrow();
  });

  it("FenceWatchdog: kills the engines when not re-armed in time and when told to; a clean stop kills nothing", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kok-fence-"));
    const fence = new EngineFence({ identity: "replica-a" });
    const watchdog = new FenceWatchdog(fence.marker);
    // Armed far ahead, then re-armed for now: only the second arming counts.
    watchdog.arm(3_600_000);
    const first = startEngine(fence.env(), dir);
    watchdog.arm(0);
    await vi.waitFor(() => expect(first.filter(alive)).toEqual([]), { timeout: 20_000, interval: 50 });
    // Its kill may still scan for stragglers: the next term waits until it is over (found in CI,
    // where an engine started right after the last one died was killed before it could begin).
    await watchdog.settled();
    // It lives on for the next term; told to kill, it kills again.
    const second = startEngine(fence.env(), dir);
    watchdog.kill();
    await watchdog.settled();
    expect(second.filter(alive)).toEqual([]);
    // Re-armed far ahead, the next term's engines live; a clean stop kills nothing.
    watchdog.arm(3_600_000);
    await watchdog.settled();
    const third = startEngine(fence.env(), dir);
    await watchdog.stop();
    for (const pid of third) expect(alive(pid)).toBe(true);
    // Stopped, it has nothing left to wait for.
    await watchdog.settled();
    rmSync(dir, { recursive: true, force: true });
    // Its waits allow 20 s each (processes to scan and kill on a busy machine): so does the test.
  }, 60_000);
});

describe("fencing: an operator that dies", () => {
  it("its watchdog kills its engines when the operator is SIGKILLed (its pipe closes)", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kok-fence-"));
    const marker = `test-${process.pid}-${Math.random()}`;
    // A stand-in operator: it starts the watchdog as FenceWatchdog does, then waits to be killed.
    const operatorSource = `const { spawn } = require("node:child_process");
      const w = spawn(process.execPath, ["-e", process.env.WATCHDOG, process.argv[1]], { detached: true, stdio: ["pipe", "ignore", "ignore"] });
      console.log(w.pid); setInterval(() => {}, 1000);`;
    const operator = spawn(process.execPath, ["-e", operatorSource, marker], { env: { ...process.env, WATCHDOG: WATCHDOG_SOURCE }, stdio: ["ignore", "pipe", "ignore"] });
    const watchdogPid = Number(await new Promise<string>((resolve) => operator.stdout.once("data", (d: Buffer) => resolve(d.toString()))));
    started.push(watchdogPid);
    const engine = startEngine({ [ENGINE_OWNER_VARIABLE]: marker }, dir);
    operator.kill("SIGKILL");
    await vi.waitFor(() => expect(engine.filter(alive)).toEqual([]), { timeout: 20_000, interval: 50 });
    await vi.waitFor(() => expect(alive(watchdogPid)).toBe(false), { timeout: 20_000, interval: 50 });
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);
});

describe("fencing: holder records and the lock decision", () => {
  it("keeps records beside a file backend's stacks, and none for other backends", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kok-holders-"));
    const records = holderRecordsFor(`file://${dir}`)!;
    const record = { identity: "replica-a", acquiredAt: 1, operation: "up", pid: 42, startedAt: "2026-12-05T00:00:00.000Z" };
    expect(await records.read("kube-on-kube-clusters", "ns.a")).toBeUndefined();
    expect(await records.held("kube-on-kube-clusters")).toEqual(new Map());
    await records.write("kube-on-kube-clusters", "ns.a", record);
    expect(await records.read("kube-on-kube-clusters", "ns.a")).toEqual(record);
    expect(await records.held("kube-on-kube-clusters")).toEqual(new Map([["ns.a", record]]));
    expect(existsSync(path.join(dir, ".kube-on-kube", "holders", "kube-on-kube-clusters", "ns.a.json"))).toBe(true);
    // A file that is not a whole record (edited, truncated) proves nothing: no record.
    writeFileSync(path.join(dir, ".kube-on-kube", "holders", "kube-on-kube-clusters", "ns.b.json"), '{"identity":"replica-a","acquiredAt":');
    expect(await records.read("kube-on-kube-clusters", "ns.b")).toBeUndefined();
    expect([...(await records.held("kube-on-kube-clusters")).keys()]).toEqual(["ns.a"]);
    await records.remove("kube-on-kube-clusters", "ns.a");
    expect(await records.read("kube-on-kube-clusters", "ns.a")).toBeUndefined();
    expect(holderRecordsFor("s3://bucket/state")).toBeUndefined();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads only whole records: every field present and typed, else none", () => {
    const record = { identity: "replica-a", acquiredAt: 1, operation: "up", pid: 42, startedAt: "2026-12-05T00:00:00.000Z" };
    expect(parseHolderRecord(JSON.stringify(record))).toEqual(record);
    expect(parseHolderRecord(JSON.stringify({ ...record, extra: "x" }))).toEqual(record);
    expect(parseHolderRecord(undefined)).toBeUndefined();
    expect(parseHolderRecord("not json")).toBeUndefined();
    expect(parseHolderRecord("null")).toBeUndefined();
    expect(parseHolderRecord(JSON.stringify({ ...record, identity: "" }))).toBeUndefined();
    expect(parseHolderRecord(JSON.stringify({ ...record, acquiredAt: "1" }))).toBeUndefined();
    for (const field of Object.keys(record)) {
      const partial: Record<string, unknown> = { ...record };
      delete partial[field];
      expect(parseHolderRecord(JSON.stringify(partial)), field).toBeUndefined();
    }
  });

  it("clears only a lock recorded by another term; never the current term's; never one without a record", () => {
    const current = { identity: "replica-b", transitions: 3, acquiredAt: 2_000 };
    const record = (identity: string, acquiredAt: number) => ({ identity, acquiredAt, operation: "up", pid: 1, startedAt: "2026-12-05T00:00:00.000Z" });
    expect(decideLock(undefined, current).action).toBe("keep");
    expect(decideLock(record("replica-b", 2_000), current).action).toBe("live");
    // The previous leader's term, and this replica's own earlier (lost) term: both ended.
    expect(decideLock(record("replica-a", 1_000), current)).toMatchObject({ action: "clear", reason: expect.stringContaining("replica-a") });
    expect(decideLock(record("replica-b", 1_500), current).action).toBe("clear");
  });
});
