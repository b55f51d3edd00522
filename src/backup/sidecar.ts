/**
 * The sidecar `<stamp>.json` beside each snapshot, and the one-line result of a backup run. The
 * sidecar is what a restore checks the snapshot against (size, SHA-256, revision), so it is read
 * strictly: a field of the wrong type or shape fails the restore, naming the field.
 */

export interface Sidecar {
  /** The backup's time, ISO 8601 UTC to the second (`2026-12-04T06:00:00Z`). */
  readonly time: string;
  readonly revision: number;
  readonly size: number;
  readonly sha256: string;
  /** The storage version `etcdutl snapshot status` reads from the snapshot (`3.6.0`). */
  readonly etcdVersion: string;
  /** `<namespace>/<name>` of the Cluster. */
  readonly cluster: string;
}

/** What `kok etcd backup` prints as its last line and writes to --result-file (the Job's termination message). */
export interface BackupResult {
  readonly time: string;
  readonly location: string;
  readonly revision: number;
  readonly size: number;
  readonly sha256: string;
  readonly pruned: number;
}

/** The most a sidecar may weigh: ours are ~200 bytes; a bigger object is not one. */
export const MAX_SIDECAR_BYTES = 64 * 1024;

export function isoSeconds(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function parseSidecar(text: string, where: string): Sidecar {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${where}: the sidecar is not JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error(`${where}: the sidecar is not a JSON object`);
  const o = parsed as Record<string, unknown>;
  const problems: string[] = [];
  const str = (f: string, re: RegExp) => (typeof o[f] === "string" && re.test(o[f]) ? (o[f] as string) : (problems.push(f), ""));
  const int = (f: string, min: number) => (Number.isSafeInteger(o[f]) && (o[f] as number) >= min ? (o[f] as number) : (problems.push(f), 0));
  const sidecar: Sidecar = {
    time: str("time", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/),
    revision: int("revision", 1),
    size: int("size", 1),
    sha256: str("sha256", /^[0-9a-f]{64}$/),
    etcdVersion: str("etcdVersion", /^[0-9A-Za-z.+-]{0,64}$/),
    cluster: str("cluster", /^[a-z0-9-]{1,63}\/[a-z0-9-]{1,63}$/),
  };
  if (problems.length) throw new Error(`${where}: the sidecar's ${problems.join(", ")} ${problems.length === 1 ? "is" : "are"} missing or malformed`);
  return sidecar;
}
