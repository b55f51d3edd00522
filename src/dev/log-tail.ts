/** The last lines of a process's log, for error messages that show why it died. */
import { existsSync, readFileSync } from "node:fs";
import { hasExited } from "./processes";

export function logTail(file: string, lines = 15): string {
  if (!existsSync(file)) return "(no log)";
  return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * A wait's `isDead` for a process just started from a pid file: why it died, with its log, once it
 * has exited. It asks `hasExited`, never `runningFromPidFile`: between fork and exec the command
 * line is the parent's, and taking that moment for an exit failed CI twice ("containerd exited",
 * "object store exited", each with an empty log).
 */
export function exitedWithLog(pidFile: string, log: string, what?: string): () => string | undefined {
  const subject = what ? `${what} exited` : "exited";
  return () => (hasExited(pidFile) ? `${subject}; last lines of ${log}:\n${logTail(log)}` : undefined);
}
