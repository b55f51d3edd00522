import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { LocalWorkspace, PulumiCommand } from "@pulumi/pulumi/automation";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { processesWith } from "../../src/runtime/fencing";
import {
  clearKilledEngineLock,
  decideKilledEngine,
  ENGINE_OPERATION_VARIABLE,
  engineKillSignal,
  killedEngineLogLine,
  KilledEngines,
  killedEngineMessage,
  sameTerm,
  type KilledEngineCleanup,
} from "../../src/runtime/killed-engine";

/**
 * A stand-in `pulumi` run through the real Automation API (execa, `CommandError`): it answers
 * `version`, and otherwise ends as FAKE_END says: killed by a signal, exit 137 from a wrapper
 * shell, a plain failure, or the CLI's locked-stack message.
 */
const FAKE_CLI = `#!/bin/sh
if [ "$1" = version ]; then echo 3.276.0; exit 0; fi
case "$FAKE_END" in
  SIGKILL) kill -9 $$ ;;
  SIGTERM) kill -TERM $$ ;;
  wrapped-kill) sh -c 'kill -9 $$'; exit $? ;;
  locked) echo "error: the stack is currently locked by 1 lock(s)." >&2; exit 255 ;;
  *) echo "error: update failed" >&2; exit 255 ;;
esac
`;

let root: string;
let pulumiCommand: PulumiCommand;

beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), "kok-killed-engine-"));
  mkdirSync(path.join(root, "cli", "bin"), { recursive: true });
  writeFileSync(path.join(root, "cli", "bin", "pulumi"), FAKE_CLI);
  chmodSync(path.join(root, "cli", "bin", "pulumi"), 0o755);
  pulumiCommand = await PulumiCommand.get({ root: path.join(root, "cli"), skipVersionCheck: true });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The error the Automation API rejects with when its CLI ends as `end` says. */
async function automationError(end: string): Promise<unknown> {
  const workDir = mkdtempSync(path.join(root, "ws-"));
  const ws = await LocalWorkspace.create({ pulumiCommand, workDir, envVars: { FAKE_END: end }, projectSettings: { name: "p", runtime: "nodejs" } });
  return ws.whoAmI().then(
    () => new Error("the fake CLI succeeded"),
    (error: unknown) => error,
  );
}

describe("engineKillSignal: how the Automation API reports a killed CLI", () => {
  it("names the signal of a CLI killed by one, and SIGKILL for exit 137 from a wrapper", async () => {
    expect(engineKillSignal(await automationError("SIGKILL"))).toBe("SIGKILL");
    expect(engineKillSignal(await automationError("SIGTERM"))).toBe("SIGTERM");
    expect(engineKillSignal(await automationError("wrapped-kill"))).toBe("SIGKILL");
  });

  it("says nothing of a CLI that ended by itself, nor of other errors", async () => {
    expect(engineKillSignal(await automationError("failed"))).toBeUndefined();
    const locked = await automationError("locked");
    expect((locked as Error).name).toBe("ConcurrentUpdateError");
    expect(engineKillSignal(locked)).toBeUndefined();
    expect(engineKillSignal(new Error("boom"))).toBeUndefined();
    expect(engineKillSignal(undefined)).toBeUndefined();
    expect(engineKillSignal("SIGKILL")).toBeUndefined();
  });
});

describe("decideKilledEngine", () => {
  const killed = { commandResult: { code: -2, err: { signal: "SIGKILL" } } };

  it("clears the lock of a killed engine within a live term only", () => {
    expect(decideKilledEngine({ error: killed, operation: "up", aborted: false, termLive: true })).toEqual({ action: "clear", cause: "SIGKILL" });
    expect(decideKilledEngine({ error: killed, operation: "destroy", aborted: false, termLive: true })).toMatchObject({ action: "clear" });
  });

  it("leaves the lock to the next leader when the fence killed the engine or the term's deadline passed", () => {
    expect(decideKilledEngine({ error: killed, operation: "up", aborted: true, termLive: false })).toMatchObject({ action: "none", reason: expect.stringContaining("by the fence") });
    expect(decideKilledEngine({ error: killed, operation: "up", aborted: false, termLive: false })).toMatchObject({ action: "none", reason: expect.stringContaining("renewal deadline") });
  });

  it("does nothing for an engine that ended by itself, nor for an export", () => {
    expect(decideKilledEngine({ error: new Error("update failed"), operation: "up", aborted: false, termLive: true })).toMatchObject({ action: "none", reason: expect.stringContaining("ended by itself") });
    expect(decideKilledEngine({ error: killed, operation: "export", aborted: false, termLive: true })).toMatchObject({ action: "none", reason: "an export takes no lock" });
  });
});

const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
});

/** A process marked as one operation's (a provider its CLI left behind). */
function leftover(mark: string): number {
  const pidFile = path.join(root, `pid-${Math.random()}`);
  // The shell exits at once: the sleep is re-parented to init, as an orphaned provider is.
  spawn("sh", ["-c", `sleep 600 & echo $! > ${pidFile}`], { env: { ...process.env, [ENGINE_OPERATION_VARIABLE]: mark }, stdio: "ignore" }).unref();
  for (let i = 0; i < 500 && !(existsSync(pidFile) && readFileSync(pidFile, "utf8").endsWith("\n")); i++) spawnSync("sleep", ["0.01"]);
  const pid = Number(readFileSync(pidFile, "utf8"));
  started.push(pid);
  return pid;
}

describe("clearKilledEngineLock", () => {
  const base = { stack: "ns.a", operation: "up" as const, cause: "SIGKILL", summarize: (e: unknown) => (e as Error).message };

  it("kills the operation's leftovers before it cancels the lock; other operations' processes live on", async () => {
    const mark = `op-${Math.random()}`;
    leftover(mark);
    const other = leftover(`${mark}-other`);
    let leftAtCancel: number[] | undefined;
    const cleanup = await clearKilledEngineLock({
      ...base,
      operationMark: mark,
      cancel: async () => {
        leftAtCancel = processesWith(ENGINE_OPERATION_VARIABLE, mark);
      },
    });
    expect(cleanup).toEqual({ stack: "ns.a", operation: "up", cause: "SIGKILL", lockCleared: true });
    expect(leftAtCancel).toEqual([]);
    expect(processesWith(ENGINE_OPERATION_VARIABLE, `${mark}-other`)).toEqual([other]);
  });

  it("reports a cancel that fails, and the lock as not cleared", async () => {
    const cleanup = await clearKilledEngineLock({
      ...base,
      operationMark: `op-${Math.random()}`,
      cancel: async () => {
        throw new Error("backend unreachable");
      },
    });
    expect(cleanup).toEqual({ stack: "ns.a", operation: "up", cause: "SIGKILL", lockCleared: false, reason: "pulumi cancel failed: backend unreachable" });
    expect(killedEngineMessage(cleanup)).toBe(
      "the engine was killed (SIGKILL) while this replica led; its stack lock could not be cleared (pulumi cancel failed: backend unreachable): the lock and its holder record stay, and the next operation on the stack in this term retries first",
    );
    expect(killedEngineLogLine(cleanup)).toEqual({ level: "error", msg: "could not clear the stack lock of a killed engine", stack: "ns.a", operation: "up", signal: "SIGKILL", error: "pulumi cancel failed: backend unreachable" });
  });
});

describe("KilledEngines: after a failed operation, and before the next one on its stack", () => {
  const term = { identity: "replica-a", transitions: 0, acquiredAt: 1_000 };
  const killed = { commandResult: { code: -2, err: { signal: "SIGKILL" } } };

  /** A KilledEngines whose `pulumi cancel` fails while `failing` is true; it counts the cancels. */
  function killedEngines() {
    const state = { failing: true, cancels: [] as string[], reported: [] as KilledEngineCleanup[] };
    const engines = new KilledEngines({
      cancel: async (stack, mark) => {
        state.cancels.push(`${stack} ${mark}`);
        if (state.failing) throw new Error("backend unreachable");
      },
      summarize: (e) => (e as Error).message,
      onCleanup: (c) => state.reported.push(c),
    });
    return { engines, state };
  }
  const failure = (error: unknown, over: Partial<{ aborted: boolean; termLive: boolean }> = {}) => ({ error, aborted: false, termLive: true, term, operationMark: `op-${Math.random()}`, ...over });

  it("clears a killed engine's lock at once, and has nothing left for the next operation", async () => {
    const { engines, state } = killedEngines();
    state.failing = false;
    expect(await engines.afterFailure("ns.a", "up", failure(killed))).toEqual({ stack: "ns.a", operation: "up", cause: "SIGKILL", lockCleared: true });
    expect(await engines.beforeOperation("ns.a", term)).toBeUndefined();
    expect(state.cancels).toHaveLength(1);
    expect(state.reported).toHaveLength(1);
  });

  it("retries a lock it could not clear before each next operation of the term, until it is cleared", async () => {
    const { engines, state } = killedEngines();
    const first = failure(killed);
    expect(await engines.afterFailure("ns.a", "destroy", first)).toMatchObject({ lockCleared: false });
    expect(await engines.beforeOperation("ns.b", term)).toBeUndefined();
    expect(await engines.beforeOperation("ns.a", { ...term })).toMatchObject({ stack: "ns.a", operation: "destroy", lockCleared: false, reason: "pulumi cancel failed: backend unreachable" });
    state.failing = false;
    expect(await engines.beforeOperation("ns.a", term)).toBeUndefined();
    expect(await engines.beforeOperation("ns.a", term)).toBeUndefined();
    // The same operation's mark each time (its leftovers are what is killed first).
    expect(state.cancels).toEqual([`ns.a ${first.operationMark}`, `ns.a ${first.operationMark}`, `ns.a ${first.operationMark}`]);
    expect(state.reported.map((c) => c.lockCleared)).toEqual([false, false, true]);
  });

  it("forgets a lock it could not clear once another term runs: that term's recovery decides on the kept record", async () => {
    const { engines, state } = killedEngines();
    await engines.afterFailure("ns.a", "up", failure(killed));
    state.failing = false;
    expect(await engines.beforeOperation("ns.a", { ...term, acquiredAt: 2_000 })).toBeUndefined();
    expect(await engines.beforeOperation("ns.a", term)).toBeUndefined();
    expect(state.cancels).toHaveLength(1);
  });

  it("does nothing for an engine that ended by itself, the fence's kill, a term past its deadline, an export", async () => {
    const { engines, state } = killedEngines();
    expect(await engines.afterFailure("ns.a", "up", failure(new Error("update failed")))).toBeUndefined();
    expect(await engines.afterFailure("ns.a", "up", failure(killed, { aborted: true, termLive: false }))).toBeUndefined();
    expect(await engines.afterFailure("ns.a", "up", failure(killed, { termLive: false }))).toBeUndefined();
    expect(await engines.afterFailure("ns.a", "export", failure(killed))).toBeUndefined();
    expect(await engines.beforeOperation("ns.a", term)).toBeUndefined();
    expect(state.cancels).toEqual([]);
  });

  it("sameTerm: identity and acquire time; no term equals only no term", () => {
    expect(sameTerm(term, { ...term, transitions: 3 })).toBe(true);
    expect(sameTerm(term, { ...term, identity: "replica-b" })).toBe(false);
    expect(sameTerm(undefined, undefined)).toBe(true);
    expect(sameTerm(term, undefined)).toBe(false);
  });
});
