import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveClusterSpec } from "../../src/api/v1alpha1";
import { ClusterPki } from "../../src/components/pki";
import { StackOperationError, StackRunner, type OperationProgress } from "../../src/runtime/stack-runner";
import { adoptLegacyStack } from "../../src/controllers/legacy-stacks";
import { EngineFence, engineProcesses } from "../../src/runtime/fencing";
import { holderRecordsFor } from "../../src/runtime/holder-files";
import { engineEnv } from "../support/engine";
import { minimalSpec } from "../support/specs";

/** A real program that needs no cluster: one business cluster's PKI (real tls provider). */
const pkiProgram = (name: string, validityDays = 365) => async () => {
  const spec = resolveClusterSpec(minimalSpec({ certificates: { validityDays, renewBeforeDays: 1 } }));
  const pki = new ClusterPki(`${name}-pki`, { cluster: { name, namespace: name, spec, metaClusterDomain: "cluster.local" } });
  return { expiresAt: pki.certificatesExpireAt, adminKey: pki.admin.keyPem, caCert: pki.clusterCa.certPem };
};

/** A stack shaped like an operator's Cluster stack of old: a ControlPlane-typed component named like the Cluster. */
const legacyClusterProgram = (name: string) => async () => {
  const component = new pulumi.ComponentResource("kube-on-kube:index:ControlPlane", name);
  const spec = resolveClusterSpec(minimalSpec());
  const pki = new ClusterPki(`${name}-pki`, { cluster: { name, namespace: name, spec, metaClusterDomain: "cluster.local" } }, { parent: component });
  return { caCert: pki.clusterCa.certPem };
};

describe("StackRunner with the real engine", () => {
  let root: string;
  let runner: StackRunner;

  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), "kok-runner-"));
    const env = engineEnv();
    process.env.PATH = env.PATH;
    mkdirSync(path.join(root, "state"));
    runner = new StackRunner({ projectName: "kok-runner-test", backendUrl: `file://${path.join(root, "state")}`, workRoot: path.join(root, "work"), env });
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("creates a stack, reports progress by resource, returns outputs with secrets marked", async () => {
    const progress: OperationProgress[] = [];
    const result = await runner.up("fleet-a", pkiProgram("a"), (p) => progress.push(p));
    expect(result.changes.create).toBeGreaterThan(30);
    // Every resource but the Stack reports progress (default providers included).
    expect(progress.at(-1)?.counts.create).toBeGreaterThanOrEqual(result.changes.create - 1);
    expect(progress.every((p) => !JSON.stringify(p).includes("PRIVATE KEY"))).toBe(true);
    expect(result.outputs.adminKey.secret).toBe(true);
    expect(String(result.outputs.caCert.value)).toContain("BEGIN CERTIFICATE");
  });

  it("finds no drift right after an up", async () => {
    expect(await runner.preview("fleet-a", pkiProgram("a"), { refresh: true })).toEqual({ same: expect.any(Number) });
  });

  it("serializes concurrent operations on one stack instead of failing them", async () => {
    const [a, b] = await Promise.all([runner.up("fleet-a", pkiProgram("a", 300)), runner.preview("fleet-a", pkiProgram("a", 300))]);
    expect(a.changes.replace).toBeGreaterThan(0);
    expect(b).toEqual({ same: expect.any(Number) });
  });

  it("runs different stacks in parallel", async () => {
    const results = await Promise.all([runner.up("fleet-b", pkiProgram("b")), runner.up("fleet-c", pkiProgram("c"))]);
    expect(results.map((r) => r.changes.create > 0)).toEqual([true, true]);
    expect((await runner.listStacks(pkiProgram("x"))).sort()).toEqual(["fleet-a", "fleet-b", "fleet-c"]);
  });

  it("recovery clears a stale lock left by a dead process, then updates", async () => {
    const locks = path.join(root, "state", ".pulumi", "locks", "organization", "kok-runner-test", "fleet-b");
    mkdirSync(locks, { recursive: true });
    writeFileSync(path.join(locks, "dead-process.json"), JSON.stringify({ pid: 999999, username: "x", hostname: "gone", timestamp: new Date().toISOString() }));
    await expect(runner.up("fleet-b", pkiProgram("b"))).rejects.toMatchObject({ kind: "concurrent-update" });
    expect((await runner.recover("fleet-b", pkiProgram("b"))).clearedPending).toBe(false);
    expect(readdirSync(locks)).toEqual([]);
    await expect(runner.up("fleet-b", pkiProgram("b"))).resolves.toBeDefined();
  });

  it("recovers an existing stack (lock cleared, no pending operations) and leaves an unknown one alone", async () => {
    const locks = path.join(root, "state", ".pulumi", "locks", "organization", "kok-runner-test", "fleet-b");
    writeFileSync(path.join(locks, "dead-again.json"), JSON.stringify({ pid: 999998, username: "x", hostname: "gone", timestamp: new Date().toISOString() }));
    expect((await runner.recover("fleet-b", pkiProgram("b"))).clearedPending).toBe(false);
    expect(readdirSync(locks)).toEqual([]);
    expect((await runner.recover("fleet-unknown", pkiProgram("u"))).clearedPending).toBe(false);
    expect(await runner.listStacks(pkiProgram("x"))).not.toContain("fleet-unknown");
  });

  it("fenced: a lost term kills its engine mid-up and keeps its holder record; the next term clears that lock only", async () => {
    const backendUrl = `file://${path.join(root, "state")}`;
    const env = engineEnv();
    const fenceA = new EngineFence({ identity: "replica-a" });
    fenceA.open({ identity: "replica-a", transitions: 0, acquiredAt: 1_000 });
    const runnerA = new StackRunner({ projectName: "kok-fence-test", backendUrl, workRoot: path.join(root, "work-a"), env, fence: fenceA });
    await runnerA.up("fleet-f", pkiProgram("f"));
    expect(await runnerA.holderRecord("fleet-f")).toBeUndefined();
    // An update that is inside its program (the stack locked) when the term is lost.
    let entered!: () => void;
    const inProgram = new Promise<void>((resolve) => (entered = resolve));
    let letGo!: () => void;
    const held = new Promise<void>((resolve) => (letGo = resolve));
    const running = runnerA.up("fleet-f", async () => {
      entered();
      await held;
      return {};
    }).catch((e: unknown) => e);
    await inProgram;
    expect(engineProcesses(fenceA.marker).length).toBeGreaterThan(0);
    expect(await fenceA.close()).toEqual([]);
    expect(await running).toBeInstanceOf(StackOperationError);
    letGo();
    expect(engineProcesses(fenceA.marker)).toEqual([]);
    expect(await runnerA.holderRecord("fleet-f")).toMatchObject({ identity: "replica-a", acquiredAt: 1_000, operation: "up" });
    const locks = path.join(root, "state", ".pulumi", "locks", "organization", "kok-fence-test", "fleet-f");
    expect(readdirSync(locks).filter((f) => f.endsWith(".json"))).toHaveLength(1);
    await expect(runnerA.up("fleet-f", pkiProgram("f"))).rejects.toThrow(/does not lead/);

    // The next term (another replica): the record names an ended term, so the lock goes.
    const termB = { identity: "replica-b", transitions: 1, acquiredAt: 2_000 };
    const fenceB = new EngineFence({ identity: "replica-b" });
    fenceB.open(termB);
    const runnerB = new StackRunner({ projectName: "kok-fence-test", backendUrl, workRoot: path.join(root, "work-b"), env, fence: fenceB });
    expect((await runnerB.recover("fleet-f", pkiProgram("f"), termB)).lock.action).toBe("clear");
    expect(readdirSync(locks)).toEqual([]);
    expect(await runnerB.holderRecord("fleet-f")).toBeUndefined();
    await expect(runnerB.up("fleet-f", pkiProgram("f"))).resolves.toBeDefined();

    // A lock nobody recorded (a person's `pulumi up`, say) is not this operator's to clear.
    writeFileSync(path.join(locks, "someone.json"), JSON.stringify({ pid: 999997, username: "x", hostname: "laptop", timestamp: new Date().toISOString() }));
    expect((await runnerB.recover("fleet-f", pkiProgram("f"), termB)).lock.action).toBe("keep");
    await expect(runnerB.up("fleet-f", pkiProgram("f"))).rejects.toMatchObject({ kind: "concurrent-update" });
    rmSync(path.join(locks, "someone.json"));
  });

  it("prunes an ended term's holder record of a stack the backend no longer has, beside the file backend's stacks; keeps one of a stack it has", async () => {
    const backendUrl = `file://${path.join(root, "state")}`;
    const term = { identity: "replica-c", transitions: 2, acquiredAt: 3_000 };
    const fence = new EngineFence({ identity: "replica-c" });
    fence.open(term);
    const pruner = new StackRunner({ projectName: "kok-prune-test", backendUrl, workRoot: path.join(root, "work-prune"), env: engineEnv(), fence });
    await pruner.up("fleet-kept", pkiProgram("k"));
    await pruner.up("fleet-gone", pkiProgram("g"));
    await pruner.destroyAndRemove("fleet-gone", pkiProgram("g"));
    // What a killed operation of an ended term left beside each.
    const ended = { identity: "replica-a", acquiredAt: 1_000, operation: "destroy", pid: 7, startedAt: "2026-12-05T00:00:00.000Z" };
    const holders = holderRecordsFor(backendUrl)!;
    for (const stack of ["fleet-kept", "fleet-gone"]) await holders.write("kok-prune-test", stack, ended);
    const outcomes = await pruner.pruneHolderRecords(() => false, term);
    expect(outcomes).toContainEqual({ stack: "fleet-gone", action: "pruned", record: ended });
    expect(outcomes).toContainEqual({ stack: "fleet-kept", action: "kept", reason: expect.stringContaining("still exists") });
    expect(await pruner.holderRecord("fleet-gone")).toBeUndefined();
    expect(await pruner.holderRecord("fleet-kept")).toEqual(ended);
    await holders.remove("kok-prune-test", "fleet-kept");
    await pruner.destroyAndRemove("fleet-kept", pkiProgram("k"));
  });

  it("reports a failing program with the stack, the operation and the error, as an engine failure", async () => {
    const failing = async () => {
      throw new pulumi.RunError("spec.mode: must be one of standard, minimal");
    };
    const error = await runner.up("fleet-c", failing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StackOperationError);
    expect((error as StackOperationError).kind).toBe("engine");
    expect((error as Error).message).toMatch(/^stack fleet-c: up failed: .*spec\.mode: must be one of standard, minimal/);
    expect((error as Error).message).not.toMatch(/--client=|Command failed/);
  });

  it("tells an operation that waits for an engine slot, and what a resource's provider says while it works", async () => {
    const capped = new StackRunner({
      projectName: "kok-runner-test",
      backendUrl: `file://${path.join(root, "state")}`,
      workRoot: path.join(root, "work-capped"),
      env: engineEnv(),
      maxConcurrentOperations: 1,
    });
    // No provider: a component and a message about it, as pulumi-kubernetes reports a Pod it waits for.
    const talking = (name: string) => async () => {
      const pod = new pulumi.ComponentResource("test:index:Workload", `${name}-etcd`, {});
      pulumi.log.warn("<{%fg 3%}>Pod etcd-0 Unschedulable:<{%reset%}> 0/1 nodes are available", pod);
      return {};
    };
    const seen: Record<string, OperationProgress[]> = { d: [], e: [] };
    await Promise.all(["d", "e"].map((n) => capped.up(`fleet-${n}`, talking(n), (p) => seen[n].push(p))));
    const [first, second] = seen.d[0].phase === "queued" ? [seen.e, seen.d] : [seen.d, seen.e];
    expect(first[0]).toMatchObject({ phase: "running", counts: {} });
    expect(first.some((p) => p.phase === "queued")).toBe(false);
    expect(second[0]).toMatchObject({ phase: "queued", slots: { active: 1, limit: 1 } });
    expect(second[1]).toMatchObject({ phase: "running" });
    const names = second === seen.d ? "d" : "e";
    expect(second.map((p) => p.message)).toContain(`${names}-etcd: Pod etcd-0 Unschedulable: 0/1 nodes are available`);
    await Promise.all(["d", "e"].map((n) => capped.destroyAndRemove(`fleet-${n}`, talking(n))));
  });

  it("migrates a legacy <namespace>-<name> stack: renamed with its state, the next up changes nothing", async () => {
    const cluster = { metadata: { namespace: "fleet", name: "prod-g" } };
    const program = legacyClusterProgram("prod-g");
    const before = await runner.up("fleet-prod-g", program);
    expect(before.changes.create).toBeGreaterThan(10);
    expect(await runner.resources("fleet.prod-g")).toBeUndefined();
    // Cluster fleet-prod/g had the same legacy name: its ControlPlane would be "g", so it is not its stack.
    expect(await adoptLegacyStack(runner, { metadata: { namespace: "fleet-prod", name: "g" } }, "ControlPlane")).toMatchObject({
      stack: "fleet-prod.g",
      left: { from: "fleet-prod-g" },
    });
    const adopted = await adoptLegacyStack(runner, cluster, "ControlPlane");
    expect(adopted).toMatchObject({ stack: "fleet.prod-g", migratedFrom: "fleet-prod-g" });
    expect(adopted.resources).toContainEqual({ type: "kube-on-kube:index:ControlPlane", name: "prod-g" });
    expect(await runner.resources("fleet-prod-g")).toBeUndefined();
    const state = await runner.resources("fleet.prod-g");
    expect(state).toContainEqual({ type: "kube-on-kube:index:ControlPlane", name: "prod-g" });
    expect(state?.filter((r) => r.id).length).toBeGreaterThan(10);
    expect(JSON.stringify(state)).not.toContain("PRIVATE KEY");
    // Same state under the new name: the keys and certificates are kept, nothing is created again.
    const after = await runner.up("fleet.prod-g", program);
    expect(after.changes).toEqual({ same: expect.any(Number) });
    expect(after.outputs.caCert.value).toBe(before.outputs.caCert.value);
    expect(await runner.listStacks(program)).not.toContain("fleet-prod-g");
    // Once migrated, a second look finds the new stack and renames nothing.
    const again = await adoptLegacyStack(runner, cluster, "ControlPlane");
    expect([again.stack, again.migratedFrom, again.resources?.length]).toEqual(["fleet.prod-g", undefined, state?.length]);
    await runner.destroyAndRemove("fleet.prod-g", program);
  });

  it("destroys and removes a stack", async () => {
    await runner.destroyAndRemove("fleet-c", pkiProgram("c"));
    expect((await runner.listStacks(pkiProgram("x"))).sort()).toEqual(["fleet-a", "fleet-b"]);
  });
});
