/**
 * The three kinds as whole objects, the way the operator reads them from the API server: the
 * metadata the reconcilers use, the spec and the status. The shapes of spec and status are the
 * schemas next to this file; the names derived from an object are in names.ts.
 *
 * Everything is read-only except `status`: a reconcile reads its object live from the API server
 * (never the informer's shared copy) and replaces that copy's status as it writes it, so its later
 * steps decide on what it wrote.
 */
import type { ClusterSpec, ClusterStatus } from "./cluster";
import type { MachineSpec, MachineStatus } from "./machine";
import type { ClusterPackageVersionSpec, ClusterPackageVersionStatus } from "./package-version";

/** The metadata our reconcilers read and write, common to the three kinds. */
export interface ReconciledMetadata {
  readonly name: string;
  readonly namespace: string;
  readonly uid?: string;
  readonly generation?: number;
  readonly resourceVersion?: string;
  readonly finalizers?: string[];
}

export interface ClusterObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ReconciledMetadata & {
    // client-node parses timestamps into Dates; a raw read keeps the string.
    readonly deletionTimestamp?: Date;
    /** The user's requests that are not spec, e.g. kubeonkube.io/backup-now. */
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly spec: ClusterSpec;
  status?: ClusterStatus;
}

export interface MachineObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ReconciledMetadata & {
    readonly annotations?: Record<string, string>;
    readonly labels?: Record<string, string>;
    readonly deletionTimestamp?: Date | string;
  };
  readonly spec: MachineSpec;
  status?: MachineStatus;
}

/** A `ClusterPackageVersion`: the catalog of a Cluster's workers and its gray release. */
export interface PackageVersionObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ReconciledMetadata & {
    readonly annotations?: Readonly<Record<string, string>>;
    readonly deletionTimestamp?: Date | string;
  };
  readonly spec: ClusterPackageVersionSpec;
  status?: ClusterPackageVersionStatus;
}
