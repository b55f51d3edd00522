/**
 * A stand-in for client-node's ListWatch with the same edges: it lists on start, reports changes
 * to its callbacks, and on an error reports it and stops. Unit tests drive it by hand.
 */
import type { KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";

type Callback = (arg?: unknown) => void;

export class FakeListWatch<T extends KubernetesObject> {
  starts = 0;
  stopped = false;
  objects = new Map<string, T>();
  private readonly callbacks: Record<string, Callback[]> = { add: [], update: [], delete: [], error: [] };

  constructor(private readonly listFn: () => Promise<KubernetesListObject<T>>) {}

  on(verb: string, cb: Callback): void {
    this.callbacks[verb]!.push(cb);
  }
  off(): void {
    // The wrapper never unsubscribes.
  }
  async start(): Promise<void> {
    this.starts++;
    this.stopped = false;
    try {
      const list = await this.listFn();
      for (const item of list.items) this.put(item);
    } catch (err) {
      this.fail(err);
    }
  }
  async stop(): Promise<void> {
    this.stopped = true;
    // The real ListWatch reports the abort of its own request as an error.
    this.fail(new Error("The operation was aborted"));
  }
  list(): T[] {
    return [...this.objects.values()];
  }
  get(name: string, namespace?: string): T | undefined {
    return this.objects.get(`${namespace}/${name}`);
  }
  latestResourceVersion(): string {
    return "1";
  }
  put(obj: T): void {
    const key = `${obj.metadata!.namespace}/${obj.metadata!.name}`;
    const verb = this.objects.has(key) ? "update" : "add";
    this.objects.set(key, obj);
    for (const cb of this.callbacks[verb]!) cb(obj);
  }
  remove(obj: T): void {
    this.objects.delete(`${obj.metadata!.namespace}/${obj.metadata!.name}`);
    for (const cb of this.callbacks.delete!) cb(obj);
  }
  fail(err: unknown): void {
    for (const cb of this.callbacks.error!) cb(err);
  }
}

