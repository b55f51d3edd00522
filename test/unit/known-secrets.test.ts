import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import YAML from "yaml";
import { privateRunDir } from "../../src/host/ssh-client";
import { credentialsDirOf, resetCredentialsDir, withdrawFromEnvironment } from "../../src/host/credentials-dir";
import { EventRecorder, type EventApi } from "../../src/runtime/events";
import { KnownSecrets, PLATFORM_SCOPE, secretValuesOf, secretValuesOfEnvironment } from "../../src/runtime/known-secrets";
import { REDACTED, redact, redactLogLine } from "../../src/runtime/redact";

const { privateKey: CLIENT_KEY } = generateKeyPairSync("ec", { namedCurve: "P-256", privateKeyEncoding: { type: "sec1", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });

describe("KnownSecrets", () => {
  it("redacts a tenant's values only from what concerns that tenant, and the platform's everywhere", () => {
    const known = new KnownSecrets();
    known.add(PLATFORM_SCOPE, ["platform-passphrase"]);
    known.add("team-a", ["Provisioning", "team-a-password"]);
    // A tenant who picks a word other tenants' status uses cannot blank it out for them.
    expect(redact("phase Provisioning with platform-passphrase", known.for("team-b"))).toBe(`phase Provisioning with ${REDACTED}`);
    expect(redact("team-a-password and platform-passphrase", known.for("team-a"))).toBe(`${REDACTED} and ${REDACTED}`);
    // Log lines: every value known, but never the fixed words of the line.
    const line = redactLogLine({ level: "error", msg: "Provisioning", error: "ssh: team-a-password rejected" }, known.for());
    expect(line).toEqual({ level: "error", msg: "Provisioning", error: `ssh: ${REDACTED} rejected` });
  });

  it("hands out the same list until something new is added, and skips values too short to find", () => {
    const known = new KnownSecrets();
    known.add("ns", ["abc", undefined, "long-enough"]);
    const first = known.for("ns");
    expect(first).toEqual(["long-enough"]);
    known.add("ns", ["long-enough"]);
    expect(known.for("ns")).toBe(first);
    known.add("ns", ["another-one"]);
    expect(known.for("ns")).toEqual(["long-enough", "another-one"]);
  });

  it("takes the credentials out of a kubeconfig as well as the whole text", () => {
    const token = "business-admin-token-0123";
    const kubeconfig = YAML.stringify({
      apiVersion: "v1",
      kind: "Config",
      users: [{ name: "admin", user: { token } }, { name: "cert", user: { "client-key-data": Buffer.from(CLIENT_KEY).toString("base64") } }],
    });
    const values = secretValuesOf({ kubeconfig, privateKey: "ssh-private-key-text" });
    expect(values).toEqual(expect.arrayContaining([kubeconfig, token, Buffer.from(CLIENT_KEY).toString("base64"), CLIENT_KEY, "ssh-private-key-text"]));
    expect(redact(`kubectl: token ${token} expired`, values)).toBe(`kubectl: token ${REDACTED} expired`);
  });

  it("finds the credentials among the operator's environment", () => {
    expect(secretValuesOfEnvironment({ PULUMI_CONFIG_PASSPHRASE: "p", AWS_SECRET_ACCESS_KEY: "a", PULUMI_ACCESS_TOKEN: "t", PATH: "/bin", HOME: "/root" }).sort()).toEqual(["a", "p", "t"]);
  });

  it("finds the object stores' credentials a state backend reads (state-backend.ts), not their names or places", () => {
    const env = {
      AWS_ACCESS_KEY_ID: "id",
      AWS_SECRET_ACCESS_KEY: "s3",
      AWS_SESSION_TOKEN: "st",
      AZURE_STORAGE_ACCOUNT: "account-name",
      AZURE_STORAGE_KEY: "az",
      AZURE_STORAGE_SAS_TOKEN: "sas",
      GOOGLE_CREDENTIALS: "gcp",
      GOOGLE_APPLICATION_CREDENTIALS: "/var/run/gcp.json",
      AWS_REGION: "us-east-1",
    };
    expect(secretValuesOfEnvironment(env).sort()).toEqual(["az", "gcp", "id", "s3", "sas", "st"]);
  });

  it("reads a passphrase given as a file, so the file's content is redacted, not only its path", () => {
    const files: Record<string, string> = { "/run/secrets/passphrase": "correct-horse-battery\n" };
    const read = (p: string) => {
      if (!(p in files)) throw new Error(`ENOENT: ${p}`);
      return files[p]!;
    };
    const values = secretValuesOfEnvironment({ PULUMI_CONFIG_PASSPHRASE_FILE: "/run/secrets/passphrase", OTHER_TOKEN_FILE: "/missing" }, read);
    expect(values).toContain("correct-horse-battery");
    expect(redact("decrypting with correct-horse-battery failed", values)).toBe(`decrypting with ${REDACTED} failed`);
  });

  it("lets the EventRecorder redact by the namespace of the object the Event is about", async () => {
    const known = new KnownSecrets();
    known.add("team-a", ["team-a-password"]);
    const messages: string[] = [];
    const api = { createNamespacedEvent: async ({ body }: { body: { message: string } }) => (messages.push(body.message), body) } as unknown as EventApi;
    const recorder = new EventRecorder({ api, instance: "test", secrets: (ns) => known.for(ns) });
    await recorder.warning({ kind: "Machine", metadata: { namespace: "team-a", name: "m" } }, "X", "ssh: team-a-password rejected");
    await recorder.warning({ kind: "Machine", metadata: { namespace: "team-b", name: "m" } }, "X", "team-a-password is also a word here");
    expect(messages).toEqual([`ssh: ${REDACTED} rejected`, "team-a-password is also a word here"]);
  });
});

describe("the operator's credentials directory", () => {
  let root: string;
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("is emptied at start: a key a killed operator left behind does not survive", () => {
    root = mkdtempSync(path.join(tmpdir(), "kok-credentials-test-"));
    const dir = credentialsDirOf(path.join(root, "work"));
    // What a SIGKILL mid-run leaves: a run directory with the key inside.
    const run = privateRunDir(dir);
    writeFileSync(path.join(run, "key"), "-----BEGIN OPENSSH PRIVATE KEY-----\n", { mode: 0o600 });
    mkdirSync(path.join(dir, "stray"), { recursive: true });
    expect(resetCredentialsDir(dir)).toBe(dir);
    expect(readdirSync(dir)).toEqual([]);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it("creates the directory 0700 when it is not there", () => {
    root = mkdtempSync(path.join(tmpdir(), "kok-credentials-test-"));
    const dir = resetCredentialsDir(credentialsDirOf(path.join(root, "fresh")));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });
});

describe("withdrawFromEnvironment", () => {
  it("takes the passphrase out of the environment children inherit and returns it", () => {
    const env: NodeJS.ProcessEnv = { PULUMI_CONFIG_PASSPHRASE: "secret-pass", PATH: "/bin" };
    expect(withdrawFromEnvironment(["PULUMI_CONFIG_PASSPHRASE", "ABSENT"], env)).toEqual({ PULUMI_CONFIG_PASSPHRASE: "secret-pass" });
    expect(env).toEqual({ PATH: "/bin" });
  });
});
