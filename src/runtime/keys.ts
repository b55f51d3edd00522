/**
 * Object keys as client-go's `MetaNamespaceKeyFunc` writes them: `namespace/name`, or just
 * `name` for cluster-scoped objects. The queue carries keys, not objects: a reconcile reads the
 * object's latest state itself, so nothing queued goes stale, and ten events for one object that
 * wait together need one reconcile (work-queue.ts).
 */
export interface ObjectRef {
  readonly namespace?: string;
  readonly name: string;
}

export function objectKey(obj: { metadata?: { namespace?: string; name?: string } }): string {
  const name = obj.metadata?.name;
  if (!name) throw new Error("object has no metadata.name: cannot build its queue key");
  const namespace = obj.metadata?.namespace;
  return namespace ? `${namespace}/${name}` : name;
}

export function splitKey(key: string): ObjectRef {
  const parts = key.split("/");
  if (parts.length === 1 && parts[0]) return { name: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { namespace: parts[0], name: parts[1] };
  throw new Error(`invalid object key "${key}": expected "namespace/name" or "name"`);
}
