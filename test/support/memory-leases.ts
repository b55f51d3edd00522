/**
 * An in-memory Lease endpoint with the apiserver's optimistic concurrency (404, 409 by
 * resourceVersion), for leader election tests on a fake clock.
 */
import type { V1Lease } from "@kubernetes/client-node";
import type { LeaseApi } from "../../src/runtime/leader-election";

export class MemoryLeases {
  lease: V1Lease | undefined;
  version = 0;
  /** When set, every call fails as if the apiserver were unreachable. */
  down = false;

  api(): LeaseApi {
    const fail = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });
    const check = () => {
      if (this.down) throw fail(503);
    };
    const copy = (l: V1Lease): V1Lease => JSON.parse(JSON.stringify(l)) as V1Lease;
    return {
      readNamespacedLease: async () => {
        check();
        if (!this.lease) throw fail(404);
        return copy(this.lease);
      },
      createNamespacedLease: async ({ body }: { body: V1Lease }) => {
        check();
        if (this.lease) throw fail(409);
        this.lease = { ...copy(body), metadata: { ...body.metadata, resourceVersion: String(++this.version) } };
        return copy(this.lease);
      },
      replaceNamespacedLease: async ({ body }: { body: V1Lease }) => {
        check();
        if (body.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) throw fail(409);
        this.lease = { ...copy(body), metadata: { ...body.metadata, resourceVersion: String(++this.version) } };
        return copy(this.lease);
      },
    } as unknown as LeaseApi;
  }
}
