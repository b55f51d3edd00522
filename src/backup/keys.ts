/**
 * Where a backup lives in the bucket: `<prefix>/<UTC time>.db` and its sidecar `<same>.json`, the
 * time written `2026-12-04T06-00-00Z` (ISO 8601 with `-` for `:`, which S3 keys and shells take
 * without escaping, and which sorts by time as text). The time is the backup's identity: retention
 * reads it back from the key, never from the object's LastModified, which a copy or a re-upload
 * changes.
 */

export const SNAPSHOT_SUFFIX = ".db";
export const SIDECAR_SUFFIX = ".json";

const STAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})Z$/;

/** `2026-12-04T06-00-00Z` for a time (seconds; milliseconds dropped). */
export function backupStamp(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, "Z").replace(/:/g, "-");
}

/** The time of a stamp, or undefined when the text is not one (or names no real instant). */
export function parseBackupStamp(stamp: string): Date | undefined {
  const m = STAMP.exec(stamp);
  if (!m) return undefined;
  const time = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
  // `2026-02-30` parses to March 2nd in some engines and NaN in others: only a round trip is a stamp.
  return Number.isNaN(time.getTime()) || backupStamp(time) !== stamp ? undefined : time;
}

/** `<prefix>/` (or "" for the bucket's root): what the backups' keys start with. */
export function keyPrefix(prefix: string): string {
  return prefix ? `${prefix}/` : "";
}

export function snapshotKey(prefix: string, time: Date): string {
  return `${keyPrefix(prefix)}${backupStamp(time)}${SNAPSHOT_SUFFIX}`;
}

/** The sidecar of a snapshot key: `….db` → `….json`. */
export function sidecarKey(snapshot: string): string {
  if (!snapshot.endsWith(SNAPSHOT_SUFFIX)) throw new Error(`${snapshot}: a snapshot key ends with ${SNAPSHOT_SUFFIX}`);
  return snapshot.slice(0, -SNAPSHOT_SUFFIX.length) + SIDECAR_SUFFIX;
}

/** One backup as found in the bucket: its time and which of its two objects exist. */
export interface StoredBackup {
  readonly time: Date;
  readonly stamp: string;
  readonly snapshot?: string;
  readonly sidecar?: string;
}

/**
 * Groups the keys directly under `prefix` that are backups (`<stamp>.db`, `<stamp>.json`) by time,
 * newest first. Anything else under the prefix (another tool's objects, a deeper "folder") is not
 * a backup and is never returned, so retention cannot delete it.
 */
export function storedBackups(prefix: string, keys: readonly string[]): StoredBackup[] {
  const head = keyPrefix(prefix);
  const byStamp = new Map<string, { time: Date; snapshot?: string; sidecar?: string }>();
  for (const key of keys) {
    if (!key.startsWith(head)) continue;
    const name = key.slice(head.length);
    const suffix = name.endsWith(SNAPSHOT_SUFFIX) ? SNAPSHOT_SUFFIX : name.endsWith(SIDECAR_SUFFIX) ? SIDECAR_SUFFIX : undefined;
    if (!suffix) continue;
    const stamp = name.slice(0, -suffix.length);
    const time = parseBackupStamp(stamp);
    if (!time) continue;
    const entry = byStamp.get(stamp) ?? { time };
    if (suffix === SNAPSHOT_SUFFIX) entry.snapshot = key;
    else entry.sidecar = key;
    byStamp.set(stamp, entry);
  }
  return [...byStamp]
    .map(([stamp, e]) => ({ stamp, ...e }))
    .sort((a, b) => b.time.getTime() - a.time.getTime());
}
