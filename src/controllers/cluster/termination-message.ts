/**
 * The first checks of a Job's termination message, shared by every Job the operator reads a
 * result from (etcd backups, etcd membership steps): the Pod that wrote it talked to a tenant's
 * etcd or store, so the message is read as hostile. At most 4 KiB (what the kubelet keeps), one
 * line, one JSON object; each caller then checks its own fields exactly.
 */
/** Longest termination message the kubelet keeps; anything longer was not written by our command. */
export const MAX_RESULT_BYTES = 4096;

export type TerminationJson = { readonly ok: true; readonly object: Record<string, unknown> } | { readonly ok: false; readonly why: string };

export function parseTerminationJson(message: string | undefined): TerminationJson {
  if (message === undefined || message.trim() === "") return { ok: false, why: "no termination message" };
  const bytes = Buffer.byteLength(message, "utf8");
  if (bytes > MAX_RESULT_BYTES) return { ok: false, why: `the termination message is ${bytes} bytes, more than ${MAX_RESULT_BYTES}` };
  const line = message.trim();
  if (/[\r\n]/.test(line)) return { ok: false, why: "the termination message is not one line" };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, why: "the termination message is not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { ok: false, why: "the result is not a JSON object" };
  return { ok: true, object: value as Record<string, unknown> };
}
