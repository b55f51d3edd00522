import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { KnownSecrets, PLATFORM_SCOPE } from "../../src/runtime/known-secrets";
import { createLogger, formatText, logLine, parseLogLevel, type LogLine } from "../../src/runtime/logger";
import { REDACTED } from "../../src/runtime/redact";

const { privateKey: RSA_KEY } = generateKeyPairSync("rsa", { modulusLength: 1024, privateKeyEncoding: { type: "pkcs1", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });

/** A text output as process.stdout is one: it records what was written. */
function output(isTTY: boolean) {
  const written: string[] = [];
  return { isTTY, written, write: (text: string) => written.push(text) };
}

describe("createLogger", () => {
  it("writes JSON lines with the level as a word, an ISO time and the fields, when not on a terminal", () => {
    const out = output(false);
    const log = createLogger({ output: out });
    log.warn("cluster watch failed; restarting", { restartInMs: 2000 });
    expect(out.written).toHaveLength(1);
    expect(out.written[0].endsWith("\n")).toBe(true);
    const line = JSON.parse(out.written[0]) as LogLine;
    expect(line).toEqual({ level: "warn", time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), msg: "cluster watch failed; restarting", restartInMs: 2000 });
  });

  it("writes a human-readable line on a terminal", () => {
    const out = output(true);
    createLogger({ output: out }).error("operator error", { error: "HTTP 500: boom", attempt: 2 });
    expect(out.written).toHaveLength(1);
    expect(() => JSON.parse(out.written[0])).toThrow();
    expect(out.written[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} \x1b\[31mERROR\x1b\[0m operator error error="HTTP 500: boom" attempt=2\n$/);
  });

  it("drops lines below its level, and parses --log-level values naming the choices", () => {
    const lines: LogLine[] = [];
    const log = createLogger({ level: "warn", sink: (l) => lines.push(l) });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    expect(lines.map((l) => [l.level, l.msg])).toEqual([["warn", "w"], ["error", "e"]]);
    expect(log.isLevelEnabled("info")).toBe(false);
    expect(parseLogLevel(" DEBUG ")).toBe("debug");
    expect(() => parseLogLevel("verbose")).toThrow('--log-level: "verbose" is not a log level; use one of debug, info, warn, error');
  });

  it("carries a child's bindings (controller, then object key) into every line", () => {
    const lines: LogLine[] = [];
    const log = createLogger({ level: "debug", sink: (l) => lines.push(l) });
    const cluster = log.child({ controller: "Cluster" });
    cluster.child({ key: "fleet/prod" }).debug("reconciled", { result: "success" });
    cluster.info("queue started");
    expect(lines[0]).toMatchObject({ level: "debug", controller: "Cluster", key: "fleet/prod", msg: "reconciled", result: "success" });
    expect(lines[1]).toMatchObject({ level: "info", controller: "Cluster", msg: "queue started" });
    expect(lines[1]).not.toHaveProperty("key");
  });

  it("maps lines of the older { level, msg, ...fields } shape, unknown levels to info", () => {
    const lines: LogLine[] = [];
    const log = createLogger({ sink: (l) => lines.push(l) });
    logLine(log, { level: "warn", msg: "event not recorded", reason: "Drifted" });
    logLine(log, { level: "loud", msg: "x" });
    expect(lines.map((l) => [l.level, l.msg, l.reason])).toEqual([["warn", "event not recorded", "Drifted"], ["info", "x", undefined]]);
  });
});

describe("createLogger: redaction", () => {
  const passphrase = "platform-passphrase-Zq8x1";
  const tenantPassword = "reconciled";
  const known = new KnownSecrets();
  known.add(PLATFORM_SCOPE, [passphrase]);
  known.add("team-a", [tenantPassword]);
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  const kubeconfig = YAML.stringify({ apiVersion: "v1", kind: "Config", users: [{ name: "admin", user: { "client-key-data": b64(RSA_KEY) } }] });

  function capture(format: "json" | "text") {
    const out = output(false);
    const log = createLogger({ output: out, format, secrets: () => known.for(), messageSecrets: () => known.for(PLATFORM_SCOPE) });
    return { out, log };
  }

  it("redacts known secrets and PEM/base64 blobs from fields, bindings and Errors, in JSON and text", () => {
    for (const format of ["json", "text"] as const) {
      const { out, log } = capture(format);
      log
        .child({ controller: "Machine", key: `fleet/${passphrase}` })
        .error("engine failed", { error: new Error(`pulumi: passphrase ${passphrase} is wrong`), diff: `key: ${RSA_KEY}`, kubeconfig: b64(kubeconfig), tenant: `ssh password ${tenantPassword}` });
      const text = out.written.join("");
      expect(text).not.toContain(passphrase);
      expect(text).not.toContain("BEGIN RSA PRIVATE KEY");
      expect(text).not.toContain(RSA_KEY.split("\n")[1]);
      expect(text).not.toContain(b64(kubeconfig).slice(0, 40));
      expect(text).not.toContain(`ssh password ${tenantPassword}`);
      expect(text).toContain(REDACTED);
      expect(text).toContain("engine failed");
      if (format === "json") {
        const line = JSON.parse(text) as Record<string, unknown>;
        expect(line).toMatchObject({ controller: "Machine", key: `fleet/${REDACTED}`, kubeconfig: REDACTED, tenant: `ssh password ${REDACTED}`, diff: `key: ${REDACTED}\n` });
        expect((line.error as { message: string }).message).toBe(`pulumi: passphrase ${REDACTED} is wrong`);
      }
    }
  });

  it("redacts the platform's secrets and secret shapes from msg, but not words tenants chose", () => {
    const { out, log } = capture("json");
    log.info(`reconciled with ${passphrase} and ${RSA_KEY}`);
    const line = JSON.parse(out.written[0]) as { msg: string };
    expect(line.msg).toBe(`reconciled with ${REDACTED} and ${REDACTED}\n`);
  });

  it("redacts a secret learned after the logger was made", () => {
    const lines: LogLine[] = [];
    const later = new KnownSecrets();
    const log = createLogger({ sink: (l) => lines.push(l), secrets: () => later.for() });
    later.add("team-b", ["learned-later-value"]);
    log.info("x", { stderr: "auth learned-later-value failed" });
    expect(lines[0].stderr).toBe(`auth ${REDACTED} failed`);
  });
});

describe("formatText", () => {
  it("quotes values with spaces and prints stacks on their own lines, without colour off a terminal", () => {
    const text = formatText({ level: "warn", time: "2026-12-05T03:04:05.678Z", msg: "m", a: "plain", b: "two words", n: 3, error: { message: "x", stack: "Error: x\n    at f" } });
    expect(text).toBe('03:04:05.678 WARN  m a=plain b="two words" n=3 error=\n  Error: x\n      at f\n');
  });
});
