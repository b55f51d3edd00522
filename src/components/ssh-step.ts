/**
 * `SshStep`: a host step run by the OpenSSH client (`ssh`, Debian's openssh-client) from a
 * Pulumi dynamic provider: the stand-in for @pulumi/command on machines where the command
 * provider plugin cannot be installed (see docs/workers.md). Same contract as `remote.Command`
 * with `update` set: `create` runs on creation, `update` (or `create`) when any input changes,
 * `delete` on deletion; a change never replaces the resource, so `delete` runs only when the step
 * really goes away.
 *
 * The host key is always checked against `connection.hostKey` (StrictHostKeyChecking=yes with a
 * known_hosts file holding only that key); without a host key the caller must have opted out.
 * Credentials go to a 0600 file in a private directory (under `$KOK_SSH_DIR`, which the operator
 * points at its work volume and empties at start) that is removed after the run. Without
 * `connection` the script runs locally with bash (the kubectl steps), with that directory as its
 * TMPDIR so the kubeconfig it writes goes the same way. Neither `ssh` nor bash inherits the
 * provider's environment (the engine's, passphrase included): see `childEnv`.
 */
import * as pulumi from "@pulumi/pulumi";
import { childEnv, privateRunDir, sshDestination, sshFailureReason, sshInvocation, type SshConnection } from "../host/ssh-client";

export type { SshConnection } from "../host/ssh-client";

/* eslint-disable @typescript-eslint/no-require-imports -- the provider below is serialized into
   the state and run by the dynamic-provider plugin: it must load its modules when it runs. */

export interface SshStepArgs {
  readonly connection?: pulumi.Input<{ readonly [K in keyof SshConnection]: pulumi.Input<SshConnection[K]> }>;
  readonly create: pulumi.Input<string>;
  readonly update?: pulumi.Input<string>;
  readonly delete?: pulumi.Input<string>;
  readonly stdin?: pulumi.Input<string>;
  readonly triggers?: pulumi.Input<unknown[]>;
  /**
   * `stdin` is a credential (a kubeconfig), not the step's content: a new one is stored for the
   * next run (and the delete script) without running the step again — a rotated CA or client
   * certificate is no reason to drain a node.
   */
  readonly stdinIsCredential?: pulumi.Input<boolean>;
  /** Kill the script after this many seconds. Default 900. */
  readonly timeoutSeconds?: pulumi.Input<number>;
}

interface StepInputs {
  connection?: SshConnection;
  create: string;
  update?: string;
  delete?: string;
  stdin?: string;
  triggers?: unknown[];
  stdinIsCredential?: boolean;
  timeoutSeconds?: number;
}

/**
 * SshStep's dynamic provider (what WorkerNode's `stepProvider: "openssh"` selects). Serialized
 * into the state by Pulumi's closure serializer, so it only uses what it requires inside its
 * functions and captures nothing else (in particular no secret). Its methods call the
 * module-level `runStep`, never the provider through its own export: compiled to CommonJS that
 * would be `exports.sshStepDynamicProvider`, which the serializer does not carry (the compiled
 * operator failed every step with "Cannot read properties of undefined (reading 'run')";
 * test/integration/compiled-providers.test.ts runs it as the engine does).
 */
export const sshStepDynamicProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: StepInputs) {
    const out = await runStep(inputs, inputs.create);
    const { randomBytes } = require("node:crypto") as typeof import("node:crypto");
    return { id: randomBytes(8).toString("hex"), outs: { ...inputs, ...out } };
  },
  async diff(_id: string, olds: StepInputs, news: StepInputs) {
    const keys = ["connection", "create", "update", "delete", "stdin", "triggers"] as const;
    const changed = keys.filter((k) => JSON.stringify(olds[k] ?? null) !== JSON.stringify(news[k] ?? null));
    return { changes: changed.length > 0, replaces: [], deleteBeforeReplace: false };
  },
  async update(_id: string, olds: StepInputs & { stdout?: string; stderr?: string }, news: StepInputs) {
    // A new address or credential for the same host is no reason to run the step again.
    const compared = news.stdinIsCredential ? (["create", "update", "triggers"] as const) : (["create", "update", "stdin", "triggers"] as const);
    const rerun = compared.some((k) => JSON.stringify(olds[k] ?? null) !== JSON.stringify(news[k] ?? null));
    if (!rerun) return { outs: { ...news, stdout: olds.stdout ?? "", stderr: olds.stderr ?? "" } };
    const out = await runStep(news, news.update ?? news.create);
    return { outs: { ...news, ...out } };
  },
  async delete(_id: string, props: StepInputs) {
    if (props.delete) await runStep(props, props.delete);
  },
};

/** Runs one step's script over SSH (or with bash when there is no connection). Exported for tests. */
export async function runStep(inputs: StepInputs, script: string): Promise<{ stdout: string; stderr: string }> {
  const { spawn } = require("node:child_process") as typeof import("node:child_process");
  const fs = require("node:fs") as typeof import("node:fs");
  const c = inputs.connection;
  const dir = privateRunDir();
  try {
    let file: string;
    let args: string[];
    let env: Record<string, string>;
    if (!c) {
      file = "/bin/bash";
      args = ["-c", script];
      env = childEnv({ TMPDIR: dir });
    } else {
      const ssh = sshInvocation(c, dir, script);
      file = "ssh";
      args = ssh.args;
      env = childEnv(ssh.env);
    }
    return await new Promise((resolve, reject) => {
      const child = spawn(file, args, { env, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const timeoutSeconds = inputs.timeoutSeconds ?? 900;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, timeoutSeconds * 1000);
      child.once("error", (e) => reject(new Error(`cannot run ${file}: ${e.message}`)));
      child.once("close", (code) => {
        clearTimeout(timer);
        if (code === 0) return resolve({ stdout, stderr });
        const where = c ? sshDestination(c) : "the Pulumi host";
        // One line: the engine shows only the first line of a resource's error.
        let why: string;
        if (timedOut) why = `timed out after ${timeoutSeconds}s and was killed`;
        else if (c) why = sshFailureReason(c, code, stderr, stdout);
        else why = (stderr.trim() || stdout.trim()).split("\n").slice(-8).join(" | ");
        reject(new Error(`step failed on ${where} (exit ${code}): ${why}`));
      });
      child.stdin.end(inputs.stdin ?? "");
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export class SshStep extends pulumi.dynamic.Resource {
  declare readonly stdout: pulumi.Output<string>;
  declare readonly stderr: pulumi.Output<string>;
  declare readonly stdin: pulumi.Output<string | undefined>;

  constructor(name: string, args: SshStepArgs, opts?: pulumi.CustomResourceOptions) {
    // Inputs are stored in the state too: secret on the way in, not only on the way out.
    const inputs = {
      ...args,
      connection: args.connection === undefined ? undefined : pulumi.secret(args.connection),
      stdin: args.stdin === undefined ? undefined : pulumi.secret(args.stdin),
      stdout: undefined,
      stderr: undefined,
    };
    super(sshStepDynamicProvider, name, inputs, {
      ...opts,
      additionalSecretOutputs: ["connection", "stdin", ...(opts?.additionalSecretOutputs ?? [])],
    });
  }
}
