/**
 * One member's restore (`kok etcd restore`, the init container of each etcd member of a Cluster
 * created with `spec.etcd.restore`): download the snapshot and its sidecar, check the size and
 * SHA-256 against the sidecar and the revision with `etcdutl snapshot status`, then `etcdutl
 * snapshot restore` into the member's data dir.
 *
 * Idempotent: a data dir that already has `member/` is left alone (the init container runs again
 * at every Pod start, and after the first start that directory is etcd's live data). The restore
 * works in `<data dir>/.kok-restore/` on the same volume and moves `member/` into place with one
 * rename, so a run killed half-way leaves no `member/` and the next start does it again.
 */
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { S3Client } from "../runtime/s3/client";
import { sha256File } from "./backup";
import { snapshotRestore, snapshotStatus } from "./etcd-tools";
import { sidecarKey } from "./keys";
import type { RestoreOptions } from "./options";
import { MAX_SIDECAR_BYTES, parseSidecar } from "./sidecar";

export interface RestoreResult {
  /** false: the data dir already had a member; nothing was done. */
  readonly restored: boolean;
  readonly snapshot: string;
  readonly dataDir: string;
  readonly revision?: number;
  readonly sha256?: string;
}

export const SCRATCH_DIR = ".kok-restore";

export async function runRestore(options: RestoreOptions, log: (line: string) => void): Promise<RestoreResult> {
  const snapshot = `s3://${options.bucket}/${options.key}`;
  const member = join(options.dataDir, "member");
  if (existsSync(member)) {
    log(`${member} exists: this member has data, nothing to restore`);
    return { restored: false, snapshot, dataDir: options.dataDir };
  }
  if (options.joining) {
    log("ETCD_INITIAL_CLUSTER_STATE is existing: this member joins the running cluster and takes its data from the members, nothing to restore");
    return { restored: false, snapshot, dataDir: options.dataDir };
  }
  const scratch = join(options.dataDir, SCRATCH_DIR);
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true, mode: 0o700 });
  try {
    const s3 = new S3Client(options.store);
    const sidecarLocation = `s3://${options.bucket}/${sidecarKey(options.key)}`;
    const text = await s3.getBytes(options.bucket, sidecarKey(options.key));
    if (text.length > MAX_SIDECAR_BYTES) throw new Error(`${sidecarLocation}: ${text.length} bytes, not a sidecar`);
    const sidecar = parseSidecar(text.toString("utf8"), sidecarLocation);

    const file = join(scratch, "snapshot.db");
    let started = Date.now();
    // Never more than the sidecar announced: the download lands on the member's volume.
    const size = await s3.getFile(options.bucket, options.key, file, sidecar.size);
    const sha256 = await sha256File(file);
    if (size !== sidecar.size || sha256 !== sidecar.sha256) {
      throw new Error(`${snapshot} does not match its sidecar: ${size} bytes with SHA-256 ${sha256}, the sidecar says ${sidecar.size} bytes with ${sidecar.sha256}; refusing to restore it`);
    }
    const status = await snapshotStatus(options.etcdutl, file, options.timeoutMs).catch((error: Error) => {
      throw new Error(`${snapshot}: ${error.message}; refusing to restore it`);
    });
    if (status.revision !== sidecar.revision) throw new Error(`${snapshot}: revision ${status.revision}, the sidecar says ${sidecar.revision}; refusing to restore it`);
    log(`downloaded ${snapshot} (${size} bytes, revision ${status.revision}, taken ${sidecar.time} from ${sidecar.cluster}) in ${Date.now() - started} ms`);

    started = Date.now();
    const data = join(scratch, "data");
    await snapshotRestore(options.etcdutl, file, data, options, options.timeoutMs).catch((error: Error) => {
      throw new Error(`${snapshot}: ${error.message}; refusing to restore it`);
    });
    if (!statSync(join(data, "member")).isDirectory()) throw new Error(`etcdutl snapshot restore left no member directory in ${data}`);
    renameSync(join(data, "member"), member);
    log(`restored member ${options.name} into ${options.dataDir} in ${Date.now() - started} ms`);
    return { restored: true, snapshot, dataDir: options.dataDir, revision: status.revision, sha256 };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
