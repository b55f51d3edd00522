/**
 * `kok operator` survives the SIGTERM that stops its Pod until the updates in flight drain, even
 * with signal-exit loaded (execa's, which @pulumi/pulumi's Automation API uses): a real process,
 * a real signal. With `process.once` listeners the same child dies of the signal (exit 143 in the Pod).
 */
import { spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(__dirname, "..", "..");

// The child: the operator's wait, then signal-exit registered as execa registers it for each engine
// command it runs (after the wait began: an update starts while the operator runs), then a drain.
const CHILD = `
const { untilStopSignal } = require(${JSON.stringify(join(ROOT, "src", "cli", "stop-signal.ts"))});
untilStopSignal({ onRepeat: (s) => console.log("repeat " + s) }).then(async (signal) => {
  console.log("stopping on " + signal);
  await new Promise((r) => setTimeout(r, 300));
  console.log("drained");
  process.exit(0);
});
const onExit = require(require.resolve("signal-exit", { paths: [require.resolve("execa")] }));
onExit(() => undefined);
// The operator's servers and watches keep its event loop alive; this timer stands in for them.
setInterval(() => undefined, 1000);
console.log("ready");
`;

function run(signals: NodeJS.Signals[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((done, fail) => {
    // node itself, not the tsx CLI: that one is a parent process relaying signals.
    const child = spawn(process.execPath, ["--import", "tsx", "-e", CHILD], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    let sent = 0;
    // The first signal once it waits, the next once it is stopping (two at once may arrive in either order).
    const waitFor = ["ready", "stopping on"];
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (sent < signals.length && out.includes(waitFor[sent])) child.kill(signals[sent++]);
    });
    child.on("error", fail);
    child.on("exit", (code, signal) => done({ code, signal, out }));
  });
}

describe("untilStopSignal", () => {
  it("lets the process drain after SIGTERM though signal-exit is loaded", async () => {
    const result = await run(["SIGTERM"]);
    expect(result).toMatchObject({ code: 0, signal: null });
    expect(result.out).toContain("stopping on SIGTERM");
    expect(result.out).toContain("drained");
  });

  it("ignores a second signal while draining", async () => {
    const result = await run(["SIGINT", "SIGTERM"]);
    expect(result).toMatchObject({ code: 0, signal: null });
    expect(result.out).toContain("stopping on SIGINT");
    expect(result.out).toContain("repeat SIGTERM");
    expect(result.out).toContain("drained");
  });
});
