/**
 * The operator's state backends with the real engine (StackRunner, the tls provider):
 *
 * - s3:// against the dev object store (versitygw started by the dev services' own code, in a
 *   throwaway state directory): a stack is created, its state object lands in the bucket under the
 *   operator's prefix, it is destroyed and removed; the credentials reach the engine through its
 *   environment only and appear in nothing the operator gets back, nor in any stored object; a
 *   wrong secret fails the operation with a message that does not carry it.
 * - file:// history pruning after real updates: the newest N updates' history and backups stay,
 *   the stack's state is untouched and keeps working, and a stack whose update is running is left
 *   alone until it ends.
 *
 * Needs the toolchain (pulumi, the tls plugin, versitygw); fails, never skips, without it.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as tls from "@pulumi/tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfig, type DevConfig } from "../../src/dev/config";
import { OBJECT_STORE_BUCKET, objectStoreBackendUrl, objectStoreTarget, readObjectStoreCredentials, s3Request } from "../../src/dev/object-store";
import { startServices, stopServices } from "../../src/dev/services";
import { secretValuesOfEnvironment } from "../../src/runtime/known-secrets";
import { redact } from "../../src/runtime/redact";
import { checkStateBackend } from "../../src/runtime/state-backend";
import { pruneStateHistory } from "../../src/runtime/state-history";
import { StackOperationError, StackRunner, type OperationProgress } from "../../src/runtime/stack-runner";
import { freePortBase } from "../support/dev-cluster";
import { engineEnv } from "../support/engine";

const PROJECT = "kok-state-backends";

/** A small real stack: one key from the tls provider (a secret in the state), and an output that changes per `generation`. */
const keyProgram = (generation: number) => async () => {
  const key = new tls.PrivateKey("key", { algorithm: "ED25519" });
  return { generation, publicKey: key.publicKeyOpenssh, privateKey: key.privateKeyOpenssh };
};

async function listKeys(config: DevConfig, prefix: string): Promise<string[]> {
  const res = await s3Request(objectStoreTarget(config), { method: "GET", path: `/${OBJECT_STORE_BUCKET}`, query: { "list-type": "2", prefix } });
  expect(res.status).toBe(200);
  return [...res.body.toString("utf8").matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]);
}

describe("state in the dev object store (s3://)", () => {
  let root: string;
  let config: DevConfig;
  let env: Record<string, string>;
  let backendUrl: string;
  const prefix = `operator-${process.pid}`;

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), "kok-s3-state-"));
    config = defaultConfig(path.join(root, "dev"), await freePortBase());
    env = engineEnv();
    process.env.PATH = env.PATH;
    const started = Date.now();
    await startServices(config, () => undefined, () => "");
    console.log(`object store up in ${Date.now() - started} ms`);
    const { accessKeyId, secretAccessKey } = readObjectStoreCredentials(config);
    // Only through the engine's environment: the URL carries none.
    env = { ...env, AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey };
    backendUrl = objectStoreBackendUrl(config, prefix);
  }, 120_000);

  afterAll(async () => {
    if (config) await stopServices(config, () => undefined);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("passes the operator's start-up check of --backend-url", () => {
    expect(backendUrl).not.toContain(env.AWS_SECRET_ACCESS_KEY);
    expect(checkStateBackend(backendUrl, env)).toMatchObject({ problems: [], notes: [], backend: { kind: "s3", bucket: OBJECT_STORE_BUCKET, prefix } });
  });

  it("creates a stack whose state lands in the bucket, then destroys and removes it; no credential anywhere", async () => {
    const runner = new StackRunner({ projectName: PROJECT, backendUrl, workRoot: path.join(root, "work"), env });
    const progress: OperationProgress[] = [];
    let started = Date.now();
    const result = await runner.up("s3-a", keyProgram(1), (p) => progress.push(p));
    console.log(`s3 backend: up (create) ${Date.now() - started} ms`);
    expect(result.changes.create).toBeGreaterThanOrEqual(1);
    expect(result.outputs.privateKey.secret).toBe(true);

    const stateKey = `${prefix}/.pulumi/stacks/${PROJECT}/s3-a.json`;
    expect(await listKeys(config, `${prefix}/`)).toContain(stateKey);
    const state = await s3Request(objectStoreTarget(config), { method: "GET", path: `/${OBJECT_STORE_BUCKET}/${stateKey}` });
    expect(state.status).toBe(200);
    const stored = state.body.toString("utf8");
    expect(stored).toContain("tls:index/privateKey:PrivateKey");
    // The key is encrypted with the passphrase; the object store's credentials are not in it at all.
    expect(stored).not.toContain("PRIVATE KEY");
    for (const credential of [env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY]) {
      expect(stored).not.toContain(credential);
      expect(JSON.stringify({ progress, result })).not.toContain(credential);
    }

    started = Date.now();
    expect(await runner.up("s3-a", keyProgram(2))).toMatchObject({ changes: { same: expect.any(Number) } });
    console.log(`s3 backend: up (no resource change) ${Date.now() - started} ms`);
    expect(await runner.listStacks(async () => ({}))).toContain("s3-a");
    // Nor in any object the engine wrote: the history records which variables were set, never their values.
    const keys = await listKeys(config, `${prefix}/`);
    expect(keys.some((k) => k.startsWith(`${prefix}/.pulumi/history/${PROJECT}/s3-a/`))).toBe(true);
    for (const key of keys) {
      const object = (await s3Request(objectStoreTarget(config), { method: "GET", path: `/${OBJECT_STORE_BUCKET}/${key}` })).body.toString("utf8");
      for (const credential of [env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY]) expect(object, key).not.toContain(credential);
    }

    started = Date.now();
    await runner.destroyAndRemove("s3-a", keyProgram(2));
    console.log(`s3 backend: destroy and remove ${Date.now() - started} ms`);
    expect(await listKeys(config, `${prefix}/.pulumi/stacks/`)).not.toContain(stateKey);
  }, 240_000);

  it("a wrong secret fails the operation with a message that names neither credential once redacted, nor the secret at all", async () => {
    const wrong: Record<string, string> = { ...env, AWS_SECRET_ACCESS_KEY: "a-wrong-secret-that-the-store-refuses-0001" };
    const runner = new StackRunner({ projectName: PROJECT, backendUrl, workRoot: path.join(root, "work-wrong"), env: wrong });
    const error = await runner.up("s3-b", keyProgram(1)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StackOperationError);
    const message = (error as StackOperationError).message;
    // What the engine said is about the refused request...
    expect(message).toMatch(/SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied|403/);
    // ...and never carries the secret; what the operator writes passes redact() with its environment's values.
    expect(message).not.toContain(wrong.AWS_SECRET_ACCESS_KEY);
    const written = redact(message, secretValuesOfEnvironment(wrong));
    expect(written).not.toContain(wrong.AWS_ACCESS_KEY_ID);
    expect(written).not.toContain(wrong.AWS_SECRET_ACCESS_KEY);
    console.log(`wrong secret, as the operator writes it: ${written.slice(0, 300)}`);
    expect(await listKeys(config, `${prefix}/.pulumi/stacks/${PROJECT}/s3-b`)).toEqual([]);
  }, 120_000);
});

/** The update times of a stack's history (`<stack>-<ns>.history.json`), oldest first. */
function historyTimes(backendDir: string, stack: string): string[] {
  const dir = path.join(backendDir, ".pulumi", "history", PROJECT, stack);
  return readdirSync(dir)
    .map((f) => /-(\d+)\.history\.json$/.exec(f)?.[1])
    .filter((t): t is string => t !== undefined)
    .sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
}

function backupCount(backendDir: string, stack: string): number {
  return readdirSync(path.join(backendDir, ".pulumi", "backups", PROJECT, stack)).filter((f) => f.endsWith(".json")).length;
}

describe("file:// history pruning after real updates", () => {
  let root: string;
  let backendDir: string;
  let runner: StackRunner;

  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), "kok-history-"));
    backendDir = path.join(root, "state");
    mkdirSync(backendDir);
    const env = engineEnv();
    process.env.PATH = env.PATH;
    runner = new StackRunner({ projectName: PROJECT, backendUrl: `file://${backendDir}`, workRoot: path.join(root, "work"), env });
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("keeps the newest N updates' history and backups; the state is untouched and the next update works", async () => {
    for (let generation = 1; generation <= 5; generation++) await runner.up("kept", keyProgram(generation));
    const before = historyTimes(backendDir, "kept");
    expect(before).toHaveLength(5);
    expect(backupCount(backendDir, "kept")).toBeGreaterThan(2);
    const stateFile = path.join(backendDir, ".pulumi", "stacks", PROJECT, "kept.json");
    const state = readFileSync(stateFile, "utf8");

    const result = pruneStateHistory(backendDir, 2);
    expect(result.locked).toEqual([]);
    expect(result.pruned).toEqual([{ stack: `${PROJECT}/kept`, removedFiles: expect.any(Number), removedBytes: expect.any(Number) }]);
    expect(historyTimes(backendDir, "kept")).toEqual(before.slice(-2));
    expect(backupCount(backendDir, "kept")).toBe(2);
    // Every file pruned went with its sidecar: no .attrs is left without its file.
    const historyDir = path.join(backendDir, ".pulumi", "history", PROJECT, "kept");
    for (const f of readdirSync(historyDir).filter((f) => f.endsWith(".attrs"))) expect(existsSync(path.join(historyDir, f.replace(/\.attrs$/, "")))).toBe(true);
    expect(readFileSync(stateFile, "utf8")).toBe(state);
    console.log(`pruned ${result.pruned[0].removedFiles} files, ${result.pruned[0].removedBytes} bytes`);

    // The engine reads the pruned backend as before; a second sweep keeps the newest two again.
    expect(await runner.preview("kept", keyProgram(5))).toEqual({ same: expect.any(Number) });
    await runner.up("kept", keyProgram(6));
    const after = historyTimes(backendDir, "kept");
    expect(after).toHaveLength(3);
    expect(pruneStateHistory(backendDir, 2).pruned).toHaveLength(1);
    expect(historyTimes(backendDir, "kept")).toEqual(after.slice(-2));
    expect(pruneStateHistory(backendDir, 2).pruned).toEqual([]);
  }, 240_000);

  it("leaves a stack alone while an update holds its lock, and prunes it once the update ended", async () => {
    for (let generation = 1; generation <= 3; generation++) await runner.up("busy", keyProgram(generation));
    const lockDir = path.join(backendDir, ".pulumi", "locks", "organization", PROJECT, "busy");
    let ended = false;
    const running = runner.up("busy", keyProgram(4)).finally(() => (ended = true));
    let sweptWhileLocked: ReturnType<typeof pruneStateHistory> | undefined;
    while (!sweptWhileLocked) {
      if (ended) throw new Error(`the update ended before its lock was seen in ${lockDir}`);
      if (existsSync(lockDir) && readdirSync(lockDir).some((f) => f.endsWith(".json"))) sweptWhileLocked = pruneStateHistory(backendDir, 1);
      else await new Promise((r) => setTimeout(r, 20));
    }
    await running;
    expect(sweptWhileLocked.locked).toEqual([`${PROJECT}/busy`]);
    expect(sweptWhileLocked.pruned.map((p) => p.stack)).not.toContain(`${PROJECT}/busy`);
    expect(historyTimes(backendDir, "busy")).toHaveLength(4);

    const swept = pruneStateHistory(backendDir, 1);
    expect(swept.locked).toEqual([]);
    expect(swept.pruned.map((p) => p.stack)).toContain(`${PROJECT}/busy`);
    expect(historyTimes(backendDir, "busy")).toHaveLength(1);
  }, 240_000);
});
