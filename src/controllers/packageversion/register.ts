/**
 * The ClusterPackageVersion kind: a catalog's rollout across the Machines that use it. A catalog
 * is woken by its own changes and by every change of a Machine that uses it, or used it until the
 * change (a Machine's status is the rollout's gate: installed, failed, Ready).
 */
import type { ClusterPackageVersionStatus, MachineObject, MachineStatus, PackageVersionObject } from "../../api/v1alpha1";
import { watch } from "../../runtime/manager";
import { CustomObjectStore } from "../../runtime/object-store";
import { MACHINES, PACKAGE_VERSIONS, type Cached, type ControllerContext, type Registered } from "../context";
import { PackageVersionReconciler, packageVersionKeyOf } from "./reconciler";
import { FleetMetrics } from "../machine/metrics";

export interface PackageVersionControllerOptions {
  /** The fleet's metrics (rollout progress gauges live beside the Machine ones). */
  readonly fleetMetrics: FleetMetrics;
}

/** The catalogs a Machine change concerns: the one it uses now and the one it used before. */
export function catalogsOfMachineChange(change: { old?: MachineObject; new?: MachineObject }): string[] {
  const keys = [change.new, change.old].map((m) => (m ? packageVersionKeyOf(m) : undefined)).filter((k): k is string => k !== undefined);
  return [...new Set(keys)];
}

export function registerPackageVersionController(ctx: ControllerContext, o: PackageVersionControllerOptions): Registered {
  const { informers } = ctx;
  const catalogs = new CustomObjectStore<Cached<PackageVersionObject>, ClusterPackageVersionStatus>({
    api: ctx.customObjects,
    resource: PACKAGE_VERSIONS,
    informer: informers.packageVersions,
    secrets: (ns) => ctx.knownSecrets.for(ns),
  });
  const machines = new CustomObjectStore<Cached<MachineObject>, MachineStatus>({ api: ctx.customObjects, resource: MACHINES, informer: informers.machines });
  const reconciler = new PackageVersionReconciler({
    store: {
      getLive: (namespace, name) => catalogs.getLive(namespace, name),
      machinesOf: (namespace, name) => informers.machines.list().filter((m) => m.metadata.namespace === namespace && m.spec.packageVersionRef?.name === name),
      annotateMachine: async (machine, annotations) => void (await machines.annotate(machine as Cached<MachineObject>, annotations)),
      writeStatus: (cpv, compute) => catalogs.writeStatus(cpv as Cached<PackageVersionObject>, compute),
    },
    events: { record: (object, type, reason, message) => ctx.recorder.record(object as never, type, reason, message) },
    onRolloutProgress: (key, progress) => (progress ? o.fleetMetrics.recordRollout(key, progress) : o.fleetMetrics.forgetRollout(key)),
  });

  ctx.manager.register({
    kind: "ClusterPackageVersion",
    informer: informers.packageVersions,
    reconcile: (key) => reconciler.reconcile(key),
    concurrency: 1,
    watches: [watch<Cached<MachineObject>>({ informer: informers.machines, map: catalogsOfMachineChange })],
  });
  return {};
}
