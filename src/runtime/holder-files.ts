/**
 * Holder records (fencing.ts) of a `file://` backend: one file per stack beside Pulumi's own
 * `.pulumi/` (`.kube-on-kube/holders/<project>/<stack>.json`), so every replica that mounts the
 * backend sees the same ones. Other backends keep theirs in a Lease (holder-leases.ts).
 *
 * These writes do not go through the operator's write gate (no API call): a record is written only
 * by an operation the fence admitted, and the pruning of orphans asks the fence itself before each
 * removal (holder-pruning.ts).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseHolderRecord, sameHolderRecord, type HolderRecord, type HolderRecords } from "./fencing";

/** The holder records beside a `file://` backend's stacks; undefined for other backends. */
export function holderRecordsFor(backendUrl: string): HolderRecords | undefined {
  if (!backendUrl.startsWith("file://")) return undefined;
  const root = path.join(fileURLToPath(backendUrl.replace(/\?.*$/, "")), ".kube-on-kube", "holders");
  const file = (project: string, stack: string) => path.join(root, project, `${stack}.json`);
  const readText = (f: string) => {
    try {
      return readFileSync(f, "utf8");
    } catch {
      return undefined;
    }
  };
  return {
    read: async (project, stack) => parseHolderRecord(readText(file(project, stack))),
    async write(project, stack, record) {
      mkdirSync(path.join(root, project), { recursive: true });
      // Written whole then renamed: a reader never sees half a record.
      const tmp = `${file(project, stack)}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(record));
      renameSync(tmp, file(project, stack));
    },
    async remove(project, stack, expected) {
      // Only this process writes records while it leads, and the caller holds the stack (the
      // runner's per-stack mutex): nothing replaces the file between this read and the removal.
      if (expected && !sameHolderRecord(parseHolderRecord(readText(file(project, stack))), expected)) return;
      rmSync(file(project, stack), { force: true });
    },
    async held(project) {
      let names: string[];
      try {
        names = readdirSync(path.join(root, project));
      } catch {
        return new Map();
      }
      const held = new Map<string, HolderRecord>();
      for (const name of names.filter((n) => n.endsWith(".json"))) {
        const record = parseHolderRecord(readText(path.join(root, project, name)));
        if (record) held.set(name.slice(0, -".json".length), record);
      }
      return held;
    },
  };
}
