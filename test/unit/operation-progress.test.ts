/**
 * How a running engine operation is told in the `Progressing` condition: the message for each
 * kind of report, and the throttle that keeps a chatty engine from writing status on every event
 * while never losing the latest report or writing after the outcome.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { describeProgress, ProgressReporter, trackOperation } from "../../src/runtime/operation-progress";
import { plainDiagnostic, type OperationProgress } from "../../src/runtime/stack-runner";

const base = { stack: "fleet-dev", operation: "up" } as const;
const queued: OperationProgress = { ...base, phase: "queued", slots: { active: 4, limit: 4 }, counts: {} };
const started: OperationProgress = { ...base, phase: "running", counts: {} };
const running = (create: number, message?: string): OperationProgress => ({ ...base, phase: "running", counts: { create, same: 2 }, lastResource: "x", message });

describe("describeProgress", () => {
  it("says an operation waits for an engine slot, with the slots in use and the flag that sets them", () => {
    expect(describeProgress(queued)).toBe("waiting for an engine slot (4 of 4 in use, --concurrency 4), then pulumi up of stack fleet-dev");
  });

  it("says an operation started, then counts resources done and names the latest provider message", () => {
    expect(describeProgress(started)).toBe("pulumi up of stack fleet-dev: started");
    expect(describeProgress(running(3))).toBe("pulumi up of stack fleet-dev: 5 resources done (create 3, same 2)");
    expect(describeProgress(running(0, "dev-etcd: 0/1 nodes are available: 1 Insufficient cpu."))).toBe(
      "pulumi up of stack fleet-dev: 2 resources done (create 0, same 2); latest: dev-etcd: 0/1 nodes are available: 1 Insufficient cpu.",
    );
  });
});

describe("plainDiagnostic", () => {
  it("removes Pulumi colour tags and ANSI escapes, joins lines and caps the length", () => {
    expect(plainDiagnostic("<{%fg 3%}>[1/2] Waiting for StatefulSet<{%reset%}>\n  \u001b[33mto schedule Pods\u001b[0m\n")).toBe("[1/2] Waiting for StatefulSet to schedule Pods");
    const long = plainDiagnostic("x".repeat(1000));
    expect(long).toHaveLength(300);
    expect(long.endsWith("…")).toBe(true);
  });
});

describe("ProgressReporter", () => {
  let time: number;
  let written: string[];
  let reporter: ProgressReporter;
  beforeEach(() => {
    vi.useFakeTimers();
    time = 0;
    written = [];
    reporter = new ProgressReporter({ now: () => time, minIntervalMs: 10_000, write: async (m) => void written.push(m) });
  });
  afterEach(() => vi.useRealTimers());

  it("writes every phase change at once, then at most one report per interval, the latest one", async () => {
    reporter.onProgress(queued);
    reporter.onProgress(started);
    await reporter.stop().then(() => undefined);
    expect(written).toEqual([describeProgress(queued), describeProgress(started)]);
  });

  it("holds reports back within the interval and writes the latest when the interval ends, even if the engine says nothing more", async () => {
    reporter.onProgress(started);
    time += 1000;
    reporter.onProgress(running(1));
    reporter.onProgress(running(2, "dev-etcd: Unschedulable"));
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([describeProgress(started)]);
    time += 9000;
    await vi.advanceTimersByTimeAsync(9000);
    expect(written).toEqual([describeProgress(started), describeProgress(running(2, "dev-etcd: Unschedulable"))]);
    // The same message again is not a write.
    time += 20_000;
    reporter.onProgress(running(2, "dev-etcd: Unschedulable"));
    await vi.advanceTimersByTimeAsync(20_000);
    expect(written).toHaveLength(2);
  });

  it("writes nothing after stop, and stop waits for a write in flight", async () => {
    let release!: () => void;
    const slow = new ProgressReporter({
      now: () => time,
      write: (m) =>
        new Promise<void>((resolve) => {
          release = () => {
            written.push(m);
            resolve();
          };
        }),
    });
    slow.onProgress(started);
    time += 1000;
    slow.onProgress(running(1));
    let stopped = false;
    const stopping = slow.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    release();
    await stopping;
    slow.onProgress(queued);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(written).toEqual([describeProgress(started)]);
  });

  it("appends what is stuck, writing a change of it at once and nothing when it is unchanged", async () => {
    reporter.onProgress(started);
    reporter.setTroubles(["big-etcd-0 unschedulable: Insufficient cpu"]);
    reporter.setTroubles(["big-etcd-0 unschedulable: Insufficient cpu"]);
    reporter.setTroubles([]);
    await reporter.stop();
    expect(written).toEqual([
      describeProgress(started),
      `${describeProgress(started)}; stuck: big-etcd-0 unschedulable: Insufficient cpu`,
      describeProgress(started),
    ]);
  });

  it("drops a failed write and goes on", async () => {
    let calls = 0;
    const flaky = new ProgressReporter({
      now: () => time,
      write: async (m) => {
        calls++;
        if (calls === 1) throw new Error("conflict");
        written.push(m);
      },
    });
    flaky.onProgress(queued);
    flaky.onProgress(started);
    await flaky.stop();
    expect(written).toEqual([describeProgress(started)]);
  });
});

describe("trackOperation", () => {
  afterEach(() => vi.useRealTimers());

  it("polls what is stuck while the operation runs, one read at a time, and stops polling when it ends", async () => {
    vi.useFakeTimers();
    const written: string[] = [];
    let reads = 0;
    const answers = [["x-0 unschedulable"], ["x-0 unschedulable"], []];
    const tracker = trackOperation({
      now: () => 0,
      write: async (m) => void written.push(m),
      troubles: async () => {
        if (reads === 1) throw new Error("apiserver unavailable");
        return answers[reads++ % answers.length];
      },
      troublesCheckMs: 15_000,
    });
    tracker.onProgress(started);
    await vi.advanceTimersByTimeAsync(15_000);
    await vi.advanceTimersByTimeAsync(15_000);
    await tracker.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(written).toEqual([describeProgress(started), `${describeProgress(started)}; stuck: x-0 unschedulable`]);
  });
});
