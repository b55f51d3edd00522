/**
 * Engine failures as the controllers see them: which operation of which stack failed, why in a
 * few lines (the CLI's full output is long and may echo inputs), and the kind that decides
 * whether to wait, retry or give up.
 */
import { ConcurrentUpdateError, StackNotFoundError } from "@pulumi/pulumi/automation";

export type StackOperation = "up" | "preview" | "refresh" | "destroy" | "export" | "rename";

/**
 * Why an engine operation failed, for the controller's retry decision. `state-unreadable`: the
 * stack's checkpoint in the backend cannot be loaded (corrupt, truncated, not a checkpoint); no
 * operation of that stack can run until a person restores it, and no other stack is concerned.
 */
export type FailureKind = "concurrent-update" | "stack-not-found" | "state-unreadable" | "engine";

/**
 * What the CLI says when it cannot load a stack's checkpoint (`failed to load checkpoint: <json
 * error>`, seen with the toolchain's CLI on file:// and s3:// backends), or decode one it read.
 */
const STATE_UNREADABLE = /failed to load checkpoint|could not deserialize deployment|could not deserialize (?:the )?checkpoint/i;

export class StackOperationError extends Error {
  constructor(
    readonly stackName: string,
    readonly operation: StackOperation,
    readonly kind: FailureKind,
    message: string,
  ) {
    super(`stack ${stackName}: ${operation} failed: ${message}`);
    this.name = "StackOperationError";
  }
}

/**
 * The engine's reasons, from its message: the CLI's full output is long and may echo inputs. A
 * reason that only counts ("Preview failed: 1 error occurred:") is followed by its bullets
 * ("* the Kubernetes API server reported …"), which are the cause: they are kept with it.
 */
export function summarizeEngineError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const lines = text.split("\n").map((l) => l.trim());
  const reasons: string[] = [];
  lines.forEach((line, i) => {
    if (!line.startsWith("error: ") || /^error: (update|preview|refresh|destroy) failed$/.test(line)) return;
    let reason = line.slice("error: ".length);
    if (/errors? occurred:$/.test(reason)) {
      const bullets: string[] = [];
      for (let j = i + 1; j < lines.length && lines[j]!.startsWith("* "); j++) bullets.push(lines[j]!.slice(2));
      if (bullets.length) reason = `${reason} ${bullets.join("; ")}`;
    }
    reasons.push(reason);
  });
  const unique = [...new Set(reasons)].slice(-5);
  return unique.length ? unique.join(" | ") : lines.filter(Boolean).slice(-3).join(" | ");
}

export function classifyEngineError(error: unknown): FailureKind {
  if (error instanceof ConcurrentUpdateError) return "concurrent-update";
  if (error instanceof StackNotFoundError) return "stack-not-found";
  if (STATE_UNREADABLE.test(error instanceof Error ? error.message : String(error))) return "state-unreadable";
  return "engine";
}
