/**
 * Holder records (fencing.ts) for the state backends that have no directory of ours (`s3://`,
 * `gs://`, `azblob://`, a Pulumi service): kept in one Lease of the operator's namespace, one
 * annotation per stack that an operation holds (or held, until it was killed).
 *
 * Why a Lease of the meta-cluster and not an object beside the stacks in the bucket:
 * - it works with every backend and every way the engine gets its credentials (a web identity,
 *   an instance role, GCS, Azure): the operator talks to the meta-cluster already, while a bucket
 *   client of our own would know static S3 keys only;
 * - the apiserver gives what the decision needs: a write is acknowledged only once stored, and a
 *   read after it sees it (etcd is linearizable), as S3 is read-after-write;
 * - RBAC can name it: the operator gets `get`/`update` on this Lease and its leader Lease only,
 *   not on every Lease of its namespace; a ConfigMap there would also need an exception in the
 *   operator's admission policy, which confines ConfigMaps to masters' namespaces.
 * The cost: one object for all records, so writers race on its resourceVersion (retried on 409);
 * records exist only while an operation runs (at most the engine slots) or after one was killed
 * (until the next recovery, or pruning), so the object stays small: annotations may total 256 KiB, a record takes about 250 bytes.
 *
 * The Lease's writes go through the operator's write gate (write-gate.ts): a replica whose term
 * ended cannot write or remove a record. Records of stacks that no longer exist (their objects
 * deleted) are pruned by a new leader (holder-pruning.ts), so what crashes leave behind does not
 * pile up.
 */
import { createHash } from "node:crypto";
import type { CoordinationV1Api, V1Lease } from "@kubernetes/client-node";
import { httpStatus } from "./api-errors";
import { FencedError, parseHolderRecord, sameHolderRecord, type HolderRecord, type HolderRecords } from "./fencing";

/** The annotations' prefix: `<prefix>/<hash of project and stack>`. */
export const HOLDER_ANNOTATION_PREFIX = "holders.kubeonkube.io";

/** What the Lease client must offer (CoordinationV1Api, write-gated in the operator). */
export type HolderLeaseApi = Pick<CoordinationV1Api, "readNamespacedLease" | "createNamespacedLease" | "replaceNamespacedLease">;

export interface LeaseHolderRecordsOptions {
  readonly api: HolderLeaseApi;
  readonly namespace: string;
  /** The Lease's name (the operator's RBAC names it). */
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** Tries of one read-modify-write when other writers keep changing the Lease; default 20. */
  readonly attempts?: number;
}

/** One annotation's value: the record with the stack it is for (the key is only a hash). */
interface Entry {
  readonly project: string;
  readonly stack: string;
  readonly record: HolderRecord;
}

/** The annotation key of a stack's record: a hash, since stack names may exceed a key's 63 characters. */
export function holderAnnotationKey(project: string, stack: string): string {
  return `${HOLDER_ANNOTATION_PREFIX}/${createHash("sha256").update(`${project}\u0000${stack}`).digest("hex").slice(0, 40)}`;
}

/** An annotation's entry, or undefined when it is not one of ours or not whole (then it proves nothing). */
function parseEntry(text: string | undefined): Entry | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as { project?: unknown; stack?: unknown; record?: unknown };
    const record = parseHolderRecord(JSON.stringify(value.record));
    if (typeof value.project !== "string" || typeof value.stack !== "string" || !record) return undefined;
    return { project: value.project, stack: value.stack, record };
  } catch {
    return undefined;
  }
}

export function leaseHolderRecords(options: LeaseHolderRecordsOptions): HolderRecords {
  const { api, namespace, name } = options;
  if (!namespace) throw new Error("holder records in a Lease: no namespace (give the operator --leader-election-namespace or --operator-namespace)");
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) throw new Error(`holder records in a Lease: ${JSON.stringify(name)} is not a valid object name`);
  const where = `Lease ${namespace}/${name}`;

  const read = async (): Promise<V1Lease | undefined> => {
    try {
      return await api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (httpStatus(error) === 404) return undefined;
      throw new Error(`holder records: reading ${where} failed: ${brief(error)}`);
    }
  };

  /** Applies `change` to the annotations, with the Lease's resourceVersion; re-read and retried on a conflict. */
  const update = async (what: string, change: (annotations: Record<string, string>) => boolean): Promise<void> => {
    const attempts = Math.max(1, options.attempts ?? 20);
    for (let attempt = 1; ; attempt++) {
      const lease = await read();
      const annotations = { ...(lease?.metadata?.annotations ?? {}) };
      if (!change(annotations)) return;
      try {
        if (lease) {
          await api.replaceNamespacedLease({ name, namespace, body: { ...lease, metadata: { ...lease.metadata, annotations } } });
        } else {
          await api.createNamespacedLease({ namespace, body: { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name, namespace, labels: { ...options.labels }, annotations }, spec: {} } });
        }
        return;
      } catch (error) {
        // Refused by the write gate: this replica does not lead, say so as such.
        if (error instanceof FencedError) throw error;
        // 409: another writer changed (or created) it since our read; read again.
        if (httpStatus(error) !== 409 || attempt >= attempts) throw new Error(`holder records: ${what} in ${where} failed: ${brief(error)}`);
        await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 20 * attempt)));
      }
    }
  };

  const entries = async (): Promise<Entry[]> =>
    Object.entries((await read())?.metadata?.annotations ?? {})
      .filter(([key]) => key.startsWith(`${HOLDER_ANNOTATION_PREFIX}/`))
      .flatMap(([key, value]) => {
        const entry = parseEntry(value);
        // An entry under another stack's key was not written by us: it proves nothing.
        return entry && holderAnnotationKey(entry.project, entry.stack) === key ? [entry] : [];
      });

  return {
    async read(project, stack) {
      return (await entries()).find((e) => e.project === project && e.stack === stack)?.record;
    },
    write: (project, stack, record) =>
      update(`writing the record of stack ${stack}`, (annotations) => {
        annotations[holderAnnotationKey(project, stack)] = JSON.stringify({ project, stack, record });
        return true;
      }),
    remove: (project, stack, expected) =>
      update(`removing the record of stack ${stack}`, (annotations) => {
        const key = holderAnnotationKey(project, stack);
        if (!(key in annotations)) return false;
        // Checked on each read of the read-modify-write: a record written since stays.
        if (expected && !sameHolderRecord(parseEntry(annotations[key])?.record, expected)) return false;
        delete annotations[key];
        return true;
      }),
    async held(project) {
      return new Map((await entries()).filter((e) => e.project === project).map((e) => [e.stack, e.record]));
    },
  };
}

/** client-node errors carry the whole HTTP exchange: the status and the apiserver's message only. */
function brief(error: unknown): string {
  const status = httpStatus(error);
  const text = error instanceof Error ? error.message : String(error);
  const message = /"message":"((?:[^"\\]|\\.)*)"/.exec(text)?.[1];
  return status ? `HTTP ${status}${message ? `: ${message}` : ""}` : text.split("\n")[0]!;
}
