/**
 * Keeps the node agent running: `kok dev up` starts this small supervisor in the background (its
 * pid file is the agent's), and it runs the agent itself as a child process, restarting it with
 * capped backoff if it dies. The restarted agent cleans up what its predecessor left and starts the
 * Pods again (same addresses). SIGTERM reaches both (one process group): the agent stops its Pods,
 * and the supervisor exits once the agent has.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { extname, join } from "node:path";

const log = (line: string) => console.log(`${new Date().toISOString()} supervisor: ${line}`);

export function runNodeAgentSupervisor(stateDir: string): Promise<number> {
  // The same runtime flags (tsx's loader in development), the entry file next to this one.
  const args = [...process.execArgv, join(__dirname, `entry${extname(__filename)}`), "worker", "--state-dir", stateDir];
  let stopping = false;
  let child: ChildProcess | undefined;
  let failures = 0;
  return new Promise((resolve) => {
    const start = () => {
      const startedAt = Date.now();
      child = spawn(process.execPath, args, { stdio: "inherit" });
      child.once("exit", (code, signal) => {
        child = undefined;
        if (stopping) return resolve(0);
        // A run of a minute or more was healthy: start the backoff over.
        failures = Date.now() - startedAt > 60_000 ? 1 : failures + 1;
        const delay = Math.min(30_000, 1000 * 2 ** (failures - 1));
        log(`node agent exited (${signal ?? `code ${code}`}); restarting in ${delay} ms`);
        setTimeout(() => !stopping && start(), delay);
      });
    };
    const stop = () => {
      stopping = true;
      if (!child) return resolve(0);
      child.kill("SIGTERM");
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    start();
  });
}
