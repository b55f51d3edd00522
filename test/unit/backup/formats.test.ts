/**
 * What the backups read from others, strictly: the sidecar (a tenant's bucket holds it), etcdutl's
 * JSON, S3's XML listings and error codes (the endpoint is the tenant's), etcd tools' stderr; and
 * what `kok etcd backup` writes for the operator: one line, never a credential.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseSnapshotStatus, toolFailure } from "../../../src/backup/etcd-tools";
import { parseSidecar } from "../../../src/backup/sidecar";
import { etcdBackupCommand, etcdRestoreCommand } from "../../../src/cli/etcd";
import { parseListPage, parseS3Url, s3ErrorCodeOf } from "../../../src/runtime/s3/client";

const SIDECAR = { time: "2026-12-04T06:00:00Z", revision: 2001, size: 2797600, sha256: "a".repeat(64), etcdVersion: "3.6.0", cluster: "team-a/prod" };

describe("sidecar", () => {
  it("reads ours", () => {
    expect(parseSidecar(JSON.stringify(SIDECAR), "s3://b/k.json")).toEqual(SIDECAR);
  });

  it.each([
    [{ ...SIDECAR, revision: "2001" }, "revision is"],
    [{ ...SIDECAR, size: -1 }, "size is"],
    [{ ...SIDECAR, size: 1.5 }, "size is"],
    [{ ...SIDECAR, sha256: "A".repeat(64) }, "sha256 is"],
    [{ ...SIDECAR, time: "yesterday" }, "time is"],
    [{ ...SIDECAR, cluster: "../other" }, "cluster is"],
    [{ ...SIDECAR, etcdVersion: "<script>" }, "etcdVersion is"],
    [{ time: SIDECAR.time }, "revision, size, sha256, etcdVersion, cluster are"],
  ])("refuses %j naming the field", (sidecar, message) => {
    expect(() => parseSidecar(JSON.stringify(sidecar), "s3://b/k.json")).toThrow(`s3://b/k.json: the sidecar's ${message} missing or malformed`);
  });

  it.each(["", "[]", "null", "{", '"text"'])("refuses %j as not an object", (text) => {
    expect(() => parseSidecar(text, "s3://b/k.json")).toThrow(/s3:\/\/b\/k\.json: the sidecar is not (JSON|a JSON object)/);
  });
});

describe("etcdutl snapshot status", () => {
  it("reads its JSON", () => {
    expect(parseSnapshotStatus('{"hash":3940196453,"revision":2001,"totalKey":2000,"totalSize":2797568,"version":"3.6.0"}\n')).toEqual({
      hash: 3940196453,
      revision: 2001,
      totalKey: 2000,
      totalSize: 2797568,
      version: "3.6.0",
    });
  });

  it.each([
    ['{"hash":1,"revision":"5","totalKey":1,"totalSize":1}', "revision is not"],
    ['{"hash":1,"revision":5,"totalKey":1}', "totalSize is not"],
    ["panic: oops", "not JSON"],
  ])("refuses %j", (text, message) => {
    expect(() => parseSnapshotStatus(text)).toThrow(message);
  });
});

describe("etcd tools' failures", () => {
  it("names the line the tool died with and the cause buried in gRPC's retry log", () => {
    const stderr = `{"level":"warn","error":"rpc error: desc = \\"error reading server preface: remote error: tls: unknown certificate authority\\""}\nError: context deadline exceeded\n`;
    expect(toolFailure(stderr, "exit 1")).toBe("context deadline exceeded (tls: unknown certificate authority)");
    expect(toolFailure("panic: assertion failed: Page expected to be: 3\n\ngoroutine 1 [running]:\nmain.go:30 +0xf2\n", "exit 2")).toBe("panic: assertion failed: Page expected to be: 3");
    expect(toolFailure("", "exit 2")).toBe("exit 2");
  });
});

describe("S3 answers", () => {
  it("reads a ListObjectsV2 page, entities decoded, and its continuation", () => {
    const xml = `<?xml version="1.0"?><ListBucketResult><IsTruncated>true</IsTruncated>
      <Contents><Key>p/a&amp;b.db</Key><Size>12</Size><LastModified>2026-12-04T06:00:01.000Z</LastModified></Contents>
      <Contents><Key>p/&#x41;.json</Key><Size>3</Size><LastModified>2026-12-04T06:00:02.000Z</LastModified></Contents>
      <NextContinuationToken>tok&lt;1&gt;</NextContinuationToken></ListBucketResult>`;
    expect(parseListPage(xml)).toEqual({
      objects: [
        { key: "p/a&b.db", size: 12, lastModified: "2026-12-04T06:00:01.000Z" },
        { key: "p/A.json", size: 3, lastModified: "2026-12-04T06:00:02.000Z" },
      ],
      next: "tok<1>",
    });
    expect(parseListPage("<ListBucketResult><IsTruncated>false</IsTruncated><NextContinuationToken>x</NextContinuationToken></ListBucketResult>")).toEqual({ objects: [], next: undefined });
  });

  it("takes an error code only when it looks like one (the endpoint is the tenant's)", () => {
    expect(s3ErrorCodeOf(404, Buffer.from("<Error><Code>NoSuchKey</Code></Error>"))).toBe("NoSuchKey");
    expect(s3ErrorCodeOf(403, Buffer.from('<Error><Code>{"time":"x","location":"s3://evil"}</Code></Error>'))).toBe("HTTP 403");
    expect(s3ErrorCodeOf(500, Buffer.from("<Error><Code>Bad\nLine</Code></Error>"))).toBe("HTTP 500");
    expect(s3ErrorCodeOf(503, Buffer.alloc(0))).toBe("HTTP 503");
  });

  it("splits s3:// URLs", () => {
    expect(parseS3Url("s3://bucket/a/b.db")).toEqual({ bucket: "bucket", key: "a/b.db" });
    expect(parseS3Url("s3://bucket/")).toBeUndefined();
    expect(parseS3Url("s3://bucket")).toBeUndefined();
  });
});

describe("kok etcd backup's failure line", () => {
  const dir = mkdtempSync(join(tmpdir(), "kok-etcd-result-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

  it("is one line in the result file, exit 2 for bad flags, with the store's secret redacted even from a flag that echoes it", async () => {
    const resultFile = join(dir, "termination-log");
    const out: string[] = [];
    const err: string[] = [];
    const io = { env: { PATH: "", AWS_ACCESS_KEY_ID: "AKIDEXAMPLE1234", AWS_SECRET_ACCESS_KEY: secret }, stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), now: () => new Date() };
    expect(await etcdBackupCommand({ bucket: secret, keep: "many", resultFile }, io)).toBe(2);
    const line = readFileSync(resultFile, "utf8");
    expect(line).toMatch(/^etcd backup failed: bad flags: --cluster is required; .*--keep "many": want an integer from 1 to 1000/);
    expect(line).not.toContain("\n");
    expect(line.length).toBeLessThan(4096);
    expect(line + err.join("")).not.toContain(secret);
    expect(line).toContain("[REDACTED]");
    expect(out).toEqual([]);
  });

  it("is written by restore too", async () => {
    const resultFile = join(dir, "restore-log");
    const io = { env: {}, stdout: () => undefined, stderr: () => undefined, now: () => new Date() };
    expect(await etcdRestoreCommand({ resultFile }, io)).toBe(2);
    expect(readFileSync(resultFile, "utf8")).toMatch(/^etcd restore failed: bad flags: --snapshot is required; /);
  });
});
