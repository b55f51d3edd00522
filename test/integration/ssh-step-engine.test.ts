import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SshStep } from "../../src/components/ssh-step";
import { newTestStack, readStateFile, type TestStack } from "../support/engine";
import { startSshHosts, stopSshHosts, type SshHost } from "../support/sshd-hosts";

const SECRET = "s3cr3t-token-value-7f1c";

/*
 * The step contract every worker step relies on, through the real engine: runs once, re-runs
 * only on its own input changes, pins host keys, keeps secrets out of state and errors.
 */

let hosts: SshHost[];
beforeAll(async () => {
  hosts = await startSshHosts(2, "remote");
});
afterAll(async () => {
  await stopSshHosts(hosts ?? []);
});

/** A step that counts its runs in the host's root and stores what it got on stdin. */
function countingStep(host: SshHost, opts: { trigger: string; hostKey?: string; script?: string }) {
  const counter = path.join(host.root, "runs");
  return new SshStep("count-step", {
    connection: { host: host.ip, port: host.port, user: host.user, privateKey: host.privateKey, hostKey: opts.hostKey ?? host.hostKey },
    create: opts.script ?? `COUNTER=${counter}; echo $(( $(cat "$COUNTER" 2>/dev/null || echo 0) + 1 )) > "$COUNTER"; cat > "$COUNTER.stdin"; echo "ran $(cat "$COUNTER")"`,
    delete: `rm -f ${counter} ${counter}.stdin`,
    stdin: SECRET,
    triggers: [opts.trigger],
  });
}

const runs = (host: SshHost) => Number(readFileSync(path.join(host.root, "runs"), "utf8").trim());

describe("SshStep with the real engine and a real sshd", () => {
  let test: TestStack;
  let trigger = "v1";
  let hostKey: string | undefined;
  let script: string | undefined;

  beforeAll(async () => {
    test = await newTestStack("ssh-step", async () => {
      const step = countingStep(hosts[0], { trigger, hostKey, script });
      return { stdout: step.stdout };
    });
  });
  afterAll(() => test?.dispose());

  it("runs the script once on create, with its stdin", async () => {
    const result = await test.stack.up();
    expect(result.summary.resourceChanges?.create).toBe(2);
    expect(runs(hosts[0])).toBe(1);
    expect(readFileSync(path.join(hosts[0].root, "runs.stdin"), "utf8")).toBe(SECRET);
    expect(result.outputs.stdout.value).toBe("ran 1\n");
  });

  it("changes nothing and runs nothing on a second up", async () => {
    const preview = await test.stack.preview();
    expect(preview.changeSummary).toEqual({ same: 2 });
    const result = await test.stack.up();
    expect(result.summary.resourceChanges).toEqual({ same: 2 });
    expect(runs(hosts[0])).toBe(1);
  });

  it("re-runs the script when a trigger changes", async () => {
    trigger = "v2";
    const result = await test.stack.up();
    expect(result.summary.resourceChanges?.update).toBe(1);
    expect(runs(hosts[0])).toBe(2);
  });

  it("keeps the private key and stdin out of the state's plaintext", async () => {
    // The state file as the backend stores it (exportStack() would decrypt the secrets).
    const state = readStateFile(test.backendDir);
    const keyBody = hosts[0].privateKey.split("\n")[1];
    expect(state.includes("count-step"), "the step is in the state").toBe(true);
    // Booleans, not the text: a failing assertion must not print the secret.
    expect(state.includes(SECRET), "stdin in plaintext").toBe(false);
    expect(state.includes(keyBody), "private key in plaintext").toBe(false);
  });

  it("refuses a host whose key is not the pinned one, before running anything", async () => {
    trigger = "v3";
    hostKey = hosts[1].hostKey;
    await expect(test.stack.up()).rejects.toThrow(/step failed on root@127\.0\.0\.\d+:2222 \(exit 255\): the host's key does not match the pinned ssh\.hostKey/);
    expect(runs(hosts[0])).toBe(2);
    hostKey = undefined;
  });

  it("reports a failing script with the step, host and stderr tail, never the script or stdin", async () => {
    trigger = "v4";
    script = `echo "checking disk" >&2; echo "only 1G free on /var/lib, need 10G" >&2; exit 3`;
    let message = "";
    try {
      await test.stack.up();
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/step failed on root@127\.0\.0\.\d+:2222 \(exit 3\): checking disk \| only 1G free on \/var\/lib, need 10G/);
    expect(message.includes(SECRET), "stdin in the error").toBe(false);
    expect(message.includes('echo "checking disk"'), "script text in the error").toBe(false);
    script = undefined;
  });

  it("runs the delete script on destroy", async () => {
    await test.stack.up();
    expect(existsSync(path.join(hosts[0].root, "runs"))).toBe(true);
    await test.stack.destroy();
    expect(existsSync(path.join(hosts[0].root, "runs"))).toBe(false);
  });
});

describe("SshStep's children under the real engine", () => {
  let test: TestStack;
  let sshDir: string;

  beforeAll(async () => {
    sshDir = mkdtempSync(path.join(tmpdir(), "kok-ssh-dir-test-"));
    test = await newTestStack("ssh-step-env", async () => {
      // A local step, as the kubectl steps are: what its shell inherits from the provider.
      const step = new SshStep("env-step", { create: `echo "passphrase=$(env | grep -c '^PULUMI_CONFIG_PASSPHRASE=')"; echo "tmp=$TMPDIR"` });
      return { stdout: step.stdout };
    });
    // As the operator does (src/operator/operator.ts): the engine learns the directory from its environment.
    test.stack.workspace.envVars.KOK_SSH_DIR = sshDir;
  });
  afterAll(async () => {
    await test?.stack.destroy();
    test?.dispose();
    rmSync(sshDir, { recursive: true, force: true });
  });

  it("gives the step's shell neither the engine's passphrase nor a directory outside KOK_SSH_DIR, and removes that directory", async () => {
    const result = await test.stack.up();
    const stdout = String(result.outputs.stdout.value);
    expect(stdout).toContain("passphrase=0\n");
    const tmp = /tmp=(.*)\n/.exec(stdout)?.[1] ?? "";
    expect(tmp.startsWith(`${sshDir}${path.sep}kok-ssh-`), `TMPDIR ${tmp}`).toBe(true);
    expect(readdirSync(sshDir)).toEqual([]);
  });
});
