/**
 * RemoteCommand: one idempotent script run on a host over SSH, as a Pulumi resource.
 *
 * Why our own resource and not @pulumi/command's remote.Command: the command provider's Go module
 * is not obtainable where this project is built and tested (docs/architecture.md, "Decisions"),
 * and a step that cannot run under the real engine cannot be verified. This is a Pulumi dynamic
 * resource (served by the Node.js dynamic-provider host every Pulumi CLI ships) over the `ssh2`
 * client, with the guarantees WorkerNode needs spelled out:
 *
 * - the host key is pinned: an unknown or different key is refused before authenticating;
 * - secrets travel on stdin, never on the command line, and the connection is a Pulumi secret;
 * - a failure names the step and the host and shows the tail of stderr, never the script or stdin;
 * - the script re-runs only when its own inputs (script, stdin, environment, triggers) change.
 *
 * The provider functions below are serialized into the stack state by Pulumi, so they reference
 * nothing but their arguments and `require`d npm modules.
 */
import * as pulumi from "@pulumi/pulumi";

export interface RemoteConnection {
  readonly host: string;
  /** Default 22. */
  readonly port?: number;
  readonly user: string;
  /** OpenSSH or PEM private key. Mutually exclusive with nothing: either or both may be given. */
  readonly privateKey?: string;
  readonly password?: string;
  /** The host's public key, as in known_hosts: `ssh-ed25519 AAAA...`. */
  readonly hostKey?: string;
  /** Accept any host key. Only for hosts whose key cannot be known in advance; default false. */
  readonly allowUnknownHostKey?: boolean;
}

export interface RemoteCommandArgs {
  /** How to reach the host; stored as a Pulumi secret. */
  readonly connection: pulumi.Input<RemoteConnection>;
  /** Script run by `bash -euo pipefail` on create. */
  readonly create: pulumi.Input<string>;
  /** Script run when an input changes after creation. Default: `create` (scripts are idempotent). */
  readonly update?: pulumi.Input<string>;
  /** Script run when the resource is deleted. Default: nothing runs. */
  readonly delete?: pulumi.Input<string>;
  /** Fed to the script's standard input: the place for secrets. Stored as a Pulumi secret. */
  readonly stdin?: pulumi.Input<string>;
  /** Exported before the script runs (no sshd AcceptEnv needed). Not for secrets: use stdin. */
  readonly environment?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Any change re-runs the script, e.g. the checksum of a file the script installs. */
  readonly triggers?: pulumi.Input<unknown[]>;
  /** Kill the script after this many seconds. Default 600. */
  readonly timeoutSeconds?: pulumi.Input<number>;
  /** Treat stdout and stderr as secrets (when a script may print key material). */
  readonly secretOutputs?: boolean;
}

interface StepInputs {
  connection: RemoteConnection;
  create: string;
  update?: string;
  delete?: string;
  stdin?: string;
  environment?: Record<string, string>;
  triggers?: unknown[];
  timeoutSeconds?: number;
  step: string;
}

/** Inputs whose change means the script must run again. */
const RERUN_KEYS = ["create", "update", "stdin", "environment", "triggers"] as const;

/** Runs one script over SSH; resolves with its output or rejects with a secret-free message. */
function runScript(inputs: StepInputs, script: string): Promise<{ stdout: string; stderr: string }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Client } = require("ssh2") as typeof import("ssh2");
  const c = inputs.connection;
  const where = `${inputs.step} on ${c.user}@${c.host}:${c.port ?? 22}`;
  const quote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;
  const exports = Object.entries(inputs.environment ?? {})
    .map(([k, v]) => `export ${k}=${quote(v)}`)
    .join("\n");
  // --norc: Debian's bash reads /etc/bash.bashrc under sshd, which fails under `set -u`.
  const command = `bash --norc --noprofile -euo pipefail -c ${quote(`${exports}\n${script}`)}`;
  const pinned = c.hostKey?.trim().split(/\s+/)[1];
  const keep = (text: string) => (text.length > 65536 ? text.slice(-65536) : text);

  return new Promise((resolve, reject) => {
    const client = new Client();
    let stdout = "";
    let stderr = "";
    let settled = false;
    let hostKeyRejected = false;
    // Declared before `finish` reads it: Pulumi's closure serializer rejects use-before-declare.
    let timer: ReturnType<typeof setTimeout> | undefined = undefined;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end();
      if (error) reject(error);
      else resolve({ stdout: keep(stdout), stderr: keep(stderr) });
    };
    const timeout = (inputs.timeoutSeconds ?? 600) * 1000;
    timer = setTimeout(() => finish(new Error(`${where}: timed out after ${timeout / 1000}s`)), timeout);
    client.on("error", (err: Error) => {
      const reason = hostKeyRejected
        ? "the host key does not match the pinned ssh.hostKey (refused before authenticating; if the host was reinstalled, pin its new key)"
        : err.message;
      finish(new Error(`${where}: cannot connect: ${reason}`));
    });
    client.on("ready", () => {
      client.exec(command, (err, channel) => {
        if (err) return finish(new Error(`${where}: cannot start the script: ${err.message}`));
        channel.on("data", (chunk: Buffer) => (stdout = keep(stdout + chunk.toString("utf8"))));
        channel.stderr.on("data", (chunk: Buffer) => (stderr = keep(stderr + chunk.toString("utf8"))));
        channel.on("close", (code: number | null, signal?: string) => {
          if (code === 0) return finish();
          // One line: the engine shows only the first line of a resource's error.
          const tail = (stderr.trim() || stdout.trim()).split("\n").slice(-10).join(" | ");
          finish(new Error(`${where}: failed (${code === null ? `signal ${signal}` : `exit ${code}`}): ${tail}`));
        });
        channel.end(inputs.stdin ?? "");
      });
    });
    client.connect({
      host: c.host,
      port: c.port ?? 22,
      username: c.user,
      privateKey: c.privateKey,
      password: c.password,
      readyTimeout: 20000,
      hostVerifier: (key: Buffer) => {
        if (c.allowUnknownHostKey && !pinned) return true;
        const accepted = pinned !== undefined && key.toString("base64") === pinned;
        hostKeyRejected = !accepted;
        return accepted;
      },
    });
  });
}

const remoteCommandProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: StepInputs) {
    const result = await runScript(inputs, inputs.create);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const id = (require("crypto") as typeof import("crypto")).randomUUID();
    return { id, outs: { ...inputs, ...result } };
  },
  async diff(_id: string, olds: StepInputs, news: StepInputs) {
    const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    const rerun = RERUN_KEYS.filter((k) => !same(olds[k], news[k]));
    const other = (["connection", "delete", "timeoutSeconds", "step"] as const).filter((k) => !same(olds[k], news[k]));
    return { changes: rerun.length + other.length > 0, stables: [] };
  },
  async update(_id: string, olds: StepInputs & { stdout?: string; stderr?: string }, news: StepInputs) {
    const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    const rerun = RERUN_KEYS.some((k) => !same(olds[k], news[k]));
    if (!rerun) return { outs: { ...news, stdout: olds.stdout ?? "", stderr: olds.stderr ?? "" } };
    const result = await runScript(news, news.update ?? news.create);
    return { outs: { ...news, ...result } };
  },
  async delete(_id: string, olds: StepInputs) {
    if (olds.delete) await runScript(olds, olds.delete);
  },
};

export class RemoteCommand extends pulumi.dynamic.Resource {
  declare readonly stdout: pulumi.Output<string>;
  declare readonly stderr: pulumi.Output<string>;

  constructor(name: string, args: RemoteCommandArgs, opts?: pulumi.CustomResourceOptions) {
    const secretOutputs = ["connection", "stdin", ...(args.secretOutputs ? ["stdout", "stderr"] : [])];
    super(
      remoteCommandProvider,
      name,
      {
        connection: pulumi.secret(args.connection),
        create: args.create,
        update: args.update,
        delete: args.delete,
        stdin: args.stdin === undefined ? undefined : pulumi.secret(args.stdin),
        environment: args.environment,
        triggers: args.triggers,
        timeoutSeconds: args.timeoutSeconds,
        step: name,
        stdout: undefined,
        stderr: undefined,
      },
      { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), ...secretOutputs] },
      "kube-on-kube",
      "RemoteCommand",
    );
  }
}
