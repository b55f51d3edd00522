/** What tests ask of /proc about the processes the product left behind. */
import { readdirSync, readFileSync } from "node:fs";

/**
 * Live processes whose command line mentions `text` (a state directory is in every path the dev
 * cluster's processes take), as `pid: command line`; zombies, already gone but not yet reaped by
 * their parent, are left out.
 */
export function processesMentioning(text: string): string[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .flatMap((pid) => {
      try {
        const line = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
        return line.includes(text) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8")) ? [`${pid}: ${line}`] : [];
      } catch {
        return [];
      }
    });
}
