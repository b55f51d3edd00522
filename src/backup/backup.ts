/**
 * One backup run (`kok etcd backup`): check the bucket answers, take a snapshot from the first
 * healthy member that gives one (its /health first: member-health.ts), verify it, upload it and its sidecar, prune by the retention rules.
 *
 * Order matters for what a failure leaves behind:
 * - the bucket is checked before the snapshot, so wrong credentials or a missing bucket fail in
 *   a second instead of after a snapshot of a large etcd;
 * - the snapshot goes up before its sidecar: a sidecar marks a complete backup, and retention
 *   counts only complete ones;
 * - pruning comes last and only after both uploads succeeded: a run that failed never deleted
 *   anything.
 */
import { createHash } from "node:crypto";
import { createReadStream, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { S3Client } from "../runtime/s3/client";
import { snapshotSave, snapshotStatus } from "./etcd-tools";
import { memberHealth } from "./member-health";
import { backupStamp, keyPrefix, sidecarKey, snapshotKey, storedBackups } from "./keys";
import type { BackupOptions } from "./options";
import { keysToPrune } from "./retention";
import { isoSeconds, type BackupResult, type Sidecar } from "./sidecar";

/** S3's limit for one PutObject; etcd's recommended maximum database is 8 GiB, its default quota 2 GiB. */
export const MAX_SINGLE_PUT = 5 * 1024 ** 3;

export interface BackupDeps {
  /** The backup's time (its key); tests give the times they want. */
  readonly now: () => Date;
  /** Progress lines (stderr): never a credential. */
  readonly log: (line: string) => void;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(file), hash);
  return hash.digest("hex");
}

export async function runBackup(options: BackupOptions, deps: BackupDeps): Promise<BackupResult> {
  const s3 = new S3Client(options.store);
  await s3.headBucket(options.bucket);

  const time = new Date(Math.floor(deps.now().getTime() / 1000) * 1000);
  const file = join(options.workDir, `${backupStamp(time)}.db`);
  rmSync(file, { force: true });
  try {
    let started = Date.now();
    const failures: string[] = [];
    let from: string | undefined;
    for (const endpoint of options.endpoints) {
      try {
        await memberHealth(endpoint, options);
        await snapshotSave(options.etcdctl, endpoint, options, file, options.timeoutMs);
        from = endpoint;
        break;
      } catch (error) {
        failures.push((error as Error).message);
        rmSync(file, { force: true });
        rmSync(`${file}.part`, { force: true });
      }
    }
    if (!from) throw new Error(failures.length === 1 ? failures[0] : `no member gave a snapshot: ${failures.join("; ")}`);
    const snapshotMs = Date.now() - started;

    // Verified before anything is uploaded: etcdutl opens the file as etcd would.
    const status = await snapshotStatus(options.etcdutl, file, options.timeoutMs);
    const size = statSync(file).size;
    if (size > MAX_SINGLE_PUT) throw new Error(`snapshot from ${from} is ${size} bytes: one S3 PUT takes at most 5 GiB, and multipart uploads are not implemented`);
    if (status.revision < 1 || size === 0) throw new Error(`snapshot from ${from} is empty (revision ${status.revision}, ${size} bytes)`);
    deps.log(`snapshot from ${from}: revision ${status.revision}, ${status.totalKey} keys, ${size} bytes in ${snapshotMs} ms`);

    started = Date.now();
    const key = snapshotKey(options.prefix, time);
    // Keys have a second's resolution: an on-demand Job may start in the scheduled one's second. The
    // later run fails rather than mixing its snapshot with the other's sidecar.
    if (await s3.exists(options.bucket, key)) throw new Error(`s3://${options.bucket}/${key} already exists: another backup ran in the same second`);
    const sha256 = await s3.putFile(options.bucket, key, file);
    const sidecar: Sidecar = { time: isoSeconds(time), revision: status.revision, size, sha256, etcdVersion: status.version, cluster: options.cluster };
    await s3.putBytes(options.bucket, sidecarKey(key), Buffer.from(JSON.stringify(sidecar) + "\n"), "application/json");
    const location = `s3://${options.bucket}/${key}`;
    deps.log(`uploaded ${location} and its sidecar in ${Date.now() - started} ms`);

    const listed = await s3.list(options.bucket, keyPrefix(options.prefix));
    const doomed = keysToPrune(
      storedBackups(
        options.prefix,
        listed.map((o) => o.key),
      ),
      time,
      { count: options.keep, maxAgeMs: options.maxAgeMs },
    );
    for (const old of doomed) await s3.delete(options.bucket, old);
    // Backups, not objects: a half-written one is one backup of one object.
    const pruned = new Set(doomed.map((k) => k.replace(/\.(db|json)$/, ""))).size;
    if (doomed.length) deps.log(`pruned ${pruned} backups (${doomed.length} objects): keep ${options.keep}, max age ${options.maxAgeMs / 3_600_000} h`);

    return { time: sidecar.time, location, revision: status.revision, size, sha256, pruned };
  } finally {
    rmSync(file, { force: true });
  }
}
