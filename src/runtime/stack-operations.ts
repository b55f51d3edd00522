/**
 * The StackRunner's vocabulary (stack-runner.ts): its options, what its operations return and
 * report, a preview's planned changes and a provider's diagnostic as one plain line. Apart from
 * the runner so that callers and tests name these without the engine's wiring.
 */
import type { EngineEvent, OpMap } from "@pulumi/pulumi/automation";
import type { StackOperation } from "./engine-errors";
import type { EngineFence, HolderRecords, LockDecision } from "./fencing";
import type { KilledEngineCleanup } from "./killed-engine";

/** One resource a preview says an `up` would touch. Property names only: values may be secret. */
export interface PlannedChange {
  readonly op: string;
  /** Pulumi type token, e.g. `kubernetes:apps/v1:Deployment`. */
  readonly type: string;
  /** The resource's logical name (the last part of its URN). */
  readonly name: string;
  /** Top-level properties that differ (empty for a create or delete). */
  readonly properties: readonly string[];
}

const UNCHANGED_OPS = new Set(["same", "read", "refresh", "discard"]);

export function plannedChangeOf(event: EngineEvent, report: (change: PlannedChange) => void): void {
  const step = event.resourcePreEvent?.metadata;
  if (!step || UNCHANGED_OPS.has(step.op) || step.type === "pulumi:pulumi:Stack") return;
  const properties = [...new Set((step.diffs ?? []).map((k) => k.split(/[.[]/)[0]))].sort();
  report({ op: step.op, type: step.type, name: step.urn.slice(step.urn.lastIndexOf("::") + 2), properties });
}

export interface StackRunnerOptions {
  /** Pulumi project name shared by the stacks of one kind, e.g. `kube-on-kube-clusters`. */
  readonly projectName: string;
  /** State backend: `file:///dir`, `s3://bucket`, ... */
  readonly backendUrl: string;
  /** Root of the per-stack work directories. */
  readonly workRoot: string;
  /** Environment of the engine processes: PATH with the CLI, PULUMI_HOME, the passphrase, ... */
  readonly env: Record<string, string>;
  /** A KMS secrets provider URL (`awskms://…`); default: the passphrase in `env`. */
  readonly secretsProvider?: string;
  /**
   * Most engine operations of this runner at once, over all its stacks (each is a CLI, a
   * language host and providers: CPU-bound). Default: no cap beyond one per stack.
   */
  readonly maxConcurrentOperations?: number;
  /** Told about every finished engine operation (metrics). */
  readonly onOperation?: (operation: StackOperation, result: "success" | "error", durationMs: number) => void;
  /**
   * The replica's fence (fencing.ts): operations run only while it is open, their processes
   * carry its marker, and they are aborted and killed when it closes. Absent: no fencing (tests).
   */
  readonly fence?: EngineFence;
  /** Where holder records go; default: beside a `file://` backend's stacks (holder-files.ts). */
  readonly holders?: HolderRecords;
  /**
   * Told when an operation's CLI was killed from outside within the term, and whether its lock
   * was then cleared (killed-engine.ts): for the operator's log (`killedEngineLogLine`).
   */
  readonly onKilledEngine?: (cleanup: KilledEngineCleanup) => void;
}

/** What `recover` found and did on one stack. */
export interface RecoveryOutcome {
  /** The lock decision from the stack's holder record (fencing.ts `decideLock`). */
  readonly lock: LockDecision;
  /** Pending operations were found and cleared with a refresh. */
  readonly clearedPending: boolean;
  /**
   * The stack's checkpoint cannot be loaded (a corrupt state): the lock decision was carried out,
   * pending operations could not be looked at. Not a recovery failure: no operation can run on
   * that stack until a person restores it, and its object's reconcile says so (a condition).
   */
  readonly stateUnreadable?: string;
}


/** One resource in a stack's state: its type, logical name and id; never its properties (they may be secret). */
export interface StateResource {
  readonly type: string;
  readonly name: string;
  readonly id?: string;
  /**
   * The inputs asked for by name (`resources(stack, { inputs })`) that the state holds as plain
   * strings, numbers or booleans; a secret or structured input is never copied.
   */
  readonly inputs?: Readonly<Record<string, string | number | boolean>>;
}

/** A provider's diagnostic about one resource during an operation, as one plain line. */
export interface ResourceDiagnostic {
  readonly severity: string;
  /** Pulumi type token of the resource. */
  readonly type: string;
  /** The resource's logical name (the last part of its URN). */
  readonly name: string;
  /** plainDiagnostic() of what the provider said. Not redacted here: whoever shows it redacts it. */
  readonly message: string;
}

/** What a destroy may add to a plain one. */
export interface DestroyOptions {
  /**
   * More environment for this destroy's engine and provider processes only (e.g. a provider's
   * switch that must not be in force for any other operation); it overrides the runner's `env`.
   */
  readonly env?: Readonly<Record<string, string>>;
  /** Told every diagnostic a provider reports about a resource (not the Stack's own output). */
  readonly onDiagnostic?: (diagnostic: ResourceDiagnostic) => void;
}

export interface OperationProgress {
  readonly stack: string;
  readonly operation: StackOperation;
  /**
   * `queued`: every engine slot is taken (`maxConcurrentOperations`), the operation waits for
   * one; `running`: it has one (told once when it starts, then on every resource and message).
   */
  readonly phase: "queued" | "running";
  /** Engine slots in use and their cap, when the operation had to queue. */
  readonly slots?: { readonly active: number; readonly limit: number };
  /** Resource operations seen so far, e.g. { create: 3, same: 12 }. */
  readonly counts: Record<string, number>;
  /** The resource that just finished, as `type name` (no property values). */
  readonly lastResource?: string;
  /**
   * The latest thing a resource's provider said while working on it, as `name: message` (one
   * line, colours removed, at most 300 characters), e.g. a StatefulSet's Pod that cannot be
   * scheduled. Not redacted here: whoever shows it redacts it.
   */
  readonly message?: string;
}

const MAX_PROGRESS_MESSAGE = 300;

/** A provider's diagnostic, as one plain line: Pulumi's colour tags and ANSI escapes removed. */
export function plainDiagnostic(message: string): string {
  const line = message
    // ANSI colour escapes (the \u001b is what is being removed).
    .replace(/\u001b\[[0-9;]*m/g, "")
    .replace(/<\{%[^%]*%\}>/g, "")
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .join(" ");
  return line.length > MAX_PROGRESS_MESSAGE ? `${line.slice(0, MAX_PROGRESS_MESSAGE - 1)}…` : line;
}

const resourceName = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);
const onStack = (urn: string) => urn.endsWith("::pulumi:pulumi:Stack");

/**
 * An operation's engine events as progress: resource counts, the last resource done, and what
 * providers said about a resource (e.g. a Pod that cannot be scheduled). The program's own console
 * output (on the Stack) and errors (in the failure) are not progress.
 */
export function progressReporter(stack: string, operation: StackOperation, onProgress?: (p: OperationProgress) => void): (event: EngineEvent) => void {
  const counts: Record<string, number> = {};
  let lastResource: string | undefined;
  let message: string | undefined;
  return (event) => {
    if (!onProgress) return;
    const done = event.resOutputsEvent?.metadata;
    const diagnostic = event.diagnosticEvent;
    if (done && done.type !== "pulumi:pulumi:Stack") {
      counts[done.op] = (counts[done.op] ?? 0) + 1;
      lastResource = `${done.type} ${resourceName(done.urn)}`;
    } else if (diagnostic?.urn && (diagnostic.severity === "info" || diagnostic.severity === "warning") && !onStack(diagnostic.urn)) {
      const text = plainDiagnostic(diagnostic.message);
      if (!text) return;
      message = `${resourceName(diagnostic.urn)}: ${text}`;
    } else return;
    onProgress({ stack, operation, phase: "running", counts: { ...counts }, lastResource, message });
  };
}

/** A provider's diagnostic about a resource (any severity), or undefined for any other event. */
export function resourceDiagnosticOf(event: EngineEvent): ResourceDiagnostic | undefined {
  const d = event.diagnosticEvent;
  if (!d?.urn || onStack(d.urn)) return undefined;
  const urnType = d.urn.split("::").at(-2) ?? "";
  return { severity: d.severity, type: urnType.slice(urnType.lastIndexOf("$") + 1), name: resourceName(d.urn), message: plainDiagnostic(d.message) };
}

export interface OperationResult {
  readonly changes: Record<string, number>;
  readonly outputs: Record<string, { value: unknown; secret: boolean }>;
}

/** The named inputs that are plain scalars (a secret is an object in an exported state: never copied). */
export function plainInputs(inputs: Record<string, unknown> | undefined, names: readonly string[]): Record<string, string | number | boolean> | undefined {
  const picked = names.flatMap((n) => {
    const v = inputs?.[n];
    return typeof v === "string" || typeof v === "number" || typeof v === "boolean" ? [[n, v] as const] : [];
  });
  return picked.length ? Object.fromEntries(picked) : undefined;
}

export function countsOf(changes: OpMap | Record<string, number> | undefined): Record<string, number> {
  return Object.fromEntries(Object.entries(changes ?? {}).filter(([, n]) => typeof n === "number" && n > 0)) as Record<string, number>;
}
