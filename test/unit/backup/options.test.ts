/** The flags of `kok etcd backup` and `kok etcd restore` (src/backup/options.ts): every bad one named at once. */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backupOptions, bucketProblem, parseGoDuration, prefixProblem, restoreOptions, UsageError } from "../../../src/backup/options";

let dir: string;
let env: NodeJS.ProcessEnv;
let good: Record<string, string>;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "kok-backup-options-"));
  const bin = join(dir, "bin");
  mkdirSync(bin);
  for (const tool of ["etcdctl", "etcdutl"]) {
    writeFileSync(join(bin, tool), "#!/bin/sh\n");
    chmodSync(join(bin, tool), 0o755);
  }
  for (const file of ["ca.crt", "tls.crt", "tls.key"]) writeFileSync(join(dir, file), "x");
  mkdirSync(join(dir, "work"));
  env = { PATH: bin, AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
  good = {
    cluster: "team-a/prod",
    endpoints: "https://prod-etcd-client.kok-team-a-prod-0123456789.svc:2379",
    cacert: join(dir, "ca.crt"),
    cert: join(dir, "tls.crt"),
    key: join(dir, "tls.key"),
    s3Endpoint: "https://s3.example.com",
    region: "eu-west-1",
    bucket: "team-a-backups",
    prefix: "etcd/prod",
    keep: "28",
    maxAge: "168h",
    workDir: join(dir, "work"),
    resultFile: "/dev/termination-log",
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problems(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof UsageError) return [...error.problems];
    throw error;
  }
  return [];
}

describe("kok etcd backup flags", () => {
  it("accept the CronJob's flags, finding etcdctl and etcdutl on PATH", () => {
    const options = backupOptions(good, env);
    expect(options).toMatchObject({ keep: 28, maxAgeMs: 168 * 3_600_000, prefix: "etcd/prod", etcdctl: join(dir, "bin", "etcdctl"), etcdutl: join(dir, "bin", "etcdutl"), timeoutMs: 600_000 });
    expect(options.endpoints).toEqual([good.endpoints]);
    expect(options.store).toEqual({ endpoint: "https://s3.example.com", region: "eu-west-1", credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: undefined } });
  });

  it("check a store's private CA from AWS_CA_BUNDLE", () => {
    expect(backupOptions(good, { ...env, AWS_CA_BUNDLE: join(dir, "ca.crt") }).store.ca?.toString()).toBe("x");
    expect(problems(() => backupOptions(good, { ...env, AWS_CA_BUNDLE: join(dir, "nope.pem") }))).toEqual([`AWS_CA_BUNDLE "${join(dir, "nope.pem")}": cannot read it (ENOENT)`]);
  });

  it("take the tools from a flag or KOK_ETCDCTL/KOK_ETCDUTL before PATH", () => {
    const tool = join(dir, "bin", "etcdctl");
    expect(backupOptions({ ...good, etcdutl: tool }, { ...env, PATH: "", KOK_ETCDCTL: tool })).toMatchObject({ etcdctl: tool, etcdutl: tool });
  });

  it("name every bad flag and the missing credentials in one error", () => {
    const bad = {
      cluster: "team-a",
      endpoints: "http://etcd:2379,https://etcd",
      cacert: join(dir, "missing.crt"),
      cert: dir,
      s3Endpoint: "https://user:pw@s3.example.com/path",
      region: "Europe West",
      bucket: "Team_A",
      prefix: "/etcd/../x",
      keep: "0",
      maxAge: "7d",
      workDir: join(dir, "ca.crt"),
      resultFile: "termination-log",
      timeout: "forever",
    };
    const found = problems(() => backupOptions(bad, { PATH: join(dir, "nowhere") }));
    expect(found).toEqual([
      '--cluster "team-a": want <namespace>/<name>',
      '--endpoints "http://etcd:2379": want https://host:port (etcd\'s client port, TLS with a client certificate)',
      '--endpoints "https://etcd": want https://host:port (etcd\'s client port, TLS with a client certificate)',
      "--key is required",
      `--cacert "${join(dir, "missing.crt")}": cannot read it (ENOENT)`,
      `--cert "${dir}": not a regular file`,
      '--s3-endpoint "https://user:pw@s3.example.com/path": no credentials in the URL (they come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)',
      '--region "Europe West": want a region name such as us-east-1',
      "AWS_ACCESS_KEY_ID is not set (the store Secret's accessKeyId)",
      "AWS_SECRET_ACCESS_KEY is not set (the store Secret's secretAccessKey)",
      '--bucket "Team_A": want 3 to 63 characters of a-z, 0-9, \'.\' and \'-\', starting and ending with a letter or digit',
      "--prefix \"/etcd/../x\": no leading or trailing '/'",
      '--keep "0": want an integer from 1 to 1000',
      '--max-age "7d": want a duration of at least 1m, such as 168h',
      `--work-dir "${join(dir, "ca.crt")}": not a directory`,
      '--result-file "termination-log": want an absolute path',
      "etcdctl: etcdctl not found on PATH (give --etcdctl or KOK_ETCDCTL)",
      "etcdutl: etcdutl not found on PATH (give --etcdutl or KOK_ETCDUTL)",
      '--timeout "forever": want a duration of at least 1s, such as 10m',
    ]);
  });

  it("name every missing flag", () => {
    expect(problems(() => backupOptions({}, env))).toEqual(
      ["cluster", "endpoints", "cacert", "cert", "key", "s3-endpoint", "region", "bucket", "keep", "max-age", "work-dir"].map((f) => `--${f} is required`),
    );
  });

  it.each([
    ["1001", false],
    ["1000", true],
    ["1", true],
    ["2.5", false],
    ["-1", false],
    ["1e3", false],
  ])("--keep %s accepted: %s", (keep, ok) => {
    expect(problems(() => backupOptions({ ...good, keep }, env)).length === 0).toBe(ok);
  });
});

describe("kok etcd restore flags", () => {
  const member = {
    s3Endpoint: "https://s3.example.com",
    region: "eu-west-1",
    dataDir: "/var/lib/etcd/prod-etcd-0",
    name: "prod-etcd-0",
    initialCluster: "prod-etcd-0=https://prod-etcd-0.prod-etcd-peer:2380,prod-etcd-1=https://prod-etcd-1.prod-etcd-peer:2380",
    initialClusterToken: "prod-restored",
    initialAdvertisePeerUrls: "https://prod-etcd-0.prod-etcd-peer:2380",
  };

  it("accept an init container's flags", () => {
    expect(restoreOptions({ ...member, snapshot: "s3://team-a-backups/etcd/prod/2026-12-04T06-00-00Z.db" }, env)).toMatchObject({
      bucket: "team-a-backups",
      key: "etcd/prod/2026-12-04T06-00-00Z.db",
      name: "prod-etcd-0",
      etcdutl: join(dir, "bin", "etcdutl"),
    });
  });

  it.each([
    ["s3://team-a-backups/etcd/../../other-bucket/x.db", "key: no empty, '.' or '..' segments"],
    ["s3://team-a-backups//x.db", "key: no leading or trailing '/'"],
    ["s3://team-a-backups/x.json", "the key ends with .db"],
    ["s3://team-a-backups/.db", "the key ends with .db"],
    ["https://team-a-backups/x.db", "want s3://<bucket>/<key>"],
    ["s3://169.254.169.254/x.db", "a bucket name is not an IP address"],
  ])("refuse --snapshot %s", (snapshot, problem) => {
    expect(problems(() => restoreOptions({ ...member, snapshot }, env))).toEqual([`--snapshot ${JSON.stringify(snapshot)}: ${problem}`]);
  });

  it("name every bad or missing flag at once", () => {
    const found = problems(() => restoreOptions({ dataDir: "data", name: "m 0", initialCluster: "a=https://a:2380,b", initialAdvertisePeerUrls: "a:2380" }, {}));
    expect(found).toEqual([
      "--snapshot is required",
      "--s3-endpoint is required",
      "--region is required",
      "AWS_ACCESS_KEY_ID is not set (the store Secret's accessKeyId)",
      "AWS_SECRET_ACCESS_KEY is not set (the store Secret's secretAccessKey)",
      '--data-dir "data": want an absolute path',
      "--name \"m 0\": want the member's name (letters, digits, '-', '_', '.')",
      '--initial-cluster "a=https://a:2380,b": want name=https://peer:2380,... (one entry per member)',
      "--initial-cluster-token is required",
      '--initial-advertise-peer-urls "a:2380": want peer URLs such as https://host:2380',
      "etcdutl: etcdutl not found on PATH (give --etcdutl or KOK_ETCDUTL)",
    ]);
  });

  it("want the member itself in --initial-cluster", () => {
    expect(problems(() => restoreOptions({ ...member, name: "prod-etcd-2", snapshot: "s3://b-1/x.db" }, env))).toEqual([`--initial-cluster ${JSON.stringify(member.initialCluster)}: no entry for --name prod-etcd-2`]);
  });
});

describe("value syntax", () => {
  it.each([
    ["168h", 168 * 3_600_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["90s", 90_000],
    ["500ms", 500],
    ["7d", undefined],
    ["", undefined],
    ["h", undefined],
    ["-1h", undefined],
    ["1h ", undefined],
  ])("Go duration %j → %s ms", (text, ms) => {
    expect(parseGoDuration(text)).toBe(ms);
  });

  it.each([
    ["abc", undefined],
    ["my.bucket-1", undefined],
    ["ab", "want"],
    ["a..b", "no '..'"],
    ["192.168.0.1", "not an IP address"],
    ["-abc", "want"],
    ["ABC", "want"],
  ])("bucket %j", (bucket, problem) => {
    const found = bucketProblem(bucket);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toContain(problem);
  });

  it.each([
    ["", undefined],
    ["etcd/prod", undefined],
    ["etcd/", "trailing"],
    ["a//b", "empty"],
    ["a/./b", "'.'"],
    ["a\nb", "control"],
    ["x".repeat(513), "512"],
  ])("prefix %j", (prefix, problem) => {
    const found = prefixProblem(prefix);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toContain(problem);
  });
});
