/**
 * Metrics of Clusters, in the operator's registry (runtime/metrics.ts): drift checks and
 * corrections, certificate and CA expiry and etcd backups. Expiry and backups are the series per
 * Cluster: Clusters are dozens, and an alert has to name the Cluster whose certificates run out or
 * whose backups stopped. The CAs' expiry is read from the informer cache at scrape time (like the
 * Machines' kubelet certificates, machine/metrics.ts), so a deleted Cluster leaves no series.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { CertificatesStatus } from "../../api/v1alpha1";
import { METRIC_PREFIX } from "../../runtime/metrics";
import type { EtcdBackupHooks } from "./etcd-backup-check";
import type { ClusterReconcilerHooks, DriftCheckResult } from "./reconciler";

/** What the CA expiry gauge reads of a cached Cluster. */
export interface MeteredCluster {
  readonly metadata?: { readonly namespace?: string; readonly name?: string };
  readonly status?: { readonly certificates?: CertificatesStatus };
}

export class ClusterMetrics {
  readonly driftChecks: Counter<"kind" | "method" | "result">;
  readonly driftCorrections: Counter<"kind">;
  readonly certificatesExpireAt: Gauge<"namespace" | "name">;
  readonly etcdBackupLastSuccess: Gauge<"namespace" | "name">;
  readonly etcdBackupFailures: Counter<"namespace" | "name">;

  /** `clusters` lists the cached Clusters, read at each scrape for their CAs' expiry. */
  constructor(registry: Registry, clusters: () => readonly MeteredCluster[]) {
    this.driftChecks = new Counter({
      name: `${METRIC_PREFIX}drift_checks_total`,
      help: "Drift checks of reconciled objects, by kind, method (fingerprint: the live objects were unchanged; preview: a full preview with refresh) and result (in-sync, drifted, error).",
      labelNames: ["kind", "method", "result"] as const,
      registers: [registry],
    });
    this.driftCorrections = new Counter({
      name: `${METRIC_PREFIX}drift_corrections_total`,
      help: "Drift found by a drift check and put back by a successful update, by kind.",
      labelNames: ["kind"] as const,
      registers: [registry],
    });
    this.certificatesExpireAt = new Gauge({
      name: `${METRIC_PREFIX}certificates_expire_at_seconds`,
      help: "Unix time at which the earliest certificate of a Cluster expires (status.certificatesExpireAt), by Cluster.",
      labelNames: ["namespace", "name"] as const,
      registers: [registry],
    });
    new Gauge({
      name: `${METRIC_PREFIX}cluster_ca_expiry_timestamp_seconds`,
      help: "When a Cluster's signing CA (cluster, etcd, front-proxy) expires, as its last update wrote it (status.certificates.authorities), by Cluster and authority.",
      labelNames: ["namespace", "cluster", "authority"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const c of clusters()) {
          const { namespace, name } = c.metadata ?? {};
          if (namespace === undefined || name === undefined) continue;
          // The service-account key has no expiry (no notAfter), so it has no series.
          for (const authority of c.status?.certificates?.authorities ?? []) {
            const at = authority.notAfter ? Date.parse(authority.notAfter) : Number.NaN;
            if (!Number.isNaN(at)) this.set({ namespace, cluster: name, authority: authority.name }, at / 1000);
          }
        }
      },
    });
    this.etcdBackupLastSuccess = new Gauge({
      name: `${METRIC_PREFIX}etcd_backup_last_success_timestamp_seconds`,
      help: "Unix time of a Cluster's newest successful etcd backup (status.etcd.lastBackup.time), by Cluster with backups configured.",
      labelNames: ["namespace", "name"] as const,
      registers: [registry],
    });
    this.etcdBackupFailures = new Counter({
      name: `${METRIC_PREFIX}etcd_backup_failures_total`,
      help: "etcd backup Jobs of a Cluster that failed or whose result the operator refused, by Cluster (counted once per Job by this process).",
      labelNames: ["namespace", "name"] as const,
      registers: [registry],
    });
  }

  /**
   * EtcdBackupCheck hooks. A Cluster's failure counter starts at zero once it has backups, so
   * `increase()` works before the first failure; both series go when its backups or it do.
   */
  backupHooks(): Required<EtcdBackupHooks> {
    return {
      lastSuccess: (namespace, name, at) => {
        this.etcdBackupFailures.inc({ namespace, name }, 0);
        if (at === undefined) this.etcdBackupLastSuccess.remove({ namespace, name });
        else this.etcdBackupLastSuccess.set({ namespace, name }, at.getTime() / 1000);
      },
      failed: (namespace, name) => this.etcdBackupFailures.inc({ namespace, name }),
      gone: (namespace, name) => {
        this.etcdBackupLastSuccess.remove({ namespace, name });
        this.etcdBackupFailures.remove({ namespace, name });
      },
    };
  }

  /** Every ClusterReconciler hook: drift checks and corrections of `kind`, certificate expiry. */
  hooks(kind: string): Required<Pick<ClusterReconcilerHooks, "driftChecked" | "driftCorrected" | "certificatesExpireAt">> {
    return { ...this.driftHooks(kind), certificatesExpireAt: (namespace, name, at) => this.setCertificatesExpireAt(namespace, name, at) };
  }

  /**
   * ClusterReconciler hooks for drift checks and corrections of one kind. Its series start at
   * zero, so `increase()` and alerts on them work before the first drift is ever found.
   */
  driftHooks(kind: string): Required<Pick<ClusterReconcilerHooks, "driftChecked" | "driftCorrected">> {
    for (const result of ["in-sync", "drifted", "error"] satisfies DriftCheckResult[]) this.driftChecks.inc({ kind, method: "preview", result }, 0);
    this.driftChecks.inc({ kind, method: "fingerprint", result: "in-sync" }, 0);
    this.driftCorrections.inc({ kind }, 0);
    return {
      driftChecked: (result, method) => this.driftChecks.inc({ kind, method, result }),
      driftCorrected: () => this.driftCorrections.inc({ kind }),
    };
  }

  /** Sets a Cluster's certificate expiry; `undefined` removes its series (the Cluster is going). */
  setCertificatesExpireAt(namespace: string, name: string, expiresAt: Date | undefined): void {
    const seconds = expiresAt ? expiresAt.getTime() / 1000 : Number.NaN;
    if (Number.isNaN(seconds)) this.certificatesExpireAt.remove({ namespace, name });
    else this.certificatesExpireAt.set({ namespace, name }, seconds);
  }
}
