/**
 * `kok etcd backup` and `kok etcd restore`: the commands a Cluster's backup CronJob and its etcd
 * members' restore init container run in the operator image (src/backup/ does the work;
 * docs/backups.md).
 *
 * The contract with the operator, which reads the Job's termination message:
 * - success: ONE JSON line `{"time","location","revision","size","sha256","pruned"}`, the last
 *   line on stdout and the whole of --result-file;
 * - failure: exit 1 (2 for bad flags) and one line of plain text in --result-file, never JSON,
 *   never a credential (the store's keys are redacted from it whatever the cause).
 * Progress goes to stderr.
 */
import { writeFileSync } from "node:fs";
import { backupOptions, restoreOptions, UsageError, type RawFlags } from "../backup/options";
import { runBackup } from "../backup/backup";
import { runRestore } from "../backup/restore";
import { memberOptions, runMemberStep } from "../backup/member";
import { redact } from "../runtime/redact";
import { EXIT } from "./program";

export interface EtcdCommandIo {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly now: () => Date;
}

const processIo = (): EtcdCommandIo => ({
  env: process.env,
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  now: () => new Date(),
});

/** A termination message must stay under 4 KiB; one line of ours is far less. */
const MAX_MESSAGE = 1024;

function oneLine(message: string, secrets: readonly string[]): string {
  const line = redact(message, secrets).replace(/\s+/g, " ").trim();
  return line.length > MAX_MESSAGE ? `${line.slice(0, MAX_MESSAGE - 1)}…` : line;
}

function writeResult(file: string | undefined, text: string, io: EtcdCommandIo): void {
  if (!file) return;
  try {
    writeFileSync(file, text);
  } catch (error) {
    io.stderr(`kok etcd: cannot write the result file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}\n`);
  }
}

function credentialsOf(env: NodeJS.ProcessEnv): string[] {
  return [env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY, env.AWS_SESSION_TOKEN].filter((v): v is string => Boolean(v));
}

export async function etcdBackupCommand(flags: RawFlags, io: EtcdCommandIo = processIo()): Promise<number> {
  const secrets = credentialsOf(io.env);
  const started = Date.now();
  try {
    const options = backupOptions(flags, io.env);
    const result = await runBackup(options, { now: io.now, log: (line) => io.stderr(`${oneLine(line, secrets)}\n`) });
    const line = JSON.stringify(result);
    io.stderr(`backup done in ${Date.now() - started} ms\n`);
    io.stdout(`${line}\n`);
    writeResult(options.resultFile, line, io);
    return EXIT.ok;
  } catch (error) {
    return failed("backup", error, flags, io, secrets);
  }
}

export async function etcdRestoreCommand(flags: RawFlags, io: EtcdCommandIo = processIo()): Promise<number> {
  const secrets = credentialsOf(io.env);
  try {
    const options = restoreOptions(flags, io.env);
    const result = await runRestore(options, (line) => io.stderr(`${oneLine(line, secrets)}\n`));
    const line = JSON.stringify(result);
    io.stdout(`${line}\n`);
    writeResult(flags.resultFile, line, io);
    return EXIT.ok;
  } catch (error) {
    return failed("restore", error, flags, io, secrets);
  }
}

/**
 * `kok etcd member <action>`: one membership step (src/backup/member.ts). Its result line has
 * `done: false` when etcd refused the step; only a membership it could not read fails it.
 */
export async function etcdMemberCommand(action: string | undefined, flags: RawFlags, io: EtcdCommandIo = processIo()): Promise<number> {
  try {
    const options = memberOptions(action, flags, io.env);
    const result = await runMemberStep(options, (line) => io.stderr(`${oneLine(line, [])}\n`));
    const line = JSON.stringify(result);
    io.stdout(`${line}\n`);
    writeResult(options.resultFile, line, io);
    return EXIT.ok;
  } catch (error) {
    return failed("member", error, flags, io, []);
  }
}

/** One redacted line on stderr and in the result file (the termination message); the exit code says whether the flags were the problem. */
function failed(what: "backup" | "restore" | "member", error: unknown, flags: RawFlags, io: EtcdCommandIo, secrets: ReturnType<typeof credentialsOf>): number {
  const usage = error instanceof UsageError;
  const message = oneLine(`etcd ${what} failed: ${usage ? "bad flags: " : ""}${(error as Error).message}`, secrets);
  io.stderr(`kok: ${message}\n`);
  writeResult(flags.resultFile, message, io);
  return usage ? EXIT.usage : EXIT.failure;
}
