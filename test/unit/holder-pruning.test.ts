/**
 * The pruning of orphan holder records (holder-pruning.ts), with both kinds of records: files beside
 * a `file://` backend's stacks and annotations of the holders' Lease (an in-memory Lease endpoint
 * with the apiserver's conflicts, behind the operator's write gate). The backend's stacks and the
 * runner's per-stack mutex are stand-ins: which stacks exist is a set, the mutex a promise chain.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { EngineFence, type HolderRecord, type HolderRecords } from "../../src/runtime/fencing";
import { holderRecordsFor } from "../../src/runtime/holder-files";
import { leaseHolderRecords, type HolderLeaseApi } from "../../src/runtime/holder-leases";
import { pruneLogLine, pruneOrphanHolders, type PrunableStacks } from "../../src/runtime/holder-pruning";
import { StackRunner } from "../../src/runtime/stack-runner";
import { writeGated } from "../../src/runtime/write-gate";
import { flush } from "../support/fake-clock";
import { MemoryLeases } from "../support/memory-leases";

const PROJECT = "kube-on-kube-machines";
/** The term this replica leads; records of `replica-a` at 1 000 are an ended term's. */
const TERM = { identity: "replica-b", transitions: 2, acquiredAt: 2_000 };
const record = (identity: string, acquiredAt: number, operation = "up"): HolderRecord => ({ identity, acquiredAt, operation, pid: 7, startedAt: "2026-12-05T00:00:00.000Z" });
const ENDED = record("replica-a", 1_000);
const CURRENT = record(TERM.identity, TERM.acquiredAt);

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Records beside a file backend, and in a Lease; both written only while `fence` is open (the Lease's through the write gate). */
const variants: [string, (fence: EngineFence) => { holders: HolderRecords; writes: () => number }][] = [
  [
    "file records",
    () => {
      const dir = mkdtempSync(path.join(tmpdir(), "kok-prune-"));
      dirs.push(dir);
      return { holders: holderRecordsFor(`file://${dir}`)!, writes: () => NaN };
    },
  ],
  [
    "Lease records",
    (fence) => {
      const leases = new MemoryLeases();
      const api = writeGated(leases.api() as unknown as HolderLeaseApi, () => fence.mayWrite(), "CoordinationV1Api");
      return { holders: leaseHolderRecords({ api, namespace: "kok-system", name: "kube-on-kube-operator-holders" }), writes: () => leases.version };
    },
  ],
];

/** The runner's side: a per-stack mutex (a promise chain), the stacks the backend has, the fence. */
function world(make: (fence: EngineFence) => { holders: HolderRecords; writes: () => number }) {
  const fence = new EngineFence({ identity: TERM.identity });
  fence.open(TERM);
  const { holders, writes } = make(fence);
  const chains = new Map<string, Promise<unknown>>();
  const stacks = new Set<string>();
  const asked: string[] = [];
  const s: PrunableStacks & { onExists?: (stack: string) => Promise<void> } = {
    project: PROJECT,
    holders,
    exclusive: (stack, fn) => {
      const next = (chains.get(stack) ?? Promise.resolve()).catch(() => undefined).then(fn);
      chains.set(stack, next);
      return next;
    },
    exists: async (stack) => {
      asked.push(stack);
      await s.onExists?.(stack);
      if (stack === "fleet.unreachable") throw new Error("stack fleet.unreachable: export failed: the backend did not answer");
      return stacks.has(stack);
    },
    mayWrite: () => fence.mayWrite(),
  };
  return { s, fence, holders, stacks, asked, writes };
}

describe.each(variants)("pruning orphan holder records: %s", (_name, make) => {
  it("removes only an ended term's record of a stack that no object names and the backend no longer has", async () => {
    const w = world(make);
    const objects = new Set(["fleet.live"]);
    await w.holders.write(PROJECT, "fleet.gone", ENDED);
    await w.holders.write(PROJECT, "fleet.live", ENDED);
    await w.holders.write(PROJECT, "fleet.mine", CURRENT);
    await w.holders.write(PROJECT, "fleet.kept", record("replica-a", 1_000, "destroy"));
    await w.holders.write("kube-on-kube-clusters", "fleet.gone", ENDED);
    // A stack whose finalizer was removed by hand: still in the backend, maybe with a lock.
    w.stacks.add("fleet.kept");
    const outcomes = await pruneOrphanHolders(w.s, { term: TERM, inUse: (stack) => objects.has(stack) });
    expect(Object.fromEntries(outcomes.map((o) => [o.stack, o.action]))).toEqual({ "fleet.gone": "pruned", "fleet.mine": "kept", "fleet.kept": "kept" });
    expect(outcomes.find((o) => o.stack === "fleet.mine")).toMatchObject({ reason: expect.stringContaining("held by the current term") });
    expect(outcomes.find((o) => o.stack === "fleet.kept")).toMatchObject({ reason: expect.stringContaining("pulumi stack rm") });
    // The current term's record was not even looked up in the backend; an object's stack neither.
    expect(w.asked.sort()).toEqual(["fleet.gone", "fleet.kept"]);
    expect([...(await w.holders.held(PROJECT)).keys()].sort()).toEqual(["fleet.kept", "fleet.live", "fleet.mine"]);
    expect(await w.holders.read("kube-on-kube-clusters", "fleet.gone")).toEqual(ENDED);
    expect(pruneLogLine(outcomes.find((o) => o.stack === "fleet.gone")!)).toMatchObject({ level: "info", stack: "fleet.gone", holder: "replica-a", termAcquiredAt: "1970-01-01T00:00:01.000Z" });
  });

  it("reads the record under the stack's mutex: one an operation of this term wrote meanwhile stays", async () => {
    const w = world(make);
    await w.holders.write(PROJECT, "fleet.busy", ENDED);
    // An operation of this term holds the stack; later it replaces the record, and its removal fails.
    let finish!: () => void;
    const operation = w.s.exclusive("fleet.busy", async () => {
      await new Promise<void>((resolve) => (finish = resolve));
      await w.holders.write(PROJECT, "fleet.busy", CURRENT);
    });
    const pruning = pruneOrphanHolders(w.s, { term: TERM, inUse: () => false });
    // Every step the pruning could take without the mutex is done by now.
    await flush();
    expect(w.asked).toEqual([]);
    finish();
    await operation;
    expect(await pruning).toEqual([{ stack: "fleet.busy", action: "kept", reason: expect.stringContaining("held by the current term") }]);
    expect(await w.holders.read(PROJECT, "fleet.busy")).toEqual(CURRENT);
  });

  it("removes a record only while it is still the one read; asks again whether an object names the stack", async () => {
    const w = world(make);
    await w.holders.write(PROJECT, "fleet.rewritten", ENDED);
    await w.holders.write(PROJECT, "fleet.adopted", ENDED);
    // Between the read and the removal another record lands (a writer outside this runner's mutex).
    const newer = record("replica-a", 1_500);
    w.s.onExists = async (stack) => {
      if (stack === "fleet.rewritten") await w.holders.write(PROJECT, stack, newer);
    };
    const created = new Set<string>();
    const inUse = (stack: string) => {
      // An object of that name is created once the pruning listed the records.
      const now = created.has(stack);
      if (stack === "fleet.adopted") created.add(stack);
      return now;
    };
    const outcomes = await pruneOrphanHolders(w.s, { term: TERM, inUse });
    expect(outcomes.find((o) => o.stack === "fleet.adopted")).toMatchObject({ action: "kept", reason: expect.stringContaining("an object names the stack now") });
    expect(await w.holders.read(PROJECT, "fleet.rewritten")).toEqual(newer);
    expect(await w.holders.read(PROJECT, "fleet.adopted")).toEqual(ENDED);
  });

  it("keeps a record when the backend cannot tell whether its stack exists, and goes on with the others", async () => {
    const w = world(make);
    await w.holders.write(PROJECT, "fleet.unreachable", ENDED);
    await w.holders.write(PROJECT, "fleet.gone", ENDED);
    const outcomes = await pruneOrphanHolders(w.s, { term: TERM, inUse: () => false });
    expect(outcomes).toContainEqual({ stack: "fleet.unreachable", action: "failed", error: expect.stringContaining("the backend did not answer") });
    expect(outcomes).toContainEqual(expect.objectContaining({ stack: "fleet.gone", action: "pruned" }));
    expect(await w.holders.read(PROJECT, "fleet.unreachable")).toEqual(ENDED);
    expect(pruneLogLine(outcomes.find((o) => o.action === "failed")!)).toMatchObject({ level: "warn" });
  });

  it("removes nothing once the term ended, and stops", async () => {
    const w = world(make);
    await w.holders.write(PROJECT, "fleet.a", ENDED);
    await w.holders.write(PROJECT, "fleet.b", ENDED);
    const writes = w.writes();
    // The lease is lost while the first stack is looked up in the backend.
    w.s.onExists = async () => void (await w.fence.close());
    const outcomes = await pruneOrphanHolders(w.s, { term: TERM, inUse: () => false });
    expect(outcomes).toEqual([{ stack: expect.any(String), action: "failed", error: expect.stringContaining("does not lead") }]);
    expect([...(await w.holders.held(PROJECT)).keys()].sort()).toEqual(["fleet.a", "fleet.b"]);
    if (!Number.isNaN(writes)) expect(w.writes()).toBe(writes);
    // A term that ended before the pruning started does nothing at all.
    const ended = new AbortController();
    ended.abort();
    expect(await pruneOrphanHolders(w.s, { term: TERM, inUse: () => false, termEnded: ended.signal })).toEqual([]);
  });
});

describe("StackRunner.pruneHolderRecords", () => {
  it("prunes nothing without a fence, and never the records of its own process when there is no leader election", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kok-prune-runner-"));
    dirs.push(dir);
    const holders = holderRecordsFor(`file://${dir}`)!;
    const base = { projectName: PROJECT, backendUrl: `file://${dir}`, workRoot: path.join(dir, "work"), env: {}, holders };
    await holders.write(PROJECT, "fleet.orphan", ENDED);
    expect(await new StackRunner(base).pruneHolderRecords(() => false, undefined)).toEqual([]);
    expect(await holders.read(PROJECT, "fleet.orphan")).toEqual(ENDED);
    // One replica: the fence opens with no term, and its records carry the process's marker.
    const fence = new EngineFence({ identity: "solo", open: true });
    await holders.remove(PROJECT, "fleet.orphan");
    const own = record(fence.marker, 0);
    await holders.write(PROJECT, "fleet.running", own);
    const outcomes = await new StackRunner({ ...base, fence }).pruneHolderRecords(() => false, undefined);
    expect(outcomes).toEqual([{ stack: "fleet.running", action: "kept", reason: expect.stringContaining("held by the current term") }]);
    expect(await holders.read(PROJECT, "fleet.running")).toEqual(own);
  });
});
