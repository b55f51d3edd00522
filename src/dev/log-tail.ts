/** The last lines of a process's log, for error messages that show why it died. */
import { existsSync, readFileSync } from "node:fs";

export function logTail(file: string, lines = 15): string {
  if (!existsSync(file)) return "(no log)";
  return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}
