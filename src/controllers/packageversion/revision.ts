/**
 * How a Machine learns which catalog to install while a ClusterPackageVersion rolls out. The
 * rollout controller admits machines to a new catalog batch by batch by writing its revision into
 * each Machine's annotation; the Machine reconciler installs the catalog the annotation names.
 * A revision is a hash of the catalog's content, so an edit that changes nothing on the hosts
 * (a rollout setting) is not a new revision and starts no rollout.
 */
import { createHash } from "node:crypto";
import type { WorkerPackages } from "../../api/v1alpha1";

/** The revision of the catalog a Machine is admitted to (written by the rollout controller). */
export const PACKAGES_REVISION_ANNOTATION = "kubeonkube.io/packages-revision";
/** When it was admitted (ISO time): the start of its health gate. */
export const PACKAGES_ADMITTED_AT_ANNOTATION = "kubeonkube.io/packages-admitted-at";

/** JSON with object keys sorted, so equal catalogs hash equally whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

/** A short, stable content hash of a catalog (16 hex digits). */
export function packagesRevision(packages: WorkerPackages): string {
  return createHash("sha256").update(canonical(packages)).digest("hex").slice(0, 16);
}
