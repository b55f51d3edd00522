import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { childEnv, privateRunDir, sshDestination, sshFailureReason, sshInvocation } from "../../src/host/ssh-client";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-test-only\n-----END OPENSSH PRIVATE KEY-----";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestOnly";

let dir: string;
const fresh = () => (dir = mkdtempSync(path.join(tmpdir(), "kok-ssh-client-test-")));
afterEach(() => rmSync(dir, { recursive: true, force: true }));
const option = (args: string[], name: string) => args.filter((a, i) => args[i - 1] === "-o" && a.startsWith(`${name}=`)).map((a) => a.slice(name.length + 1));

describe("sshInvocation", () => {
  it("pins the host key in a private known_hosts and passes the key as a 0600 file", () => {
    const { args, env } = sshInvocation({ host: "192.0.2.11", port: 2222, user: "ops", hostKey: HOST_KEY, privateKey: KEY }, fresh(), "uptime");
    expect(option(args, "StrictHostKeyChecking")).toEqual(["yes"]);
    expect(option(args, "GlobalKnownHostsFile")).toEqual(["/dev/null"]);
    expect(option(args, "BatchMode")).toEqual(["yes"]);
    expect(option(args, "ConnectTimeout")).toEqual(["10"]);
    expect(option(args, "ConnectionAttempts")).toEqual(["3"]);
    expect(readFileSync(option(args, "UserKnownHostsFile")[0]!, "utf8")).toBe(`[192.0.2.11]:2222 ${HOST_KEY}\n`);
    const keyFile = args[args.indexOf("-i") + 1]!;
    expect(path.dirname(keyFile)).toBe(dir);
    expect(readFileSync(keyFile, "utf8")).toBe(`${KEY}\n`);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(args.slice(-3)).toEqual(["--", "192.0.2.11", "uptime"]);
    expect(args.slice(0, 4)).toEqual(["-l", "ops", "-p", "2222"]);
    expect(JSON.stringify(args)).not.toContain("b3BlbnNzaC1rZXktdjEAAAAA");
    expect(env).toEqual({});
  });

  it("on port 22 also pins the bare host name, as ssh looks it up that way", () => {
    const { args } = sshInvocation({ host: "w1", hostKey: HOST_KEY, privateKey: KEY }, fresh(), "true", { connectTimeoutSeconds: 3, connectionAttempts: 1 });
    expect(readFileSync(option(args, "UserKnownHostsFile")[0]!, "utf8")).toBe(`[w1]:22 ${HOST_KEY}\nw1 ${HOST_KEY}\n`);
    expect(option(args, "ConnectTimeout")).toEqual(["3"]);
    expect(option(args, "ConnectionAttempts")).toEqual(["1"]);
    expect(args.slice(0, 2)).toEqual(["-l", "root"]);
    expect(args.slice(-3, -1)).toEqual(["--", "w1"]);
  });

  it("answers a password through an askpass script; the password is in no argument or variable", () => {
    const password = "it's a 'quoted' pa$$word";
    const { args, env } = sshInvocation({ host: "w1", hostKey: HOST_KEY, password }, fresh(), "true");
    expect(env.SSH_ASKPASS_REQUIRE).toBe("force");
    expect(JSON.stringify({ args, env })).not.toContain("pa$$word");
    expect(statSync(path.join(dir, "password")).mode & 0o777).toBe(0o600);
    expect(execFileSync(env.SSH_ASKPASS!, { encoding: "utf8" })).toBe(password);
    expect(option(args, "PreferredAuthentications")).toEqual(["password,keyboard-interactive"]);
    expect(args).not.toContain("-i");
  });

  it("without a host key accepts any key (the caller opted out of checking)", () => {
    const { args } = sshInvocation({ host: "w1", privateKey: KEY }, fresh(), "true");
    expect(option(args, "StrictHostKeyChecking")).toEqual(["no"]);
    expect(option(args, "UserKnownHostsFile")).toEqual(["/dev/null"]);
  });
});

describe("sshInvocation refuses what ssh could read as an option", () => {
  it("passes the user with -l and the host after --, so neither is parsed as an option", () => {
    const { args } = sshInvocation({ host: "192.0.2.11", user: "ops", hostKey: HOST_KEY, privateKey: KEY }, fresh(), "uptime");
    const dashes = args.indexOf("--");
    expect(args[args.indexOf("-l") + 1]).toBe("ops");
    expect(args.slice(dashes)).toEqual(["--", "192.0.2.11", "uptime"]);
    // Every option (and the user) comes before "--".
    expect(args.slice(0, dashes).filter((a) => a.includes("192.0.2.11") && !a.startsWith("UserKnownHostsFile"))).toEqual([]);
    expect(args.some((a) => a.includes("@"))).toBe(false);
  });

  it.each(["-oProxyCommand=id", "-oProxyCommand=sh -c 'touch /tmp/pwned'", "root@evil", "Root", "1user", "a b", "x".repeat(33), "", "ops\n-oProxyCommand=id"])(
    "refuses the user %j before writing or running anything",
    (user) => {
      expect(() => sshInvocation({ host: "w1", user, hostKey: HOST_KEY, privateKey: KEY }, fresh(), "true")).toThrow(/is not a POSIX user name/);
      expect(readdirSync(dir)).toEqual([]);
    },
  );

  it("accepts POSIX user names up to 32 characters, a trailing $ included", () => {
    for (const user of ["root", "_svc", "ops-1", "machine$", "a".repeat(32)]) {
      expect(sshInvocation({ host: "w1", user, privateKey: KEY }, fresh(), "true").args.slice(0, 2)).toEqual(["-l", user]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(["-oProxyCommand=id", "", "ops@w1", "w1 -oX=y"])("refuses the host %j", (host) => {
    expect(() => sshInvocation({ host, privateKey: KEY }, fresh(), "true")).toThrow(/is not a host name or address/);
  });
});

describe("the files and environment of an ssh run", () => {
  afterEach(() => vi.unstubAllEnvs());

  it("makes each run's private directory under KOK_SSH_DIR (0700), else under the given base", () => {
    const base = fresh();
    vi.stubEnv("KOK_SSH_DIR", path.join(base, "ssh"));
    const run = privateRunDir();
    expect(path.dirname(run)).toBe(path.join(base, "ssh"));
    expect(statSync(run).mode & 0o777).toBe(0o700);
    expect(path.dirname(privateRunDir(path.join(base, "other")))).toBe(path.join(base, "other"));
    expect(existsSync(path.join(base, "ssh"))).toBe(true);
  });

  it("gives children the search path, home and locale, never the passphrase or other credentials", () => {
    vi.stubEnv("PULUMI_CONFIG_PASSPHRASE", "the-engine-passphrase");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "aws-secret");
    vi.stubEnv("KUBECONFIG", "/operator/kubeconfig");
    vi.stubEnv("LC_ALL", "C.UTF-8");
    const env = childEnv({ SSH_ASKPASS: "/x/askpass" });
    expect(env.PATH).toBe(process.env.PATH);
    expect(env.LC_ALL).toBe("C.UTF-8");
    expect(env.SSH_ASKPASS).toBe("/x/askpass");
    expect(env).not.toHaveProperty("PULUMI_CONFIG_PASSPHRASE");
    expect(env).not.toHaveProperty("AWS_SECRET_ACCESS_KEY");
    expect(env).not.toHaveProperty("KUBECONFIG");
    expect(JSON.stringify(env)).not.toContain("the-engine-passphrase");
  });
});

describe("sshFailureReason", () => {
  const c = { host: "w1", port: 2222, hostKey: HOST_KEY };
  it("says plainly that a changed host key is refused", () => {
    expect(sshFailureReason(c, 255, "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.\n", "")).toBe(
      "the host's key does not match the pinned ssh.hostKey (ssh-ed25519); refusing to connect. If the host was reinstalled, update ssh.hostKey from a trusted source.",
    );
  });
  it("marks connection failures and otherwise keeps the output's tail on one line", () => {
    expect(sshFailureReason(c, 255, "ssh: connect to host w1 port 2222: Connection refused\n", "")).toBe("cannot connect: ssh: connect to host w1 port 2222: Connection refused");
    const many = Array.from({ length: 12 }, (_, i) => `line ${i}`).join("\n");
    expect(sshFailureReason(c, 1, many, "")).toBe("line 4 | line 5 | line 6 | line 7 | line 8 | line 9 | line 10 | line 11");
    expect(sshFailureReason(c, 1, "", "only stdout\n")).toBe("only stdout");
  });
  it("names the destination as user@host:port", () => {
    expect(sshDestination({ host: "192.0.2.1" })).toBe("root@192.0.2.1:22");
    expect(sshDestination({ host: "h", port: 2200, user: "ops" })).toBe("ops@h:2200");
  });
});
