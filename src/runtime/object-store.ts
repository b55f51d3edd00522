/**
 * One store for a namespaced custom resource, the shape every reconciler reads and writes through:
 * a cached get (the informer's copy), a live get (before acting on the object), finalizers and
 * annotations as merge patches, and status through the status subresource, recomputed from the
 * fresh object on every attempt and retried on conflict (status-writer.ts).
 *
 * "Not found" is `undefined` everywhere, never an exception: a reconciler treats a vanished object
 * as done, not as an error to retry.
 */
import * as k8s from "@kubernetes/client-node";
import { isNotFound } from "./api-errors";
import type { ObjectSource } from "./informer";
import { StatusWriter, type StatusApi } from "./status-writer";

export interface CustomResource {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
}

/** What `CustomObjectStore` needs of the generated API (tests pass a narrower fake). */
export type CustomObjectsApiLike = StatusApi & Pick<k8s.CustomObjectsApi, "patchNamespacedCustomObject">;

export interface CustomObjectStoreOptions<T extends k8s.KubernetesObject> {
  readonly api: CustomObjectsApiLike;
  readonly resource: CustomResource;
  /** The kind's informer: `get` reads its cache. */
  readonly informer: ObjectSource<T>;
  /** Values that must never appear in the status of an object of `namespace`. */
  readonly secrets?: (namespace?: string) => readonly string[];
}

/**
 * The one store shape every reconciler reads and writes its own kind through (each kind's store
 * interface extends it with what else it reads). Fakes of it are what reconciler tests run on.
 */
export interface ObjectStore<T, S> {
  /** A read from the API server, for acting on; `undefined` when the object is gone. */
  getLive(namespace: string, name: string): Promise<T | undefined>;
  /** Sets `metadata.finalizers` (optimistic: conflicts surface as errors, the controller retries). */
  setFinalizers(object: T, finalizers: string[]): Promise<T>;
  /** Writes `compute(fresh status)`, recomputed from the stored object on every attempt. */
  writeStatus(object: T, compute: (fresh: S | undefined) => S | undefined): Promise<void>;
}

type Named = { readonly metadata: { readonly namespace: string; readonly name: string; readonly resourceVersion?: string } };
type WithStatus<S> = k8s.KubernetesObject & { status?: S };

/** Reads a namespaced custom object; `undefined` when it does not exist. */
export async function getCustomObject<T>(api: Pick<k8s.CustomObjectsApi, "getNamespacedCustomObject">, resource: CustomResource, namespace: string, name: string): Promise<T | undefined> {
  try {
    return (await api.getNamespacedCustomObject({ ...resource, namespace, name })) as T;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export class CustomObjectStore<T extends WithStatus<S> & Named, S> implements ObjectStore<T, S> {
  private readonly writer: StatusWriter<S, T>;

  constructor(private readonly o: CustomObjectStoreOptions<T>) {
    this.writer = new StatusWriter<S, T>({ api: o.api, ...o.resource, secrets: o.secrets });
  }

  /** The informer's copy (may lag a write by a watch event). */
  get(namespace: string, name: string): T | undefined {
    return this.o.informer.get(`${namespace}/${name}`);
  }

  /** A read from the API server: what to act on when acting on stale data would be wrong. */
  getLive(namespace: string, name: string): Promise<T | undefined> {
    return getCustomObject<T>(this.o.api, this.o.resource, namespace, name);
  }

  /**
   * Sets `metadata.finalizers`. The patch carries the resourceVersion read, so it is an optimistic
   * write: a conflict surfaces as an error and the controller retries with a fresh read.
   */
  setFinalizers(object: T, finalizers: string[]): Promise<T> {
    return this.patchMetadata(object, { finalizers, resourceVersion: object.metadata.resourceVersion });
  }

  /** Merges annotations (`null` removes one); last writer wins, as annotations are owned per key. */
  annotate(object: T, annotations: Record<string, string | null>): Promise<T> {
    return this.patchMetadata(object, { annotations });
  }

  /**
   * Writes `compute(fresh status)` as the status, read anew on every attempt, so a write never
   * puts back values the object no longer has. Returns nothing when the object is gone.
   */
  async writeStatus(object: T, compute: (fresh: S | undefined) => S | undefined): Promise<void> {
    await this.writer.update(`${object.metadata.namespace}/${object.metadata.name}`, (current) => compute(current.status));
  }

  private async patchMetadata(object: T, metadata: Record<string, unknown>): Promise<T> {
    return (await this.o.api.patchNamespacedCustomObject(
      { ...this.o.resource, namespace: object.metadata.namespace, name: object.metadata.name, body: { metadata } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    )) as T;
  }
}
