/**
 * The real Pulumi CLI of an `up` SIGKILLed from outside (an OOM kill, a `kill -9`) while the
 * replica's term is live: the runner kills the operation's leftover provider, cancels the lock the
 * dead CLI left, and the next `up` of the term runs (killed-engine.ts). Without that, the lock
 * stays and every later operation fails as a concurrent update.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as tls from "@pulumi/tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineFence, engineProcesses } from "../../src/runtime/fencing";
import { StackOperationError, StackRunner } from "../../src/runtime/stack-runner";
import type { KilledEngineCleanup } from "../../src/runtime/killed-engine";
import { engineEnv, TOOLCHAIN_DIR } from "../support/engine";

/** The parent pid of a process, from /proc/<pid>/stat (the command name may hold ") "). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/** The Pulumi CLI among the marked processes: the one this test process started (its language host and providers are the CLI's children). */
function cliOf(marker: string): number {
  const clis = engineProcesses(marker).filter((pid) => parentOf(pid) === process.pid);
  if (clis.length !== 1) throw new Error(`expected one Pulumi CLI child of this process with the marker, found ${clis.length}`);
  return clis[0]!;
}

/**
 * An `up` that creates a key (its provider, pulumi-resource-tls, is then running and marked), tells
 * the test, and waits inside its program with the stack locked until let go.
 */
function heldUp() {
  let entered!: () => void;
  const inProgram = new Promise<void>((resolve) => (entered = resolve));
  let letGo!: () => void;
  const held = new Promise<void>((resolve) => (letGo = resolve));
  const program = async () => {
    const key = new tls.PrivateKey("key", { algorithm: "ED25519" });
    await new Promise<void>((resolve) => key.id.apply(() => resolve()));
    entered();
    await held;
    return {};
  };
  return { program, inProgram, letGo };
}

const keyOnly = async () => {
  new tls.PrivateKey("key", { algorithm: "ED25519" });
  return {};
};

describe("an engine killed from outside within a live term", () => {
  let root: string;
  let backendUrl: string;
  const project = "kok-killed-engine";
  const term = { identity: "replica-k", transitions: 0, acquiredAt: 5_000 };
  const locksOf = (stack: string) => path.join(root, "state", ".pulumi", "locks", "organization", project, stack);
  const lockFiles = (stack: string) => (existsSync(locksOf(stack)) ? readdirSync(locksOf(stack)).filter((f) => f.endsWith(".json")) : []);

  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), "kok-killed-engine-"));
    process.env.PATH = engineEnv().PATH;
    mkdirSync(path.join(root, "state"));
    backendUrl = `file://${path.join(root, "state")}`;
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("clears the lock its SIGKILLed CLI left and kills that operation's provider; the next up of the term runs", async () => {
    const fence = new EngineFence({ identity: "replica-k" });
    fence.open(term);
    const reported: KilledEngineCleanup[] = [];
    const runner = new StackRunner({ projectName: project, backendUrl, workRoot: path.join(root, "work"), env: engineEnv(), fence, onKilledEngine: (c) => reported.push(c) });
    const { program, inProgram, letGo } = heldUp();
    const running = runner.up("fleet-k", program).catch((e: unknown) => e);
    await inProgram;
    expect(lockFiles("fleet-k")).toHaveLength(1);
    const marked = engineProcesses(fence.marker);
    // The CLI and at least its tls provider.
    expect(marked.length).toBeGreaterThan(1);
    process.kill(cliOf(fence.marker), "SIGKILL");

    const error = await running;
    letGo();
    expect(error).toBeInstanceOf(StackOperationError);
    expect((error as Error).message).toMatch(/^stack fleet-k: up failed: .*the engine was killed \(SIGKILL\) while this replica led; its stack lock was cleared/);
    expect(reported).toEqual([{ stack: "fleet-k", operation: "up", cause: "SIGKILL", lockCleared: true }]);
    // The provider the dead CLI left behind was killed with it, not left running.
    expect(engineProcesses(fence.marker)).toEqual([]);
    expect(lockFiles("fleet-k")).toEqual([]);
    expect(await runner.holderRecord("fleet-k")).toBeUndefined();
    expect(fence.runningCount()).toBe(0);

    // Same term, same runner: the stack is usable again.
    await expect(runner.up("fleet-k", keyOnly)).resolves.toMatchObject({ changes: { same: expect.any(Number) } });
    await runner.destroyAndRemove("fleet-k", keyOnly);
  });

  it("keeps the lock and its holder record when the cancel fails, and clears it before the next operation of the term", async () => {
    // The real CLI behind a wrapper that refuses `pulumi cancel` while a flag file exists.
    const wrapper = path.join(root, "wrapper");
    mkdirSync(path.join(wrapper, "bin"), { recursive: true });
    const refuse = path.join(root, "refuse-cancel");
    const cli = path.join(TOOLCHAIN_DIR, "bin", "pulumi");
    writeFileSync(
      path.join(wrapper, "bin", "pulumi"),
      `#!/bin/sh\nif [ "$1" = cancel ] && [ -e ${JSON.stringify(refuse)} ]; then echo "error: cancel refused by the test" >&2; exit 1; fi\nexec ${JSON.stringify(cli)} "$@"\n`,
    );
    chmodSync(path.join(wrapper, "bin", "pulumi"), 0o755);
    const env = engineEnv();
    const fence = new EngineFence({ identity: "replica-k" });
    fence.open(term);
    const reported: KilledEngineCleanup[] = [];
    const runner = new StackRunner({
      projectName: project,
      backendUrl,
      workRoot: path.join(root, "work-refused"),
      env: { ...env, PATH: `${path.join(wrapper, "bin")}${path.delimiter}${env.PATH}` },
      fence,
      onKilledEngine: (c) => reported.push(c),
    });
    await runner.up("fleet-r", keyOnly);

    writeFileSync(refuse, "");
    const { program, inProgram, letGo } = heldUp();
    const running = runner.up("fleet-r", program).catch((e: unknown) => e);
    await inProgram;
    process.kill(cliOf(fence.marker), "SIGKILL");
    const error = await running;
    letGo();
    expect((error as Error).message).toMatch(/the engine was killed \(SIGKILL\) while this replica led; its stack lock could not be cleared \(pulumi cancel failed: cancel refused by the test\)/);
    expect(reported).toEqual([{ stack: "fleet-r", operation: "up", cause: "SIGKILL", lockCleared: false, reason: "pulumi cancel failed: cancel refused by the test" }]);
    expect(engineProcesses(fence.marker)).toEqual([]);
    // Both stay: a later leader could clear the lock on the record's word.
    expect(lockFiles("fleet-r")).toHaveLength(1);
    const record = await runner.holderRecord("fleet-r");
    expect(record).toMatchObject({ identity: "replica-k", acquiredAt: 5_000, operation: "up" });

    // The next operation of the term tries first; while the cancel fails it does not start.
    await expect(runner.preview("fleet-r", keyOnly)).rejects.toMatchObject({ kind: "concurrent-update", message: expect.stringMatching(/preview failed: not started: the engine was killed/) });
    expect(await runner.holderRecord("fleet-r")).toEqual(record);
    expect(lockFiles("fleet-r")).toHaveLength(1);

    rmSync(refuse);
    await expect(runner.up("fleet-r", keyOnly)).resolves.toMatchObject({ changes: { same: expect.any(Number) } });
    expect(reported.at(-1)).toEqual({ stack: "fleet-r", operation: "up", cause: "SIGKILL", lockCleared: true });
    expect(lockFiles("fleet-r")).toEqual([]);
    expect(await runner.holderRecord("fleet-r")).toBeUndefined();
    await runner.destroyAndRemove("fleet-r", keyOnly);
  });
});
