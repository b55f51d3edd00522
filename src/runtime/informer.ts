/**
 * A watch-backed cache that keeps itself alive. @kubernetes/client-node's ListWatch (src/cache.ts)
 * relists on 410 Gone and re-watches when a watch ends cleanly, but on ANY other error — the list
 * failing, the apiserver restarting, a connection reset — it calls its error callbacks and stops
 * for good, leaving a controller that silently sees nothing. This wrapper
 * restarts it after an exponential backoff, forever, until `stop()`.
 *
 * A restart re-watches from the last resourceVersion, so changes made while the watch was down
 * arrive as ordinary events; if that version was compacted away the apiserver answers 410 and
 * ListWatch relists, reporting objects that vanished meanwhile as deletes. Either way callers see
 * every object's latest state, which is all a level-based reconciler needs.
 *
 * Every change is reported as just the object's key (keys.ts says why); a periodic resync reports
 * every cached key again so reconcilers get a regular chance to detect drift outside Kubernetes.
 */
import {
  ADD,
  DELETE,
  ERROR,
  ListWatch,
  UPDATE,
  Watch,
  type Informer as ClientInformer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ListPromise,
  type ObjectCache,
} from "@kubernetes/client-node";
import { realClock, sleep, type CancelTimer, type Clock } from "./clock";
import { objectKey, splitKey } from "./keys";
import type { ObjectChange } from "./predicates";
import { exponentialDelay, type BackoffOptions } from "./rate-limiter";

/**
 * client-node's Watch with two guards ListWatch lacks:
 * - Failures before the request is sent (building credentials, an exec auth plugin failing)
 *   are thrown, not passed to `done`. ListWatch re-watches from inside its own done callback,
 *   where such a throw becomes an unhandled rejection — fatal under Node's default
 *   `--unhandled-rejections=throw` — and leaves the watch dead. Here they go to `done`, an
 *   ordinary error the wrapper restarts from.
 * - ListWatch re-watches at once whenever a watch ends cleanly; a proxy or apiserver that ends
 *   every watch immediately would make that a hot loop (seen: 400 requests a second against a
 *   server that does so). Consecutive watch requests are spaced by at least `minIntervalMs`,
 *   as client-go's reflector backs off between watches.
 */
class GuardedWatch extends Watch {
  private lastStart = Number.NEGATIVE_INFINITY;

  constructor(
    kubeConfig: KubeConfig,
    private readonly guard: {
      readonly clock: Clock;
      readonly minIntervalMs: number;
      readonly wait: (ms: number) => Promise<unknown>;
      readonly stopped: AbortSignal;
      readonly trim: (obj: KubernetesObject) => KubernetesObject;
    },
  ) {
    super(kubeConfig);
  }

  override async watch(...args: Parameters<Watch["watch"]>): Promise<AbortController> {
    const done = args[3];
    const callback = args[2];
    // Watched objects are trimmed like listed ones before ListWatch caches them.
    args[2] = (phase, apiObj, watchObj) => callback(phase, apiObj && typeof apiObj === "object" && "metadata" in apiObj ? this.guard.trim(apiObj as KubernetesObject) : apiObj, watchObj);
    try {
      const wait = this.lastStart + this.guard.minIntervalMs - this.guard.clock.now();
      if (wait > 0) await this.guard.wait(wait);
      // Stopped while spacing: ListWatch has given up on this request; do not start it.
      if (this.guard.stopped.aborted) return new AbortController();
      this.lastStart = this.guard.clock.now();
      return await super.watch(...args);
    } catch (err) {
      done(err);
      return new AbortController();
    }
  }
}

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/**
 * The object without server-side apply's managedFields and kubectl's last-applied annotation, the
 * bookkeeping no reconciler reads. Never write a trimmed object back whole: status writes go to
 * the status subresource and metadata changes are patches, so nothing here does.
 */
export function withoutBookkeeping<T extends KubernetesObject>(obj: T): T {
  const metadata = obj.metadata;
  if (!metadata || (metadata.managedFields === undefined && metadata.annotations?.[LAST_APPLIED] === undefined)) return obj;
  const rest = { ...metadata };
  delete rest.managedFields;
  if (rest.annotations?.[LAST_APPLIED] !== undefined) {
    const annotations = { ...rest.annotations };
    delete annotations[LAST_APPLIED];
    rest.annotations = annotations;
  }
  return { ...obj, metadata: rest };
}

/**
 * The list's continue token. The generated typed APIs map the JSON field `continue` to `_continue`;
 * custom-object lists come back as plain JSON, where it is still `continue`.
 */
function continueToken(list: KubernetesListObject<KubernetesObject>): string | undefined {
  const metadata = list.metadata as { _continue?: string; continue?: string } | undefined;
  return metadata?._continue || metadata?.continue || undefined;
}

/** A list in pages of `limit`, so a large collection never arrives as one response to hold and parse at once. */
export async function listInPages<T extends KubernetesObject>(
  page: (opts: { limit: number; _continue?: string }) => Promise<KubernetesListObject<T>>,
  limit = 500,
): Promise<KubernetesListObject<T>> {
  const first = await page({ limit });
  const items = [...first.items];
  let token = continueToken(first);
  while (token) {
    const next = await page({ limit, _continue: token });
    items.push(...next.items);
    token = continueToken(next);
  }
  // Every page is served from the first page's snapshot: its resourceVersion is where the watch resumes.
  const metadata = { ...first.metadata, _continue: undefined } as Record<string, unknown>;
  delete metadata.continue;
  return { ...first, metadata, items };
}

export type ChangeType = "add" | "update" | "delete" | "resync";
export type ChangeListener = (key: string, type: ChangeType) => void;
export type ObjectChangeListener<T extends KubernetesObject> = (change: ObjectChange<T>) => void;

/**
 * What the Manager needs from an informer, with the object type erased: a
 * `ResilientInformer<ClusterObject>` is one without a cast (the class itself is not assignable
 * to `ResilientInformer<KubernetesObject>`, since T also appears in its options' parameters).
 */
export interface KeySource {
  onChange(listener: ChangeListener): void;
  start(): void;
  stop(): Promise<void>;
  hasSynced(): boolean;
  waitForSync(signal?: AbortSignal): Promise<void>;
  list(): readonly KubernetesObject[];
}

/**
 * A KeySource that also reports the object before and after each change, for predicates and
 * cross-kind watches (predicates.ts). Methods only, so `ResilientInformer<ClusterObject>` is an
 * `ObjectSource<ClusterObject>` and registrations stay typed.
 */
export interface ObjectSource<T extends KubernetesObject> extends KeySource {
  onObjectChange(listener: ObjectChangeListener<T>): void;
  get(key: string): T | undefined;
  list(): readonly T[];
}

/** The part of client-node's informer this wrapper uses; tests substitute a fake. */
export type ListWatchLike<T extends KubernetesObject> = ClientInformer<T> & ObjectCache<T> & { latestResourceVersion(): string };

export interface InformerOptions<T extends KubernetesObject> {
  readonly kubeConfig: KubeConfig;
  /** API path to watch, e.g. `/api/v1/namespaces/ns/configmaps` or `/apis/kubeonkube.io/v1alpha1/clusters`. */
  readonly path: string;
  /** Lists the same collection as `path` (a generated-API call). */
  readonly list: ListPromise<T>;
  readonly labelSelector?: string;
  /** Only objects matching this field selector, e.g. `spec.nodeName=n1` (the list call must apply the same one). */
  readonly fieldSelector?: string;
  /** Backoff between restarts after errors. Default 500 ms doubling to 30 s; reset once a list or event succeeds. */
  readonly restartBackoff?: BackoffOptions;
  /** How restarts and watch spacing wait; inject to control time in tests. Default: a timer on `clock`. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<unknown>;
  readonly clock?: Clock;
  /** Least time between two watch requests, even after a clean close. Default 1000 ms. */
  readonly minWatchIntervalMs?: number;
  /** Re-report every cached key this often (drift checks). 0 or absent: never. */
  readonly resyncPeriodMs?: number;
  /** Told about each failure and the delay before the next attempt (logs, metrics). */
  readonly onError?: (err: unknown, restartInMs: number) => void;
  /**
   * Applied to every object before it enters the cache (listed or watched). Default
   * `withoutBookkeeping`: the reconcilers never read managedFields or kubectl's last-applied copy,
   * which together are often larger than the rest of the object.
   */
  readonly trim?: (obj: T) => T;
  /** Builds the underlying ListWatch; default client-node's ListWatch over a GuardedWatch. */
  readonly makeListWatch?: (kubeConfig: KubeConfig, path: string, list: ListPromise<T>, labelSelector?: string, fieldSelector?: string) => ListWatchLike<T>;
}

export class ResilientInformer<T extends KubernetesObject> implements ObjectSource<T> {
  private readonly options: InformerOptions<T>;
  private readonly clock: Clock;
  private readonly listWatch: ListWatchLike<T>;
  private readonly listeners: ChangeListener[] = [];
  private readonly objectListeners: ObjectChangeListener<T>[] = [];
  /**
   * The object as last reported per key: the `old` of the next change. Holds the cache's own
   * objects (replaced, not copied), so it costs one map entry per object.
   */
  private readonly lastReported = new Map<string, T>();
  private readonly abort = new AbortController();
  private readonly syncWaiters: Array<() => void> = [];
  private failures = 0;
  private restartPending = false;
  private synced = false;
  private running = false;
  private cancelResync: CancelTimer | undefined;
  /** How many times the ListWatch was restarted after an error. */
  restarts = 0;

  constructor(options: InformerOptions<T>) {
    this.options = options;
    this.clock = options.clock ?? realClock;
    const guard = {
      clock: this.clock,
      minIntervalMs: options.minWatchIntervalMs ?? 1000,
      wait: (ms: number) => this.wait(ms),
      stopped: this.abort.signal,
      trim: (obj: KubernetesObject) => this.trim(obj as T),
    };
    const make = options.makeListWatch ?? ((kc, path, list, labels, fields) => new ListWatch<T>(path, new GuardedWatch(kc, guard), list, false, labels, fields));
    this.listWatch = make(options.kubeConfig, options.path, () => this.listAndNoteSync(), options.labelSelector, options.fieldSelector);
    const report = (type: ChangeType) => (obj: T) => {
      this.failures = 0;
      // Watch events always carry a name; if one does not, skip it rather than throw into ListWatch.
      if (obj.metadata?.name) this.report(objectKey(obj), type, obj);
    };
    this.listWatch.on(ADD, report("add"));
    this.listWatch.on(UPDATE, report("update"));
    this.listWatch.on(DELETE, report("delete"));
    this.listWatch.on(ERROR, (err?: unknown) => this.failed(err));
  }

  /** Registers a listener for changed keys. Listeners must not throw (a throw is swallowed). */
  onChange(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  /** Registers a listener for changes with the object before and after (predicates.ts). Must not throw. */
  onObjectChange(listener: ObjectChangeListener<T>): void {
    this.objectListeners.push(listener);
  }

  /** Lists, then watches. Returns at once; use `waitForSync` to know when the cache is filled. */
  start(): void {
    if (this.running || this.abort.signal.aborted) return;
    this.running = true;
    this.connect();
    this.armResync();
  }

  /** True once the first list has landed in the cache (and forever after, as in client-go). */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once `hasSynced()`; rejects if `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      signal?.addEventListener("abort", () => reject(new Error(`informer ${this.options.path}: stopped waiting for sync`)), { once: true });
      this.syncWaiters.push(resolve);
    });
  }

  list(): readonly T[] {
    return this.listWatch.list();
  }

  get(key: string): T | undefined {
    const { namespace, name } = splitKey(key);
    return this.listWatch.get(name, namespace);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.cancelResync?.();
    await this.listWatch.stop();
  }

  private connect(): void {
    // Failures normally arrive through the ERROR callback; a rejection here would be a throw
    // inside ListWatch itself. Either way it is a failure to restart from.
    this.listWatch.start().catch((err: unknown) => this.failed(err));
  }

  private readonly trim = (obj: T): T => (this.options.trim ?? withoutBookkeeping)(obj);

  private async listAndNoteSync() {
    const result = await this.options.list();
    result.items = result.items.map(this.trim);
    this.failures = 0;
    // ListWatch fills its cache in the continuation of this promise; setImmediate runs after
    // that, so `hasSynced()` never turns true before `list()` can return the objects.
    setImmediate(() => {
      if (this.synced) return;
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    });
    return result;
  }

  private failed(err: unknown): void {
    // ListWatch reports the abort of its own request on stop() as an error: not a failure.
    if (this.abort.signal.aborted || this.restartPending) return;
    this.restartPending = true;
    const { baseMs = 500, capMs = 30_000 } = this.options.restartBackoff ?? {};
    const delay = exponentialDelay(this.failures++, baseMs, capMs);
    try {
      this.options.onError?.(err, delay);
    } catch {
      // A broken log hook must not stop the restart.
    }
    void this.wait(delay).then(
      () => this.restart(),
      () => this.restart(),
    );
  }

  private wait(ms: number): Promise<unknown> {
    return this.options.sleep ? this.options.sleep(ms, this.abort.signal) : sleep(this.clock, ms, this.abort.signal);
  }

  private restart(): void {
    this.restartPending = false;
    if (this.abort.signal.aborted) return;
    this.restarts++;
    this.connect();
  }

  private armResync(): void {
    const period = this.options.resyncPeriodMs ?? 0;
    if (period <= 0 || this.abort.signal.aborted) return;
    this.cancelResync = this.clock.setTimer(() => {
      if (this.synced) for (const obj of this.listWatch.list()) this.report(objectKey(obj), "resync", obj);
      this.armResync();
    }, period);
  }

  private report(key: string, type: ChangeType, obj: T): void {
    const before = this.lastReported.get(key);
    let change: ObjectChange<T>;
    if (type === "delete") {
      this.lastReported.delete(key);
      change = { key, type, old: before ?? obj };
    } else {
      this.lastReported.set(key, obj);
      change = type === "add" ? { key, type, new: obj } : { key, type, old: before ?? obj, new: obj };
    }
    for (const listener of this.objectListeners) {
      try {
        listener(change);
      } catch {
        // As below: one bad listener must not starve the others.
      }
    }
    this.emit(key, type);
  }

  private emit(key: string, type: ChangeType): void {
    for (const listener of this.listeners) {
      try {
        listener(key, type);
      } catch {
        // One bad listener must not starve the others or break the watch callback chain.
      }
    }
  }
}
