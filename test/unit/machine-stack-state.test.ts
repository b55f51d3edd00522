/**
 * A Machine whose stack's checkpoint cannot be read (the engine's `state-unreadable`): on every
 * path that touches its stack (install, the read of its state before it, a certificates renewal,
 * the deletion) it says so as a Cluster does (Ready=False/StackStateUnreadable, the stack and the
 * engine's words, one Warning Event, the error thrown on for the controller's backoff), other
 * Machines are installed meanwhile, and it recovers once the state is restored.
 */
import { describe, expect, it } from "vitest";
import type { MachineObject } from "../../src/api/v1alpha1";
import { packagesRevision } from "../../src/controllers/packageversion/revision";
import { TerminalError } from "../../src/runtime/controller";
import { StackOperationError } from "../../src/runtime/stack-runner";
import { harness } from "../support/machine-harness";
import { machine as machineSpec, packages } from "../support/worker-fixtures";

const STACK = "fleet.worker-0001";
const CHECKPOINT = "failed to load checkpoint: place 1: invalid character '\\n' in string literal";
const unreadable = (operation: "up" | "export" | "destroy") => new StackOperationError(STACK, operation, "state-unreadable", CHECKPOINT);

const conditionOf = (m: MachineObject | undefined, type: string) => m?.status?.conditions?.find((c) => c.type === type);

/** What every path reports: Ready and Progressing, no Degraded (a Machine has none), one Event. */
function expectReported(h: ReturnType<typeof harness>, m: MachineObject) {
  const ready = conditionOf(m, "Ready");
  expect(ready).toMatchObject({ status: "False", reason: "StackStateUnreadable" });
  expect(ready?.message).toContain(`the state of stack ${STACK} in the state backend cannot be read`);
  expect(ready?.message).toContain(CHECKPOINT);
  expect(conditionOf(m, "Progressing")).toMatchObject({ status: "False", reason: "StackStateUnreadable", message: "retrying with backoff" });
  expect(conditionOf(m, "Degraded")).toBeUndefined();
  const warnings = h.events.filter((e) => e.type === "Warning");
  expect(warnings).toEqual([{ type: "Warning", reason: "StackStateUnreadable", message: ready?.message }]);
}

describe("MachineReconciler: a stack whose state cannot be read", () => {
  it("fails that Machine's install with StackStateUnreadable and a retry; another Machine installs meanwhile; it installs once restored", async () => {
    const h = harness();
    h.readyCluster();
    h.put();
    h.put(machineSpec({ hostname: "worker-0002" }), 1, "worker-0002");
    h.engine.failWith = unreadable("up");
    h.engine.failOnly = STACK;
    const error = await h.reconciler.reconcile("fleet/worker-0001").catch((e: unknown) => e);
    // Thrown on, not terminal: the controller retries with backoff.
    expect(error).toBeInstanceOf(StackOperationError);
    expect(error).not.toBeInstanceOf(TerminalError);
    // Rollouts read the phase, the target revision and the message of a failed install: kept.
    expect(h.current().status).toMatchObject({ phase: "Failed", targetRevision: packagesRevision(packages()), lastOperation: { result: "failed", message: expect.stringContaining(CHECKPOINT) } });
    expect(h.events.some((e) => e.reason === "InstallFailed")).toBe(false);
    expectReported(h, h.current());

    await h.reconciler.reconcile("fleet/worker-0002");
    expect(h.machines.get("fleet/worker-0002")?.status).toMatchObject({ phase: "Ready" });

    // A person restored the state: the next retry installs.
    h.engine.failWith = undefined;
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.current().status?.phase).toBe("Ready");
    expect(conditionOf(h.current(), "Ready")).toMatchObject({ status: "True", reason: "Installed" });
    expect(conditionOf(h.current(), "Progressing")).toMatchObject({ reason: "Installed" });
  });

  it("says so when the read of its state before the install fails, and runs no up", async () => {
    const h = harness();
    h.readyCluster();
    h.put();
    h.engine.readFailWith = unreadable("export");
    await expect(h.reconciler.reconcile("fleet/worker-0001")).rejects.toBe(h.engine.readFailWith);
    expect(h.ups).toHaveLength(0);
    expect(h.current().status).toMatchObject({ phase: "Failed", lastOperation: { result: "failed" } });
    expectReported(h, h.current());
  });

  it("passes any other failure of that read on as before, writing nothing", async () => {
    const h = harness();
    h.readyCluster();
    h.put();
    const before = structuredClone(h.current().status);
    h.engine.readFailWith = new StackOperationError(STACK, "export", "engine", "the backend did not answer");
    await expect(h.reconciler.reconcile("fleet/worker-0001")).rejects.toBe(h.engine.readFailWith);
    expect(h.current().status).toEqual(before);
    expect(h.events).toEqual([]);
  });

  it("fails a certificates renewal the same way: the host keeps its phase, CertificatesCurrent says why", async () => {
    const h = harness();
    h.readyCluster();
    h.put();
    await h.reconciler.reconcile("fleet/worker-0001");
    const renewAfter = h.current().status?.certificates?.renewAfter;
    expect(renewAfter).toBeDefined();
    h.nodes.set("worker-0001", { name: "worker-0001", ready: true, kubeletVersion: "v1.36.3" });
    h.probes.versions = { containerd: "1.7.22", kubelet: "v1.36.3", cni: "v1.5.1" };
    h.advance(Date.parse(renewAfter!) - h.now().getTime() + 1_000);
    h.events.length = 0;
    h.engine.failWith = unreadable("up");
    await expect(h.reconciler.reconcile("fleet/worker-0001")).rejects.toBe(h.engine.failWith);
    expect(h.ups).toHaveLength(2);
    expect(h.current().status).toMatchObject({ phase: "Ready", lastOperation: { result: "failed" } });
    expect(conditionOf(h.current(), "CertificatesCurrent")).toMatchObject({ status: "False", reason: "StackStateUnreadable", message: expect.stringContaining(STACK) });
    expect(h.events.filter((e) => e.type === "Normal").map((e) => e.reason)).toEqual(["RenewingCertificates"]);
    h.events.splice(0, h.events.length, ...h.events.filter((e) => e.type === "Warning"));
    expectReported(h, h.current());
  });

  it("keeps the finalizer of a Machine being deleted, says so, and finishes the deletion once restored", async () => {
    const h = harness();
    h.readyCluster();
    h.put();
    await h.reconciler.reconcile("fleet/worker-0001");
    h.events.length = 0;
    h.machines.set("fleet/worker-0001", { ...h.current(), metadata: { ...h.current().metadata, deletionTimestamp: new Date(), resourceVersion: "deleting" } });
    h.engine.destroyFailWith = unreadable("destroy");
    await expect(h.reconciler.reconcile("fleet/worker-0001")).rejects.toBe(h.engine.destroyFailWith);
    expect(h.engine.destroyed).toEqual([]);
    expect(h.current().metadata.finalizers?.length).toBe(1);
    expect(h.current().status?.phase).toBe("Deleting");
    expectReported(h, h.current());

    h.engine.destroyFailWith = undefined;
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.engine.destroyed).toEqual([STACK]);
    expect(h.current().metadata.finalizers).toEqual([]);
  });
});
