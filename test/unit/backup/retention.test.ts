/** Retention of etcd backups (src/backup/retention.ts) and the keys it reads (src/backup/keys.ts). */
import { describe, expect, it } from "vitest";
import { backupStamp, parseBackupStamp, sidecarKey, snapshotKey, storedBackups } from "../../../src/backup/keys";
import { keysToPrune } from "../../../src/backup/retention";

const HOUR = 3_600_000;
const NOW = new Date("2026-12-04T06:00:00Z");
const ago = (hours: number) => new Date(NOW.getTime() - hours * HOUR);
const both = (prefix: string, time: Date) => [snapshotKey(prefix, time), sidecarKey(snapshotKey(prefix, time))];
const prune = (keys: string[], policy = { count: 3, maxAgeMs: 168 * HOUR }, prefix = "p") => keysToPrune(storedBackups(prefix, keys), NOW, policy);

describe("backup keys", () => {
  it("write the UTC time with '-' for ':' and read it back", () => {
    expect(backupStamp(new Date("2026-12-04T06:00:00.789Z"))).toBe("2026-12-04T06-00-00Z");
    expect(snapshotKey("team/prod", NOW)).toBe("team/prod/2026-12-04T06-00-00Z.db");
    expect(snapshotKey("", NOW)).toBe("2026-12-04T06-00-00Z.db");
    expect(sidecarKey("a/2026-12-04T06-00-00Z.db")).toBe("a/2026-12-04T06-00-00Z.json");
    expect(() => sidecarKey("a/b.json")).toThrow(/ends with \.db/);
    expect(parseBackupStamp("2026-12-04T06-00-00Z")).toEqual(NOW);
  });

  it.each(["2026-02-30T00-00-00Z", "2026-12-04T06:00:00Z", "2026-12-04T24-00-00Z", "x2026-12-04T06-00-00Z", "2026-12-04T06-00-00.000Z", ""])("%j is not a stamp", (text) => {
    expect(parseBackupStamp(text)).toBeUndefined();
  });

  it("groups a prefix's snapshots and sidecars by time, newest first, ignoring anything else under it", () => {
    const keys = [...both("p", ago(2)), snapshotKey("p", ago(1)), "p/README", "p/sub/2026-12-04T05-00-00Z.db", "other/2026-12-04T05-00-00Z.db", "p/2026-12-04T05-00-00Z.txt", "p2/2026-12-04T05-00-00Z.db"];
    expect(storedBackups("p", keys)).toEqual([
      { stamp: backupStamp(ago(1)), time: ago(1), snapshot: snapshotKey("p", ago(1)) },
      { stamp: backupStamp(ago(2)), time: ago(2), snapshot: snapshotKey("p", ago(2)), sidecar: sidecarKey(snapshotKey("p", ago(2))) },
    ]);
  });
});

describe("retention", () => {
  it("keeps the newest `count` complete backups, the new one included, and prunes the rest sidecar first", () => {
    const keys = [...both("p", NOW), ...both("p", ago(6)), ...both("p", ago(12)), ...both("p", ago(18)), ...both("p", ago(24))];
    expect(prune(keys)).toEqual([sidecarKey(snapshotKey("p", ago(18))), snapshotKey("p", ago(18)), sidecarKey(snapshotKey("p", ago(24))), snapshotKey("p", ago(24))]);
  });

  it("prunes by age whatever the count, measured from the new backup", () => {
    const keys = [...both("p", NOW), ...both("p", ago(100)), ...both("p", ago(168)), ...both("p", ago(169))];
    expect(prune(keys, { count: 10, maxAgeMs: 168 * HOUR })).toEqual(both("p", ago(169)).reverse());
  });

  it("never prunes the backup just taken, even when the listing does not show it yet or it looks too old", () => {
    expect(prune(both("p", NOW), { count: 1, maxAgeMs: 1 })).toEqual([]);
    // Not listed yet: it still counts as kept, so count 1 prunes every older one.
    expect(prune([...both("p", ago(1))], { count: 1, maxAgeMs: 168 * HOUR })).toEqual(both("p", ago(1)).reverse());
  });

  it("leaves newer backups alone (another run's, or a clock that was behind)", () => {
    const future = new Date(NOW.getTime() + HOUR);
    expect(prune([...both("p", future), ...both("p", NOW), ...both("p", ago(1))], { count: 1, maxAgeMs: 168 * HOUR })).toEqual(both("p", ago(1)).reverse());
  });

  it("does not count a half-written backup, and removes one only once older than maxAge", () => {
    const keys = [...both("p", NOW), snapshotKey("p", ago(1)), sidecarKey(snapshotKey("p", ago(2))), ...both("p", ago(3)), snapshotKey("p", ago(200))];
    // count 2: NOW and 3h ago are the two complete ones; the halves within age stay, the old half goes.
    expect(prune(keys, { count: 2, maxAgeMs: 168 * HOUR })).toEqual([snapshotKey("p", ago(200))]);
  });

  it("touches nothing outside the prefix's backups", () => {
    const keys = [...both("p", NOW), "p/notes.txt", "p/sub/2020-01-01T00-00-00Z.db", "q/2020-01-01T00-00-00Z.db"];
    expect(prune(keys, { count: 1, maxAgeMs: HOUR })).toEqual([]);
  });

  it.each([
    [{ count: 0, maxAgeMs: HOUR }, /count 0/],
    [{ count: 1.5, maxAgeMs: HOUR }, /count 1.5/],
    [{ count: 1, maxAgeMs: 0 }, /maxAge 0/],
    [{ count: 1, maxAgeMs: Number.NaN }, /maxAge NaN/],
  ])("refuses a policy that would prune everything: %j", (policy, message) => {
    expect(() => prune(both("p", NOW), policy)).toThrow(message);
  });
});
