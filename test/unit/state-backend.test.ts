import { describe, expect, it } from "vitest";
import { operatorSettings } from "../../src/cli/operator";
import { checkStateBackend, printableBackendUrl, S3_PARAMETERS } from "../../src/runtime/state-backend";
import { DEFAULT_HISTORY_KEEP } from "../../src/runtime/state-history";
import { operatorFlags } from "../support/specs";

const CREDENTIALS = { AWS_ACCESS_KEY_ID: "KOKEXAMPLEKEYID00000", AWS_SECRET_ACCESS_KEY: "example-secret-access-key-value" };

describe("checkStateBackend (--backend-url)", () => {
  it("takes the dev object store's URL: bucket, prefix and parameters", () => {
    const check = checkStateBackend("s3://kok-dev/operator?endpoint=http://127.0.0.1:19000&region=us-east-1&use_path_style=true", CREDENTIALS);
    expect(check.problems).toEqual([]);
    expect(check.notes).toEqual([]);
    expect(check.backend).toEqual({ kind: "s3", bucket: "kok-dev", prefix: "operator", params: { endpoint: "http://127.0.0.1:19000", region: "us-east-1", use_path_style: "true" } });
  });

  it("takes AWS S3 with the region from the environment and credentials from the default chain, saying so", () => {
    const check = checkStateBackend("s3://acme-state", { AWS_REGION: "eu-west-1" });
    expect(check.problems).toEqual([]);
    expect(check.notes.join("\n")).toContain("AWS default chain");
  });

  it("file://, https://, gs:// and azblob:// parse; a relative file path is preflight's to refuse", () => {
    expect(checkStateBackend("file:///var/lib/kok/state").backend).toEqual({ kind: "file", dir: "/var/lib/kok/state" });
    expect(checkStateBackend("file://~/state", {}, "/home/op").backend).toEqual({ kind: "file", dir: "/home/op/state" });
    expect(checkStateBackend("https://api.pulumi.com").backend).toEqual({ kind: "service", url: "https://api.pulumi.com" });
    expect(checkStateBackend("gs://acme-state/kok").backend).toMatchObject({ kind: "gs", bucket: "acme-state", prefix: "kok" });
    expect(checkStateBackend("azblob://state?storage_account=acme").backend).toMatchObject({ kind: "azblob", bucket: "state", params: { storage_account: "acme" } });
  });

  it("names each problem with the flag: scheme, bucket, unknown and malformed parameters, missing region", () => {
    expect(checkStateBackend("kok-dev").problems).toEqual([expect.stringContaining('--backend-url "kok-dev" is not a URL')]);
    expect(checkStateBackend("ftp://host/state").problems).toEqual([expect.stringContaining("unknown scheme ftp://")]);
    expect(checkStateBackend("s3://?region=us-east-1", CREDENTIALS).problems).toEqual([expect.stringContaining("no bucket name: write s3://<bucket>")]);
    expect(checkStateBackend("azblob://", { AZURE_STORAGE_ACCOUNT: "a" }).problems).toEqual([expect.stringContaining("no container name")]);
    const typo = checkStateBackend("s3://b?region=us-east-1&usePathStyle=true", CREDENTIALS).problems;
    expect(typo).toEqual([expect.stringContaining('unknown query parameter "usePathStyle"')]);
    expect(typo[0]).toContain(S3_PARAMETERS.join(", "));
    expect(checkStateBackend("s3://b?region=us-east-1&use_path_style=yes", CREDENTIALS).problems).toEqual([expect.stringContaining("use_path_style=yes must be true or false")]);
    expect(checkStateBackend("s3://b?region=us-east-1&endpoint=127.0.0.1:9000", CREDENTIALS).problems).toEqual([expect.stringContaining("must be a URL with its scheme")]);
    expect(checkStateBackend("s3://b", CREDENTIALS).problems).toEqual([expect.stringContaining("no region: add region=")]);
    expect(checkStateBackend("s3://b?profile=minio", {}).problems).toEqual([]);
    expect(checkStateBackend("gs://b?bogus=1").problems).toEqual([expect.stringContaining('unknown query parameter "bogus"')]);
    expect(checkStateBackend("azblob://c").problems).toEqual([expect.stringContaining("AZURE_STORAGE_ACCOUNT")]);
  });

  it("refuses credentials in the URL without repeating them", () => {
    const secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    for (const url of [`s3://AKIAEXAMPLE:${secret}@b?region=us-east-1`, `s3://b?region=us-east-1&endpoint=http://AKIAEXAMPLE:${secret}@127.0.0.1:9000`]) {
      const { problems } = checkStateBackend(url, CREDENTIALS);
      expect(problems.join("\n")).toMatch(/credentials/);
      expect(problems.join("\n")).not.toContain(secret);
    }
    expect(printableBackendUrl(`s3://id:${secret}@b?region=x`)).toBe("s3://***@b?region=x");
    expect(printableBackendUrl(`s3://b?endpoint=http%3A%2F%2Fid%3A${secret}%40host`)).toBe("s3://b?endpoint=http%3A%2F%2F***%40host");
    expect(printableBackendUrl("s3://b?endpoint=http://127.0.0.1:9000&region=r")).toBe("s3://b?endpoint=http://127.0.0.1:9000&region=r");
  });

  it("refuses half a credential pair; says that a custom endpoint without path style addresses <bucket>.<host>", () => {
    expect(checkStateBackend("s3://b?region=r", { AWS_ACCESS_KEY_ID: "id" }).problems).toEqual([expect.stringContaining("AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY")]);
    const check = checkStateBackend("s3://b?region=r&endpoint=http://minio.local:9000", CREDENTIALS);
    expect(check.problems).toEqual([]);
    expect(check.notes).toEqual([expect.stringContaining("<bucket>.minio.local:9000; MinIO-class stores need use_path_style=true")]);
  });
});

describe("kok operator's --backend-url and --state-history-keep", () => {
  const flags = operatorFlags();

  it("keeps DEFAULT_HISTORY_KEEP updates of the default file backend; 0 keeps all; a negative count is a problem", () => {
    expect(operatorSettings(flags).settings).toMatchObject({ backend: { kind: "file", dir: "/var/lib/kok/state" }, stateHistoryKeep: DEFAULT_HISTORY_KEEP });
    expect(operatorSettings({ ...flags, stateHistoryKeep: "0" })).toMatchObject({ problems: [], settings: { stateHistoryKeep: 0 } });
    expect(operatorSettings({ ...flags, stateHistoryKeep: "-1" }).problems).toEqual(['--state-history-keep "-1" must be a non-negative integer']);
  });

  it("names a bad --backend-url among the other problems, and passes the notes on", () => {
    const bad = operatorSettings({ ...flags, concurrency: "0", backendUrl: "s3://b?region=r&use_path_stlye=true" }, CREDENTIALS);
    expect(bad.problems).toEqual([expect.stringContaining('unknown query parameter "use_path_stlye"'), expect.stringContaining("--concurrency")]);
    const noted = operatorSettings({ ...flags, backendUrl: "s3://b?region=r" }, {});
    expect(noted).toMatchObject({ problems: [], notes: [expect.stringContaining("AWS default chain")], settings: { backend: { kind: "s3", bucket: "b" } } });
  });
});
