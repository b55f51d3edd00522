/**
 * spec.etcd.backup and spec.etcd.restore: every bad field named at once, the cron schedule as the
 * CronJob controller reads it, the Go duration, the store's syntax, and the admin policy's endpoint
 * gate against a tenant aiming the backup job (in the masters' namespace) elsewhere.
 */
import { describe, expect, it } from "vitest";
import {
  backupEndpointPolicyProblems,
  clusterPolicyProblems,
  cronScheduleProblem,
  loadAdminPolicy,
  parseGoDuration,
  resolveAdminPolicy,
  resolveClusterSpec,
  SpecValidationError,
  validateClusterSpec,
  type BackupEndpointRule,
  type ClusterSpec,
  type EtcdBackupSpec,
} from "../../src/api/v1alpha1";
import { allCustomResourceDefinitions } from "../../src/api/v1alpha1/crds";
import { minimalSpec } from "../support/specs";

const backup = (s3: Partial<EtcdBackupSpec["store"]["s3"]> = {}, rest: Partial<EtcdBackupSpec> = {}): EtcdBackupSpec => ({
  schedule: "0 */6 * * *",
  retention: { count: 28, maxAge: "168h" },
  store: { s3: { bucket: "kok-backups", prefix: "tenant-a/prod", endpoint: "https://s3.eu-west-1.amazonaws.com", region: "eu-west-1", credentialsSecretRef: { name: "backup-store" }, ...s3 } },
  ...rest,
});
const withEtcd = (etcd: Partial<ClusterSpec["etcd"]>): ClusterSpec => {
  const spec = minimalSpec();
  return { ...spec, etcd: { ...spec.etcd, ...etcd } };
};
const pathsOf = (spec: unknown) => validateClusterSpec(spec).map((p) => p.path).sort();

describe("spec.etcd.backup validation", () => {
  it("accepts a full backup and a restore from the store's bucket, and fills in the defaults", () => {
    const spec = withEtcd({ backup: backup(), restore: { snapshot: "s3://kok-backups/tenant-a/old/2026-12-04T06-00-00Z.db" } });
    expect(validateClusterSpec(spec)).toEqual([]);
    const minimal = withEtcd({ backup: { store: { s3: { bucket: "b-1", prefix: "p", endpoint: "https://s3.example.com/", credentialsSecretRef: { name: "s" } } } } });
    expect(validateClusterSpec(minimal)).toEqual([]);
    expect(resolveClusterSpec(minimal).etcd.backup).toEqual({
      schedule: "0 */6 * * *",
      retention: { count: 28, maxAge: "168h" },
      store: { s3: { bucket: "b-1", prefix: "p", endpoint: "https://s3.example.com", region: "us-east-1", credentialsSecretRef: { name: "s" } } },
    });
    expect(resolveClusterSpec(minimalSpec()).etcd.backup).toBeUndefined();
  });

  it("names every bad field at once", () => {
    const spec = withEtcd({
      backup: backup(
        { bucket: "Bad_Bucket", prefix: "a/../b", endpoint: "ftp://s3.example.com", region: "EU WEST", credentialsSecretRef: { name: "Not A Name" } },
        { schedule: "every day", retention: { count: 0, maxAge: "7d" } },
      ),
      restore: { snapshot: "s3://other-bucket/x/../y.db" },
    });
    expect(pathsOf(spec)).toEqual([
      "spec.etcd.backup.retention.count",
      "spec.etcd.backup.retention.maxAge",
      "spec.etcd.backup.schedule",
      "spec.etcd.backup.store.s3.bucket",
      "spec.etcd.backup.store.s3.credentialsSecretRef.name",
      "spec.etcd.backup.store.s3.endpoint",
      "spec.etcd.backup.store.s3.prefix",
      "spec.etcd.backup.store.s3.region",
      "spec.etcd.restore.snapshot",
    ]);
  });

  it("bounds the retention count to 1-1000 and maxAge to 1h-87600h", () => {
    for (const count of [0, 1001, 2.5]) expect(pathsOf(withEtcd({ backup: backup({}, { retention: { count } }) }))).toEqual(["spec.etcd.backup.retention.count"]);
    for (const count of [1, 1000]) expect(pathsOf(withEtcd({ backup: backup({}, { retention: { count } }) }))).toEqual([]);
    for (const maxAge of ["30m", "87601h", "-1h", "1d", ""]) expect(pathsOf(withEtcd({ backup: backup({}, { retention: { maxAge } }) }))).toEqual(["spec.etcd.backup.retention.maxAge"]);
    for (const maxAge of ["1h", "1h30m", "87600h", "90m"]) expect(pathsOf(withEtcd({ backup: backup({}, { retention: { maxAge } }) }))).toEqual([]);
  });

  it("reads Go durations", () => {
    expect(parseGoDuration("168h")).toBe(168 * 3_600_000);
    expect(parseGoDuration("1h30m")).toBe(90 * 60_000);
    expect(parseGoDuration("1.5h")).toBe(90 * 60_000);
    expect(parseGoDuration("7d")).toBeUndefined();
    expect(parseGoDuration("h")).toBeUndefined();
  });

  it("takes cron schedules the CronJob controller parses, at least 10 minutes apart, in UTC", () => {
    for (const ok of ["0 */6 * * *", "@daily", "@hourly", "*/15 * * * *", "30 2 * * MON-FRI", "0 0 1 JAN ?", "0 3 * * 0"]) expect(cronScheduleProblem(ok)).toBeUndefined();
    const refused: Record<string, string> = {
      "* * * * *": "1 minute apart",
      "0,5 * * * *": "5 minutes apart",
      "0 0 * * * *": "5 fields",
      "0 0 L * *": "no L, W or #",
      "0 0 * * 1#2": "no L, W or #",
      "0 0 15W * *": "no L, W or #",
      "TZ=Europe/Paris 0 0 * * *": "time zone",
      "CRON_TZ=UTC 0 0 * * *": "time zone",
      "0 0 31 2 *": "less than twice",
      "61 * * * *": "not a cron schedule",
      "@reboot": "5 fields",
      "": "5 fields",
    };
    for (const [schedule, reason] of Object.entries(refused)) expect(cronScheduleProblem(schedule), schedule).toContain(reason);
  });

  it("refuses hostile bucket names, prefixes and endpoints", () => {
    const bad = (s3: Partial<EtcdBackupSpec["store"]["s3"]>) => pathsOf(withEtcd({ backup: backup(s3) }));
    for (const bucket of ["ab", "a..b", "192.168.1.1", "xn--bucket", "b-s3alias", "-bucket", "bucket/../x"]) expect(bad({ bucket }), bucket).toEqual(["spec.etcd.backup.store.s3.bucket"]);
    for (const prefix of ["/abs", "a//b", "a/./b", "..", "a b", "a;rm -rf /", "trailing/", "-x --y", "$(id)"]) {
      // A leading dash is a word like any other: the prefix reaches an argument list as --prefix=<value>, never a shell.
      if (prefix === "-x --y") continue;
      expect(bad({ prefix }), prefix).toEqual(["spec.etcd.backup.store.s3.prefix"]);
    }
    for (const endpoint of [
      "https://user:pass@s3.example.com",
      "https://s3.example.com/path",
      "https://s3.example.com?x=1",
      "https://s3.example.com#f",
      "file:///etc/passwd",
      "gopher://s3.example.com",
      "https://S3.Example.com",
      "https://s3.example.com:99999",
      "https://0x7f.1",
      "https://2130706433",
      "https://127.1",
      "https://s3.example.com\n",
    ]) {
      expect(bad({ endpoint }), JSON.stringify(endpoint)).toEqual(["spec.etcd.backup.store.s3.endpoint"]);
    }
  });

  it("ties a restore to the backup store", () => {
    expect(pathsOf(withEtcd({ restore: { snapshot: "s3://kok-backups/a/b.db" } }))).toEqual(["spec.etcd.restore"]);
    const otherBucket = validateClusterSpec(withEtcd({ backup: backup(), restore: { snapshot: "s3://another-tenant/a/b.db" } }));
    expect(otherBucket.map((p) => p.path)).toEqual(["spec.etcd.restore.snapshot"]);
    expect(otherBucket[0].message).toContain("not in spec.etcd.backup.store.s3.bucket");
    for (const snapshot of ["s3://kok-backups/a/b.json", "https://kok-backups/a/b.db", "s3://kok-backups/../b.db", "s3://kok-backups/b.db?x"]) {
      expect(pathsOf(withEtcd({ backup: backup(), restore: { snapshot } })), snapshot).toEqual(["spec.etcd.restore.snapshot"]);
    }
  });
});

describe("allowedBackupEndpoints (admin policy)", () => {
  const rules: BackupEndpointRule[] = [
    { host: "s3.eu-west-1.amazonaws.com" },
    { host: "*.r2.cloudflarestorage.com" },
    { cidr: "10.20.0.0/16", plainHttp: true },
    { host: "minio.storage.svc" },
    { cidr: "0.0.0.0/0" },
    { cidr: "::/0" },
  ];
  const check = (endpoint: string, list = rules) => backupEndpointPolicyProblems(withEtcd({ backup: backup({ endpoint }) }), list);

  it("allows only listed hosts, suffixes and ranges, and http only where an entry says so", () => {
    for (const ok of ["https://s3.eu-west-1.amazonaws.com", "https://acct.r2.cloudflarestorage.com:443", "http://10.20.3.4:9000", "https://minio.storage.svc:9000", "https://203.0.113.7"]) {
      expect(check(ok), ok).toEqual([]);
    }
    const refused = {
      "https://s3.us-east-1.amazonaws.com": "not an allowed backup endpoint",
      "https://r2.cloudflarestorage.com": "not an allowed backup endpoint",
      "https://evil-r2.cloudflarestorage.com.attacker.net": "not an allowed backup endpoint",
      "http://s3.eu-west-1.amazonaws.com": "plain http",
      "http://203.0.113.7": "plain http",
      "https://kubernetes.default.svc": "not an allowed backup endpoint",
    };
    for (const [endpoint, reason] of Object.entries(refused)) {
      const problems = check(endpoint);
      expect(problems.map((p) => [p.path, p.rule]), endpoint).toEqual([["spec.etcd.backup.store.s3.endpoint", "allowedBackupEndpoints"]]);
      expect(problems[0].message, endpoint).toContain(reason);
    }
  });

  it("refuses loopback, link-local, metadata and other special addresses whatever the policy lists", () => {
    for (const endpoint of [
      "http://169.254.169.254",
      "https://169.254.170.2",
      "https://127.0.0.1:2379",
      "https://[::1]",
      "https://[fe80::1]",
      "https://[fd00:ec2::254]",
      "https://100.100.100.200",
      "https://0.0.0.0",
      "https://[::ffff:a9fe:a9fe]",
      "https://224.0.0.1",
      "https://metadata.google.internal",
      "https://localhost:9000",
      "https://api.localhost",
    ]) {
      const problems = check(endpoint, [...rules, { cidr: "0.0.0.0/0", plainHttp: true }, { cidr: "::/0", plainHttp: true }, { host: "metadata.google.internal" }, { host: "localhost" }]);
      expect(problems.map((p) => p.rule), endpoint).toEqual(["allowedBackupEndpoints"]);
      expect(problems[0].message, endpoint).toContain("no policy allows it");
    }
    // The same address written another way is refused before any rule is read.
    expect(check("https://[::ffff:169.254.169.254]", [{ cidr: "::/0" }])[0].message).toContain("write the address in its usual form");
  });

  it("allows nothing by default, and the cluster's policy check reports it", () => {
    const spec = withEtcd({ backup: backup() });
    const problems = clusterPolicyProblems(spec, resolveAdminPolicy());
    expect(problems.map((p) => p.path)).toEqual(["spec.etcd.backup.store.s3.endpoint"]);
    expect(problems[0].message).toContain("none are allowed");
    expect(clusterPolicyProblems(spec, resolveAdminPolicy({ allowedBackupEndpoints: [{ host: "s3.eu-west-1.amazonaws.com" }] }))).toEqual([]);
    expect(clusterPolicyProblems(minimalSpec(), resolveAdminPolicy())).toEqual([]);
  });

  it("checks the policy's own list", () => {
    const text = [
      "allowedBackupEndpoints:",
      "  - { host: s3.example.com, cidr: 10.0.0.0/8 }",
      "  - {}",
      "  - { host: 'Bad Host' }",
      "  - { cidr: 10.0.0.1/8 }",
      "  - { host: 169.254.169.254 }",
      "  - { host: localhost, plainHttp: true }",
      "  - { host: s3.example.com, port: 9000 }",
    ].join("\n");
    let error: unknown;
    try {
      loadAdminPolicy(text, "p.yaml");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SpecValidationError);
    expect((error as SpecValidationError).problems.map((p) => p.path).sort()).toEqual([
      "policy.allowedBackupEndpoints[0]",
      "policy.allowedBackupEndpoints[1]",
      "policy.allowedBackupEndpoints[2].host",
      "policy.allowedBackupEndpoints[3].cidr",
      "policy.allowedBackupEndpoints[4].host",
      "policy.allowedBackupEndpoints[5].host",
      "policy.allowedBackupEndpoints[6].port",
    ]);
    expect(loadAdminPolicy("allowedBackupEndpoints: [{ cidr: 10.88.0.0/16, plainHttp: true }]", "ok.yaml").allowedBackupEndpoints).toEqual([{ cidr: "10.88.0.0/16", plainHttp: true }]);
  });
});

describe("CRD rules of spec.etcd.restore", () => {
  const cluster = allCustomResourceDefinitions()[0] as { spec: { versions: { schema: { openAPIV3Schema: Record<string, any> } }[] } }; // eslint-disable-line @typescript-eslint/no-explicit-any
  const etcd = cluster.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.etcd;
  it("refuse adding or dropping a restore after creation, a restore without a store, and a changed snapshot", () => {
    const rules = (etcd["x-kubernetes-validations"] as { rule: string }[]).map((r) => r.rule);
    expect(rules).toContain("has(self.restore) == has(oldSelf.restore)");
    expect(rules).toContain("!has(self.restore) || has(self.backup)");
    expect(etcd.properties.restore["x-kubernetes-validations"].map((r: { rule: string }) => r.rule)).toEqual(["self == oldSelf"]);
    expect(etcd.properties.backup.properties.store.properties.s3.required).toEqual(["bucket", "prefix", "endpoint", "credentialsSecretRef"]);
  });
});
