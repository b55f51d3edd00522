/**
 * The children the operator and SshStep's provider start (`ssh`, and `kubectl` in the local
 * steps), through the real code paths, with fake `ssh` and `kubectl` first on the PATH that record
 * their arguments and environment: the passphrase never reaches them, the user cannot become an
 * option, and the credential files are gone once the step is over.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runStep } from "../../src/components/ssh-step";
import { drainScript } from "../../src/host/scripts/kubectl";
import { HostProbe } from "../../src/host/host-probe";

const PASSPHRASE = "engine-passphrase-do-not-leak";
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-test-only\n-----END OPENSSH PRIVATE KEY-----\n";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestOnly";
const PROBE_RESULT = '{"observedVersions":{"kubelet":"v1.36.3"},"services":{"containerd":true,"kubelet":true}}';

let root: string;
let record: string;
let credentials: string;

/** A fake tool that writes its arguments (one per line), the key file it was given and its environment into `record`. */
function fakeTool(name: string, body: string): void {
  const file = path.join(root, "bin", name);
  writeFileSync(
    file,
    `#!/bin/bash
printf '%s\\n' "$@" > '${record}/${name}.args'
env > '${record}/${name}.env'
${body}
`,
  );
  chmodSync(file, 0o755);
}

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), "kok-child-test-"));
  record = path.join(root, "record");
  credentials = path.join(root, "work", "ssh");
  mkdirSync(record);
  mkdirSync(path.join(root, "bin"));
  // The key file must exist while ssh runs: record that it did, and where.
  fakeTool("ssh", `key=""; prev=""; for a in "$@"; do [ "$prev" = -i ] && key="$a"; prev="$a"; done
[ -n "$key" ] && { printf '%s' "$key" > '${record}/ssh.keyfile'; cat "$key" > '${record}/ssh.keycontent'; }
echo '${PROBE_RESULT}'`);
  fakeTool("kubectl", `kc=""; prev=""; for a in "$@"; do [ "$prev" = --kubeconfig ] && kc="$a"; prev="$a"; done
printf '%s' "$kc" > '${record}/kubectl.kubeconfig'
case "$*" in *" get node "*) echo node/w1 ;; esac`);
  vi.stubEnv("PATH", `${path.join(root, "bin")}${path.delimiter}${process.env.PATH}`);
  vi.stubEnv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE);
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "aws-secret-do-not-leak");
  vi.stubEnv("KOK_SSH_DIR", credentials);
});
afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(root, { recursive: true, force: true });
});

const recorded = (file: string) => readFileSync(path.join(record, file), "utf8");

function expectCleanSshRun(user: string): void {
  const args = recorded("ssh.args").trimEnd().split("\n");
  expect(args.slice(0, 2)).toEqual(["-l", user]);
  const dashes = args.indexOf("--");
  expect(dashes).toBeGreaterThan(0);
  expect(args[dashes + 1]).toBe("192.0.2.11");
  const env = recorded("ssh.env");
  expect(env).not.toContain("PULUMI_CONFIG_PASSPHRASE");
  expect(env).not.toContain(PASSPHRASE);
  expect(env).not.toContain("aws-secret-do-not-leak");
  // The key was there while ssh ran, inside the private directory, and is gone now.
  const keyFile = recorded("ssh.keyfile");
  expect(recorded("ssh.keycontent")).toBe(KEY);
  expect(keyFile.startsWith(`${credentials}${path.sep}`)).toBe(true);
  expect(existsSync(keyFile)).toBe(false);
  expect(readdirSync(credentials)).toEqual([]);
}

describe("HostProbe's ssh", () => {
  const layout = { installRoot: "/", serviceManager: "process" } as const;

  it("runs without the passphrase in its environment, the user in -l, the host after --, and leaves no key behind", async () => {
    const probe = new HostProbe({ credentialsDir: credentials });
    const result = await probe.probe({ host: "192.0.2.11", user: "ops", hostKey: HOST_KEY, privateKey: KEY }, layout);
    expect(result.observedVersions).toEqual({ kubelet: "v1.36.3" });
    expectCleanSshRun("ops");
  });

  it("refuses an option as the user: ssh never runs", async () => {
    const probe = new HostProbe({ credentialsDir: credentials });
    await expect(probe.probe({ host: "192.0.2.11", user: "-oProxyCommand=touch /tmp/x", hostKey: HOST_KEY, privateKey: KEY }, layout)).rejects.toThrow(/is not a POSIX user name/);
    expect(existsSync(path.join(record, "ssh.args"))).toBe(false);
    expect(readdirSync(credentials)).toEqual([]);
  });
});

describe("SshStep's provider", () => {
  it("runs ssh without the engine's passphrase, with its credentials under KOK_SSH_DIR, removed afterwards", async () => {
    await runStep({ connection: { host: "192.0.2.11", user: "ops", hostKey: HOST_KEY, privateKey: KEY }, create: "true" }, "true");
    expectCleanSshRun("ops");
  });

  it("refuses an option as the user: ssh never runs", async () => {
    await expect(runStep({ connection: { host: "192.0.2.11", user: "-oProxyCommand=id", hostKey: HOST_KEY, privateKey: KEY }, create: "true" }, "true")).rejects.toThrow(
      /is not a POSIX user name/,
    );
    expect(existsSync(path.join(record, "ssh.args"))).toBe(false);
  });

  it("runs the local kubectl steps without the passphrase, their kubeconfig under KOK_SSH_DIR and gone afterwards", async () => {
    const kubeconfig = "apiVersion: v1\nkind: Config\nusers: [{name: a, user: {token: business-admin-token}}]\n";
    await runStep({ create: drainScript("w1", 30), stdin: kubeconfig }, drainScript("w1", 30));
    const env = recorded("kubectl.env");
    expect(env).not.toContain(PASSPHRASE);
    expect(env).not.toContain("aws-secret-do-not-leak");
    const kubeconfigFile = recorded("kubectl.kubeconfig");
    expect(kubeconfigFile.startsWith(`${credentials}${path.sep}`)).toBe(true);
    expect(existsSync(kubeconfigFile)).toBe(false);
    expect(readdirSync(credentials)).toEqual([]);
  });
});
