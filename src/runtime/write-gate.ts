/**
 * The write side of fencing: a replica whose term ended writes nothing more to the meta-cluster.
 *
 * The engine fence (fencing.ts) kills a lost term's engines, but the reconciles that ran them
 * still return: each one catches its aborted operation and would go on to patch the object's
 * status ("up failed"), record a Warning Event and perhaps drop a finalizer, while the next
 * leader is already writing the same objects. The operator's API clients are therefore wrapped
 * here: every mutating call (create, patch, replace, delete) first asks whether this replica may
 * still write, and is refused with a FencedError otherwise. Reads are never gated, so a standby
 * keeps its caches and a fenced reconcile can still look before it gives up.
 *
 * The lease itself is renewed through a client of its own, outside this gate.
 */
import { FencedError } from "./fencing";

/** The method names of the generated Kubernetes API clients that change something. */
const MUTATING = /^(create|patch|replace|delete)/;

/**
 * `api` with every mutating method refused unless `mayWrite()` says this replica leads. The
 * check is made when the call is made, not when the client was built: a term can end between two
 * writes of one reconcile.
 */
export function writeGated<T extends object>(api: T, mayWrite: () => boolean, what: string): T {
  return new Proxy(api, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof property !== "string" || typeof value !== "function" || !MUTATING.test(property)) return value;
      return (...args: unknown[]) => {
        if (!mayWrite()) return Promise.reject(new FencedError(`${what}.${property}`, "it writes nothing to the meta-cluster"));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
