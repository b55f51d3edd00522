/**
 * StackRunner: the operator's only door to the Pulumi engine. It wraps the Automation API with
 * what an operator needs and the API leaves to its caller:
 *
 * - one operation per stack at a time (a per-stack mutex; different stacks run in parallel);
 * - a work directory per stack, the backend from `--backend-url`, secrets from a passphrase or a
 *   KMS provider URL, pinned plugins (automatic downloads off);
 * - engine events summarized into progress callbacks (resource counts), never raw diffs that could
 *   hold secret values;
 * - engine errors classified so the controller knows whether to wait, retry or give up;
 * - with a fence (fencing.ts): no operation outside a leadership term, every engine process marked
 *   as ours (so a lost term can kill them all), and a holder record per running operation, so
 *   the next leader's recovery can tell a stale lock from a live one;
 * - a CLI killed from outside within the term (an OOM kill): its leftovers killed and its lock
 *   cancelled before the stack is released (killed-engine.ts).
 */
import { randomUUID } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import * as path from "node:path";
import {
  LocalWorkspace,
  PulumiCommand,
  StackNotFoundError,
  type EngineEvent,
  type InlineProgramArgs,
  type LocalWorkspaceOptions,
  type PulumiFn,
  type Stack,
} from "@pulumi/pulumi/automation";
import { classifyEngineError, StackOperationError, summarizeEngineError, type StackOperation } from "./engine-errors";
import { decideLock, type AdmittedOperation, type HolderRecord, type HolderRecords, type LockDecision } from "./fencing";
import { holderRecordsFor } from "./holder-files";
import { ENGINE_OPERATION_VARIABLE, KilledEngines, killedEngineMessage } from "./killed-engine";
import { pruneOrphanHolders, type PruneOutcome } from "./holder-pruning";
import type { Term } from "./leader-election";
import { KeyedMutex, Semaphore } from "./semaphore";
import { countsOf, plainInputs, plannedChangeOf, progressReporter, resourceDiagnosticOf, type DestroyOptions, type OperationProgress, type OperationResult, type PlannedChange, type RecoveryOutcome, type StackRunnerOptions, type StateResource } from "./stack-operations";

export { classifyEngineError, StackOperationError, summarizeEngineError, type FailureKind, type StackOperation } from "./engine-errors";

export * from "./stack-operations";

/**
 * What an operation's engine calls get from the runner: the fence's abort signal, and the
 * environment that marks this operation's processes (killed-engine.ts).
 */
interface EngineCall {
  readonly signal?: AbortSignal;
  readonly env: Readonly<Record<string, string>>;
}

export class StackRunner {
  /** One operation per stack at a time: `locks.run(stack, fn)` runs fn once no other holds it. */
  private readonly locks = new KeyedMutex();
  private readonly slots: Semaphore | undefined;
  private readonly holders: HolderRecords | undefined;
  private readonly killedEngines: KilledEngines;

  constructor(private readonly options: StackRunnerOptions) {
    this.slots = options.maxConcurrentOperations === undefined ? undefined : new Semaphore(options.maxConcurrentOperations);
    // Beside a file backend's stacks; for another backend, where the fence keeps them (a Lease).
    this.holders = options.holders ?? (options.fence ? (holderRecordsFor(options.backendUrl) ?? options.fence.holders) : undefined);
    this.killedEngines = new KilledEngines({
      // Marked like the killed operation: the fence kills it too if the term ends meanwhile.
      cancel: async (stackName, operationMark) => (await this.stack(stackName, async () => ({}), { create: false, env: { [ENGINE_OPERATION_VARIABLE]: operationMark } }))?.cancel(),
      summarize: summarizeEngineError,
      onCleanup: options.onKilledEngine,
    });
  }

  /** The stack's holder record, if any (fencing.ts): an operation of some term ran and did not end by itself. */
  async holderRecord(stackName: string): Promise<HolderRecord | undefined> {
    return this.holders?.read(this.options.projectName, stackName);
  }

  /** The stacks of this runner's project that hold a holder record, in one read. */
  async heldStacks(): Promise<ReadonlySet<string>> {
    return new Set((await this.holders?.held(this.options.projectName))?.keys());
  }

  /** The engine environment: the runner's, the fence's marker, then the operation's own. */
  private engineEnv(extra?: Readonly<Record<string, string>>): Record<string, string> {
    return { ...this.options.env, ...this.options.fence?.env(), ...extra };
  }

  private cli: Promise<PulumiCommand> | undefined;

  /** A workspace in `workDir` of the runner's project, backend and CLI. */
  private async workspaceOptions(workDir: string, env?: Readonly<Record<string, string>>): Promise<LocalWorkspaceOptions> {
    mkdirSync(workDir, { recursive: true });
    this.cli ??= pulumiOnPath(this.options.env.PATH ?? process.env.PATH ?? "");
    return {
      pulumiCommand: await this.cli,
      workDir,
      projectSettings: { name: this.options.projectName, runtime: "nodejs", backend: { url: this.options.backendUrl } },
      envVars: this.engineEnv(env),
      secretsProvider: this.options.secretsProvider,
    };
  }

  private async stack(stackName: string, program: PulumiFn, opts?: { env?: Readonly<Record<string, string>> }): Promise<Stack>;
  private async stack(stackName: string, program: PulumiFn, opts: { create: false; env?: Readonly<Record<string, string>> }): Promise<Stack | undefined>;
  private async stack(stackName: string, program: PulumiFn, opts: { create?: boolean; env?: Readonly<Record<string, string>> } = {}): Promise<Stack | undefined> {
    const args: InlineProgramArgs = { projectName: this.options.projectName, stackName, program };
    const options = await this.workspaceOptions(path.join(this.options.workRoot, stackName), opts.env);
    if (opts.create !== false) return LocalWorkspace.createOrSelectStack(args, options);
    return LocalWorkspace.selectStack(args, options).catch((error: unknown) => {
      if (error instanceof StackNotFoundError) return undefined;
      throw error;
    });
  }

  private async run<T>(stackName: string, operation: StackOperation, fn: (call: EngineCall) => Promise<T>, onProgress?: (p: OperationProgress) => void): Promise<T> {
    if (!this.slots) return this.timed(stackName, operation, fn);
    const { active } = this.slots.state;
    if (active >= this.slots.limit) onProgress?.({ stack: stackName, operation, phase: "queued", slots: { active, limit: this.slots.limit }, counts: {} });
    return this.slots.run(() => {
      onProgress?.({ stack: stackName, operation, phase: "running", counts: {} });
      return this.timed(stackName, operation, fn);
    });
  }

  private async timed<T>(stackName: string, operation: StackOperation, fn: (call: EngineCall) => Promise<T>): Promise<T> {
    // Refused (FencedError) when this replica does not lead: checked once the slot is ours, so
    // an operation queued when the term ended never starts.
    const admitted = this.options.fence?.admit(`${operation} of stack ${stackName}`);
    const operationMark = randomUUID();
    let recorded = false;
    // A killed engine's lock that could not be cleared: its record must stay (below).
    let lockLeft = false;
    const started = Date.now();
    try {
      if (operation !== "export") {
        // A lock an earlier operation's killed engine left in this term (killed-engine.ts).
        const stuck = await this.killedEngines.beforeOperation(stackName, admitted?.term);
        if (stuck) throw new StackOperationError(stackName, operation, "concurrent-update", `not started: ${killedEngineMessage(stuck)}`);
        // No engine without its record: a lock it left could never be proven stale.
        recorded = await this.recordHolder(stackName, operation, admitted);
      }
      const result = await fn({ signal: admitted?.signal, env: { [ENGINE_OPERATION_VARIABLE]: operationMark } });
      this.options.onOperation?.(operation, "success", Date.now() - started);
      return result;
    } catch (error) {
      this.options.onOperation?.(operation, "error", Date.now() - started);
      // Refused before its engine (a killed engine's lock still there): already said why.
      if (error instanceof StackOperationError) throw error;
      // Still admitted (the stack's mutex and slot held): nothing else takes the stack before a
      // killed engine's lock is cleared.
      const aborted = admitted?.signal.aborted ?? false;
      const termLive = this.options.fence?.mayWrite() ?? true;
      const killed = await this.killedEngines.afterFailure(stackName, operation, { error, aborted, termLive, term: admitted?.term, operationMark });
      lockLeft = killed !== undefined && !killed.lockCleared;
      const message = summarizeEngineError(error);
      throw new StackOperationError(stackName, operation, classifyEngineError(error), killed ? `${message}; ${killedEngineMessage(killed)}` : message);
    } finally {
      admitted?.done();
      // An operation killed by the fence keeps its record: the lock it left is the next
      // leader's to clear, and the record is what proves it stale. So does one that ended after
      // the renewals stopped: the watchdog may have killed its engine without this process
      // aborting it (seen in a Pod: the lock stayed and no leader could ever clear it). So does
      // one whose killed engine's lock could not be cleared: a later leader can.
      if (recorded && !lockLeft && !admitted?.signal.aborted && !this.options.fence?.isExpired()) await this.removeHolder(stackName);
    }
  }

  /**
   * A record that cannot be removed (the meta-cluster unreachable, the term ended meanwhile) stays:
   * the operation's own result stands, and a later leader may cancel a lock that is no longer
   * there, which changes nothing.
   */
  private async removeHolder(stackName: string): Promise<void> {
    try {
      await this.holders?.remove(this.options.projectName, stackName);
    } catch {
      // Kept, as above.
    }
  }

  /** Writes who runs this operation (the term), before the engine can take the stack's lock. */
  private async recordHolder(stackName: string, operation: StackOperation, admitted: AdmittedOperation | undefined): Promise<boolean> {
    if (!this.holders || !this.options.fence) return false;
    await this.holders.write(this.options.projectName, stackName, {
      identity: admitted?.term?.identity ?? this.options.fence.marker,
      acquiredAt: admitted?.term?.acquiredAt ?? 0,
      operation,
      pid: process.pid,
      startedAt: new Date().toISOString(),
    });
    return true;
  }

  /**
   * Applies the program. With `refresh`, the live objects are read first, so objects changed or
   * deleted behind the engine's back are put back (drift correction); without it the state is
   * trusted.
   */
  async up(
    stackName: string,
    program: PulumiFn,
    onProgress?: (p: OperationProgress) => void,
    opts: { refresh?: boolean } = {},
  ): Promise<OperationResult> {
    return this.locks.run(stackName, () =>
      this.run(
        stackName,
        "up",
        async ({ signal, env }) => {
          const stack = await this.stack(stackName, program, { env });
          const result = await stack.up({ refresh: opts.refresh, onEvent: progressReporter(stackName, "up", onProgress), signal });
          return { changes: countsOf(result.summary.resourceChanges), outputs: result.outputs };
        },
        onProgress,
      ),
    );
  }

  /**
   * What an `up` would change. With `refresh`, the live objects are read first, so the result
   * is the drift between the state of the world and the program. `onChange` is told each resource
   * the `up` would touch: its type, name, operation and the names (never the values) of the
   * properties that differ.
   */
  async preview(
    stackName: string,
    program: PulumiFn,
    opts: { refresh?: boolean; onChange?: (change: PlannedChange) => void } = {},
  ): Promise<Record<string, number>> {
    return this.locks.run(stackName, () =>
      this.run(stackName, "preview", async ({ signal, env }) => {
        const stack = await this.stack(stackName, program, { env });
        const onChange = opts.onChange;
        const onEvent = onChange ? (e: EngineEvent) => plannedChangeOf(e, onChange) : undefined;
        const result = await stack.preview({ refresh: opts.refresh, onEvent, signal });
        return countsOf(result.changeSummary);
      }),
    );
  }

  async refresh(stackName: string, program: PulumiFn, opts: { clearPendingCreates?: boolean } = {}): Promise<Record<string, number>> {
    return this.locks.run(stackName, () =>
      this.run(stackName, "refresh", async ({ signal, env }) => {
        const stack = await this.stack(stackName, program, { env });
        const result = await stack.refresh({ clearPendingCreates: opts.clearPendingCreates, signal });
        return countsOf(result.summary.resourceChanges);
      }),
    );
  }

  /**
   * Destroys every resource of the stack, then removes the stack and its history. Never with a
   * refresh: `opts.env` may hold switches meant for deletes only.
   */
  async destroyAndRemove(stackName: string, program: PulumiFn, onProgress?: (p: OperationProgress) => void, opts: DestroyOptions = {}): Promise<void> {
    return this.locks.run(stackName, () =>
      this.run(
        stackName,
        "destroy",
        async ({ signal, env }) => {
          const stack = await this.stack(stackName, program, { env: { ...opts.env, ...env } });
          const progress = progressReporter(stackName, "destroy", onProgress);
          const onDiagnostic = opts.onDiagnostic;
          await stack.destroy({
            signal,
            onEvent: (event) => {
              progress(event);
              const diagnostic = onDiagnostic && resourceDiagnosticOf(event);
              if (diagnostic) onDiagnostic(diagnostic);
            },
          });
          await stack.workspace.removeStack(stackName);
        },
        onProgress,
      ),
    );
  }

  /**
   * Crash recovery for one stack, on becoming leader and before any update of the term: clear a
   * lock that is provably stale, and when the state records operations that never finished (the
   * process was killed mid-update), refresh with pending creates cleared so the next `up` starts
   * clean. A stack that does not exist yet is left alone.
   *
   * With a fence, the lock is cleared only when the stack's holder record names an ended term
   * (fencing.ts `decideLock`); a lock without a record is someone else's and stays (the refresh
   * then fails with `concurrent-update`, and the caller reports the stack). Without a fence the
   * caller vouches that nothing else runs engines on these stacks (a single replica, tests).
   *
   * A checkpoint that cannot be loaded ends the recovery with `stateUnreadable` rather than an
   * error: the lock decision was carried out, and no retry of the recovery would mend the state.
   */
  async recover(stackName: string, program: PulumiFn, term?: Term): Promise<RecoveryOutcome> {
    return this.locks.run(stackName, async () => {
      // Read before this recovery writes its own record over it.
      const record = await this.holders?.read(this.options.projectName, stackName);
      const lock: LockDecision = this.options.fence
        ? decideLock(record, term)
        : { action: "clear", reason: "no fence: the caller vouches that no other engine runs" };
      if (lock.action === "live") return { lock, clearedPending: false };
      return this.run(stackName, "refresh", async ({ signal, env }) => {
        const stack = await this.stack(stackName, program, { create: false, env });
        if (!stack) return { lock, clearedPending: false };
        if (lock.action === "clear") await stack.cancel();
        // exportStack() holds decrypted secrets: read one field and let it go.
        let exported: Awaited<ReturnType<Stack["exportStack"]>>;
        try {
          exported = await stack.exportStack();
        } catch (error) {
          // A corrupt checkpoint holds only this object; retrying the recovery would not mend it.
          if (classifyEngineError(error) !== "state-unreadable") throw error;
          return { lock, clearedPending: false, stateUnreadable: summarizeEngineError(error) };
        }
        const pending = (exported.deployment as { pending_operations?: unknown[] }).pending_operations ?? [];
        if (pending.length === 0) return { lock, clearedPending: false };
        await stack.refresh({ clearPendingCreates: true, signal });
        return { lock, clearedPending: true };
      });
    });
  }

  /**
   * The resources a stack's state records (type, name, id only), or undefined when the stack does
   * not exist. What the operator wrote itself: the migration of legacy stack names trusts it.
   */
  async resources(stackName: string, opts: { inputs?: readonly string[] } = {}): Promise<StateResource[] | undefined> {
    return this.locks.run(stackName, () =>
      this.run(stackName, "export", async ({ env }) => {
        const stack = await this.stack(stackName, async () => ({}), { create: false, env });
        if (!stack) return undefined;
        const deployment = (await stack.exportStack()).deployment as { resources?: { urn: string; type: string; id?: string; inputs?: Record<string, unknown> }[] };
        return (deployment.resources ?? []).map((r) => {
          const inputs = plainInputs(r.inputs, opts.inputs ?? []);
          return { type: r.type, name: r.urn.slice(r.urn.lastIndexOf("::") + 2), ...(r.id ? { id: r.id } : {}), ...(inputs ? { inputs } : {}) };
        });
      }),
    );
  }

  /**
   * Renames a stack (the backend rewrites the URNs in its state; its live objects are untouched).
   * The stack's config file moves to the new name's work directory with it.
   */
  async rename(from: string, to: string): Promise<void> {
    return this.locks.run(to, () =>
      this.locks.run(from, () =>
        this.run(from, "rename", async ({ env }) => {
          const stack = await this.stack(from, async () => ({}), { create: false, env });
          if (!stack) throw new Error(`stack ${from} does not exist`);
          await stack.rename({ stackName: to });
          const config = `Pulumi.${to}.yaml`;
          const moved = path.join(this.options.workRoot, from, config);
          if (existsSync(moved)) {
            mkdirSync(path.join(this.options.workRoot, to), { recursive: true });
            copyFileSync(moved, path.join(this.options.workRoot, to, config));
          }
        }),
      ),
    );
  }

  /**
   * Removes the holder records of stacks that no object names (`inUse`) and the backend no longer
   * has, each under the stack's mutex (holder-pruning.ts says when a record may go, and why only
   * at a term's start). Without a fence there are no records.
   */
  async pruneHolderRecords(inUse: (stack: string) => boolean, term: Term | undefined, termEnded?: AbortSignal): Promise<PruneOutcome[]> {
    const { fence, projectName } = this.options;
    if (!this.holders || !fence) return [];
    return pruneOrphanHolders(
      {
        project: projectName,
        holders: this.holders,
        exclusive: (stack, fn) => this.locks.run(stack, fn),
        // An export's admission: no holder record of its own, refused outside the term.
        exists: (stack) => this.run(stack, "export", async ({ env }) => (await this.stack(stack, async () => ({}), { create: false, env })) !== undefined),
        mayWrite: () => fence.mayWrite(),
      },
      // Without leader election the process is the term: its records carry the fence's marker.
      { inUse, term: term ?? { identity: fence.marker, transitions: 0, acquiredAt: 0 }, termEnded },
    );
  }

  /** Names of the stacks of this project in the backend. */
  async listStacks(program: PulumiFn): Promise<string[]> {
    const ws = await LocalWorkspace.create({ ...(await this.workspaceOptions(path.join(this.options.workRoot, "_list"))), program });
    return (await ws.listStacks()).map((s) => s.name);
  }
}

/**
 * The CLI named by the engine environment's PATH, not the operator process's own: the operator
 * may run with a PATH that lacks the toolchain.
 */
async function pulumiOnPath(searchPath: string): Promise<PulumiCommand> {
  const dirs = searchPath.split(path.delimiter).filter(Boolean);
  const found = dirs.map((d) => path.join(d, "pulumi")).find((f) => existsSync(f));
  if (!found) throw new Error(`no pulumi CLI on the engine's PATH (${dirs.join(path.delimiter)}): build it with \`npm run toolchain\``);
  return PulumiCommand.get({ root: path.dirname(path.dirname(found)) });
}
