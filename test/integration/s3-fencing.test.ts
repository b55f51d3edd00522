/**
 * Fencing and per-stack recovery with an object-store backend, all real: a kube-apiserver + etcd
 * (test/support/apiserver.ts) for the holder records' Lease, the dev object store (versitygw,
 * started by the dev services' own code) as the `s3://` backend, and the Pulumi engine.
 *
 * - The holder records' Lease: records written, read, listed and removed; writers racing on the
 *   one Lease all land; a record edited by hand, or copied under another stack's key, proves
 *   nothing; a replica whose fence is closed writes none.
 * - A lost term on s3: its engine killed mid-`up` keeps its record in the Lease and its lock in the
 *   bucket; the next term clears that lock (and only a lock it has a record for), and updates.
 * - A corrupt checkpoint in the bucket: its stack's recovery reports it without failing, its
 *   updates fail as `state-unreadable`; another stack of the same backend recovers and updates.
 *   A Machine whose stack it is says `Ready=False/StackStateUnreadable` with the engine's words.
 * - Orphan holder records: the record of a stack the bucket no longer has is pruned from the
 *   Lease; that of a stack it still has is kept.
 *
 * Needs the toolchain (kube-apiserver, etcd, pulumi, the tls plugin, versitygw); fails, never skips, without it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as tls from "@pulumi/tls";
import { CoordinationV1Api, CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfig, type DevConfig } from "../../src/dev/config";
import { OBJECT_STORE_BUCKET, objectStoreBackendUrl, objectStoreTarget, readObjectStoreCredentials, s3Request } from "../../src/dev/object-store";
import { startServices, stopServices } from "../../src/dev/services";
import { EngineFence, FencedError, type HolderRecord, type HolderRecords } from "../../src/runtime/fencing";
import { holderAnnotationKey, leaseHolderRecords } from "../../src/runtime/holder-leases";
import { TermRecovery } from "../../src/runtime/recovery";
import { StackOperationError, StackRunner } from "../../src/runtime/stack-runner";
import { writeGated } from "../../src/runtime/write-gate";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { freePortBase } from "../support/dev-cluster";
import { engineEnv } from "../support/engine";
import { harness } from "../support/machine-harness";

const NS = "kok-holders";
const LEASE = "kube-on-kube-operator-holders";
const PROJECT = "kok-s3-fencing";

let apiserver: TestApiserver;
let leases: CoordinationV1Api;

const record = (identity: string, acquiredAt: number): HolderRecord => ({ identity, acquiredAt, operation: "up", pid: 7, startedAt: "2026-12-05T00:00:00.000Z" });

async function annotations(): Promise<Record<string, string>> {
  return (await leases.readNamespacedLease({ name: LEASE, namespace: NS })).metadata?.annotations ?? {};
}

beforeAll(async () => {
  apiserver = await startTestApiserver();
  const kc = apiserver.kubeConfig();
  leases = kc.makeApiClient(CoordinationV1Api);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
}, 120_000);

afterAll(async () => {
  await apiserver?.stop();
});

describe("holder records in a Lease", () => {
  it("writes, reads, lists and removes one stack's record, as one annotation of the named Lease", async () => {
    const records = leaseHolderRecords({ api: leases, namespace: NS, name: LEASE, labels: { "app.kubernetes.io/name": "kube-on-kube-operator" } });
    expect(await records.read("clusters", "fleet.a")).toBeUndefined();
    expect(await records.held("clusters")).toEqual(new Map());
    await records.write("clusters", "fleet.a", record("replica-a", 1_000));
    await records.write("machines", "fleet.a", record("replica-a", 1_000));
    expect(await records.read("clusters", "fleet.a")).toEqual(record("replica-a", 1_000));
    expect(await records.held("clusters")).toEqual(new Map([["fleet.a", record("replica-a", 1_000)]]));
    const lease = await leases.readNamespacedLease({ name: LEASE, namespace: NS });
    expect(lease.metadata?.labels).toEqual({ "app.kubernetes.io/name": "kube-on-kube-operator" });
    expect(Object.keys(lease.metadata?.annotations ?? {}).sort()).toEqual([holderAnnotationKey("clusters", "fleet.a"), holderAnnotationKey("machines", "fleet.a")].sort());
    // A newer operation's record replaces the older one.
    await records.write("clusters", "fleet.a", record("replica-b", 2_000));
    expect(await records.read("clusters", "fleet.a")).toEqual(record("replica-b", 2_000));
    await records.remove("clusters", "fleet.a");
    expect(await records.read("clusters", "fleet.a")).toBeUndefined();
    expect(await records.read("machines", "fleet.a")).toEqual(record("replica-a", 1_000));
    // Removing what is not there writes nothing.
    const version = (await leases.readNamespacedLease({ name: LEASE, namespace: NS })).metadata?.resourceVersion;
    await records.remove("clusters", "fleet.a");
    expect((await leases.readNamespacedLease({ name: LEASE, namespace: NS })).metadata?.resourceVersion).toBe(version);
    await records.remove("machines", "fleet.a");
  });

  it("lands every record when many operations write at once (conflicts re-read and retried)", async () => {
    // Separate clients, as separate runners of one replica would race.
    const writers = Array.from({ length: 12 }, () => leaseHolderRecords({ api: leases, namespace: NS, name: LEASE }));
    await Promise.all(writers.map((w, i) => w.write("race", `stack-${i}`, record("replica-a", i))));
    const held = await writers[0]!.held("race");
    expect([...held.keys()].sort()).toEqual(Array.from({ length: 12 }, (_, i) => `stack-${i}`).sort());
    await Promise.all(writers.map((w, i) => w.remove("race", `stack-${i}`)));
    expect(await writers[0]!.held("race")).toEqual(new Map());
  });

  it("an edited record, or one copied under another stack's key, proves nothing", async () => {
    const records = leaseHolderRecords({ api: leases, namespace: NS, name: LEASE });
    await records.write("clusters", "fleet.victim", record("replica-a", 1_000));
    const lease = await leases.readNamespacedLease({ name: LEASE, namespace: NS });
    const entry = lease.metadata!.annotations![holderAnnotationKey("clusters", "fleet.victim")]!;
    lease.metadata!.annotations = {
      [holderAnnotationKey("clusters", "fleet.victim")]: entry.replace('"acquiredAt":1000', '"acquiredAt":"1000"'),
      // fleet.other's key, holding fleet.victim's entry: not fleet.other's record, nor fleet.victim's.
      [holderAnnotationKey("clusters", "fleet.other")]: entry,
      [holderAnnotationKey("clusters", "fleet.garbage")]: "{not json",
    };
    await leases.replaceNamespacedLease({ name: LEASE, namespace: NS, body: lease });
    expect(await records.read("clusters", "fleet.victim")).toBeUndefined();
    expect(await records.read("clusters", "fleet.other")).toBeUndefined();
    expect(await records.held("clusters")).toEqual(new Map());
    for (const stack of ["fleet.victim", "fleet.other", "fleet.garbage"]) await records.remove("clusters", stack);
    expect(await annotations()).toEqual({});
  });

  it("writes nothing once this replica's fence is closed", async () => {
    const fence = new EngineFence({ identity: "replica-a" });
    const records = leaseHolderRecords({ api: writeGated(leases, () => fence.mayWrite(), "CoordinationV1Api"), namespace: NS, name: LEASE });
    await expect(records.write("clusters", "fleet.fenced", record("replica-a", 1))).rejects.toBeInstanceOf(FencedError);
    expect(await records.read("clusters", "fleet.fenced")).toBeUndefined();
    fence.open({ identity: "replica-a", transitions: 0, acquiredAt: 1 });
    await records.write("clusters", "fleet.fenced", record("replica-a", 1));
    await fence.close();
    await expect(records.remove("clusters", "fleet.fenced")).rejects.toBeInstanceOf(FencedError);
    expect(await records.read("clusters", "fleet.fenced")).toEqual(record("replica-a", 1));
    await leaseHolderRecords({ api: leases, namespace: NS, name: LEASE }).remove("clusters", "fleet.fenced");
  });
});

/** A small real stack: one key from the tls provider. */
const keyProgram = (generation: number) => async () => {
  const key = new tls.PrivateKey("key", { algorithm: "ED25519" });
  return { generation, publicKey: key.publicKeyOpenssh };
};

describe("fencing and recovery on the s3:// backend", () => {
  let root: string;
  let config: DevConfig;
  let env: Record<string, string>;
  let backendUrl: string;
  let holders: HolderRecords;
  const prefix = `fencing-${process.pid}`;

  async function keys(under: string): Promise<string[]> {
    const res = await s3Request(objectStoreTarget(config), { method: "GET", path: `/${OBJECT_STORE_BUCKET}`, query: { "list-type": "2", prefix: `${prefix}/${under}` } });
    expect(res.status).toBe(200);
    return [...res.body.toString("utf8").matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]!);
  }

  const runnerOf = (name: string, fence: EngineFence) => new StackRunner({ projectName: PROJECT, backendUrl, workRoot: path.join(root, name), env, fence, holders });

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), "kok-s3-fencing-"));
    config = defaultConfig(path.join(root, "dev"), await freePortBase());
    env = engineEnv();
    process.env.PATH = env.PATH;
    await startServices(config, () => undefined, () => "");
    const { accessKeyId, secretAccessKey } = readObjectStoreCredentials(config);
    env = { ...env, AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey };
    backendUrl = objectStoreBackendUrl(config, prefix);
    holders = leaseHolderRecords({ api: leases, namespace: NS, name: LEASE });
  }, 120_000);

  afterAll(async () => {
    if (config) await stopServices(config, () => undefined);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("a lost term's killed update keeps its record in the Lease and its lock in the bucket; the next term clears that lock only", async () => {
    const fenceA = new EngineFence({ identity: "replica-a" });
    fenceA.open({ identity: "replica-a", transitions: 0, acquiredAt: 1_000 });
    const runnerA = runnerOf("work-a", fenceA);
    await runnerA.up("fenced", keyProgram(1));
    expect(await runnerA.holderRecord("fenced")).toBeUndefined();
    let entered!: () => void;
    const inProgram = new Promise<void>((resolve) => (entered = resolve));
    const running = runnerA
      .up("fenced", async () => {
        entered();
        await new Promise(() => undefined);
        return {};
      })
      .catch((e: unknown) => e);
    await inProgram;
    expect(await fenceA.close()).toEqual([]);
    expect(await running).toBeInstanceOf(StackOperationError);
    expect(await runnerA.holderRecord("fenced")).toMatchObject({ identity: "replica-a", acquiredAt: 1_000, operation: "up" });
    expect((await runnerA.heldStacks()).has("fenced")).toBe(true);
    expect(await keys(`.pulumi/locks/`)).toEqual([expect.stringContaining(`/${PROJECT}/fenced/`)]);

    const termB = { identity: "replica-b", transitions: 1, acquiredAt: 2_000 };
    const fenceB = new EngineFence({ identity: "replica-b" });
    fenceB.open(termB);
    const runnerB = runnerOf("work-b", fenceB);
    const started = Date.now();
    expect((await runnerB.recover("fenced", keyProgram(1), termB)).lock).toMatchObject({ action: "clear", reason: expect.stringContaining("replica-a") });
    console.log(`s3 backend: recovery of a killed update (lock cleared) ${Date.now() - started} ms`);
    expect(await keys(`.pulumi/locks/`)).toEqual([]);
    expect(await runnerB.holderRecord("fenced")).toBeUndefined();
    await expect(runnerB.up("fenced", keyProgram(2))).resolves.toBeDefined();

    // A lock nobody recorded (a person's `pulumi up`): kept, and the next update waits for it.
    const lockKey = `${prefix}/.pulumi/locks/organization/${PROJECT}/fenced/someone.json`;
    const put = await s3Request(objectStoreTarget(config), { method: "PUT", path: `/${OBJECT_STORE_BUCKET}/${lockKey}`, body: JSON.stringify({ pid: 1, username: "x", hostname: "laptop", timestamp: new Date().toISOString() }) });
    expect(put.status).toBe(200);
    expect((await runnerB.recover("fenced", keyProgram(2), termB)).lock.action).toBe("keep");
    await expect(runnerB.up("fenced", keyProgram(2))).rejects.toMatchObject({ kind: "concurrent-update" });
    expect(await keys(`.pulumi/locks/`)).toEqual([lockKey]);
    await s3Request(objectStoreTarget(config), { method: "DELETE", path: `/${OBJECT_STORE_BUCKET}/${lockKey}` });
  }, 300_000);

  it("a corrupt checkpoint holds only its own stack: recovery reports it, its updates fail as state-unreadable, the other stack goes on", async () => {
    const term = { identity: "replica-c", transitions: 2, acquiredAt: 3_000 };
    const fence = new EngineFence({ identity: "replica-c" });
    fence.open(term);
    const runner = runnerOf("work-c", fence);
    await runner.up("good", keyProgram(1));
    await runner.up("bad", keyProgram(1));
    const stateKey = `${prefix}/.pulumi/stacks/${PROJECT}/bad.json`;
    const put = await s3Request(objectStoreTarget(config), { method: "PUT", path: `/${OBJECT_STORE_BUCKET}/${stateKey}`, body: '{"version": 3, "checkpoint": {"stack": "organization/x/bad", "latest": {"manifest' });
    expect(put.status).toBe(200);

    const outcomes: Record<string, unknown> = {};
    const ended = new AbortController();
    const recovery = new TermRecovery({
      termEnded: ended.signal,
      recoveries: ["good", "bad"].map((stack) => ({ kind: "Cluster", key: stack, run: async () => void (outcomes[stack] = await runner.recover(stack, keyProgram(1), term)) })),
    });
    await recovery.done;
    expect(recovery.waiting()).toEqual([]);
    expect(outcomes.good).toMatchObject({ clearedPending: false, lock: { action: "keep" } });
    expect(outcomes.bad).toMatchObject({ clearedPending: false, stateUnreadable: expect.stringContaining("failed to load checkpoint") });

    const error = await runner.up("bad", keyProgram(2)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StackOperationError);
    expect(error).toMatchObject({ kind: "state-unreadable", stackName: "bad", message: expect.stringContaining("failed to load checkpoint") });
    expect(await runner.holderRecord("bad")).toBeUndefined();
    await expect(runner.up("good", keyProgram(2))).resolves.toBeDefined();
    expect(await runner.resources("bad").catch((e: unknown) => e)).toMatchObject({ kind: "state-unreadable" });
  }, 300_000);

  it("a Machine whose stack's checkpoint is corrupt says StackStateUnreadable with the engine's words, once, and applies nothing", async () => {
    const fence = new EngineFence({ identity: "replica-d" });
    fence.open({ identity: "replica-d", transitions: 3, acquiredAt: 4_000 });
    const runner = runnerOf("work-d", fence);
    const stack = "fleet.worker-0001";
    await runner.up(stack, keyProgram(1));
    const stateKey = `${prefix}/.pulumi/stacks/${PROJECT}/${stack}.json`;
    const put = await s3Request(objectStoreTarget(config), { method: "PUT", path: `/${OBJECT_STORE_BUCKET}/${stateKey}`, body: '{"version": 3, "checkpoint": {"stack": "organization/x/w", "latest": {"manif' });
    expect(put.status).toBe(200);
    // The Machine reconciler of the unit tests, on this runner: its first engine call reads the state.
    const h = harness({ stacks: runner });
    h.readyCluster();
    h.put();
    const error = await h.reconciler.reconcile("fleet/worker-0001").catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "state-unreadable", stackName: stack });
    const ready = h.current().status?.conditions?.find((c) => c.type === "Ready");
    expect(ready).toMatchObject({ status: "False", reason: "StackStateUnreadable", message: expect.stringContaining(`stack ${stack}`) });
    expect(ready?.message).toContain("failed to load checkpoint");
    expect(h.events).toEqual([{ type: "Warning", reason: "StackStateUnreadable", message: ready?.message }]);
    expect(await runner.holderRecord(stack)).toBeUndefined();
  }, 300_000);

  it("prunes the Lease's record of a stack the bucket no longer has, and keeps that of a stack it still has", async () => {
    const term = { identity: "replica-e", transitions: 4, acquiredAt: 5_000 };
    const fence = new EngineFence({ identity: "replica-e" });
    fence.open(term);
    const runner = runnerOf("work-e", fence);
    await runner.up("orphan-kept", keyProgram(1));
    await holders.write(PROJECT, "orphan-kept", record("replica-a", 1_000));
    await holders.write(PROJECT, "orphan-gone", record("replica-a", 1_000));
    await holders.write(PROJECT, "orphan-mine", record("replica-e", 5_000));
    const named = new Set(["good"]);
    const outcomes = await runner.pruneHolderRecords((s) => named.has(s), term);
    expect(outcomes).toContainEqual({ stack: "orphan-gone", action: "pruned", record: record("replica-a", 1_000) });
    expect(outcomes).toContainEqual({ stack: "orphan-kept", action: "kept", reason: expect.stringContaining("still exists") });
    expect(outcomes).toContainEqual({ stack: "orphan-mine", action: "kept", reason: expect.stringContaining("current term") });
    expect(await runner.holderRecord("orphan-gone")).toBeUndefined();
    expect(await runner.holderRecord("orphan-kept")).toEqual(record("replica-a", 1_000));
    for (const stack of ["orphan-kept", "orphan-mine"]) await holders.remove(PROJECT, stack);
  }, 300_000);
});
