/**
 * Etcd: the business cluster's etcd as a StatefulSet with a headless peer Service (stable member
 * names) and a client Service, TLS (1.2 or later) for clients and peers, storage from a claim
 * template or any VolumeSource, and in standard mode spreading and a PodDisruptionBudget.
 *
 * Its plain-HTTP metrics and health listener binds 127.0.0.1 only, so no other Pod can read it;
 * the probes therefore run `etcdctl` inside the container against the TLS client port on
 * loopback, with the member's own certificate (which carries client_auth and the 127.0.0.1 SAN).
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  componentLabels,
  etcdInitialCluster,
  objectNames,
  selectorLabels,
  renderFlags,
  type ClusterContext,
} from "./cluster-context";
import { CHECKSUM_ANNOTATION, disruptionBudget, masterPodBasics, masterSecret, podPlacement, secretChecksum, secretVolume } from "./master-workload";
import { storeCredentialEnv } from "./etcd-backup";
import { MASTER_CONTAINER_SECURITY_CONTEXT } from "./pod-security";
import type { PemPair } from "./pki";
import { RolloutGate, RolloutKind, specRevision } from "./rollout-gate";
import { componentType, withLegacyAlias } from "./type-tokens";

export interface EtcdArgs {
  readonly cluster: ClusterContext;
  readonly certificates: {
    /** The etcd CA that signed `server` and `peer`. */
    readonly ca: PemPair;
    /**
     * Every etcd CA the members trust for clients and peers (PEM): during a CA rotation the old
     * and the new one (ca-rotation.ts, `EtcdCaStep`). Default: `ca` alone.
     */
    readonly trustBundle?: pulumi.Input<string>;
    readonly server: PemPair;
    readonly peer: PemPair;
  };
  /**
   * Kubeconfig of the meta-cluster for the rollout gate, which reads the StatefulSet itself: the
   * one the Kubernetes provider uses. Default: the engine's ambient kubeconfig.
   */
  readonly metaKubeconfig?: pulumi.Input<string>;
  /**
   * The image of `kok etcd restore` (the operator's), for a spec with `etcd.restore`: each
   * member's init container fills its empty data directory from the snapshot.
   */
  readonly restoreImage?: string;
  /**
   * The membership the operator observed (src/controllers/cluster/etcd-membership.ts): the
   * StatefulSet runs members 0..members-1 and a member that starts with an empty data directory
   * joins them (`existing`). Default: the spec's replica count, forming a `new` cluster.
   */
  readonly membership?: EtcdMembershipRender;
}

/** What the StatefulSet and the membership ConfigMap render (etcdMembershipEnv). */
export interface EtcdMembershipRender {
  readonly members: number;
  readonly state: "new" | "existing";
}

/** Annotation that makes pulumi-kubernetes not wait for a workload's readiness. */
const SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait";

const PKI = "/etc/kubernetes/pki/etcd";
const DATA = "/var/lib/etcd";
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
export const ETCD_METRICS_PORT = 2381;

/** etcd's flags; `$(POD_NAME)` is expanded by the kubelet from the pod's env. */
export function etcdFlags(ctx: ClusterContext): string[] {
  return renderFlags(generatedEtcdFlags(ctx), ctx.spec.etcd.extraArgs);
}

/** The flags the platform sets (extraArgs aside). */
function generatedEtcdFlags(ctx: ClusterContext): Record<string, string> {
  const names = objectNames(ctx.name);
  const self = `$(POD_NAME).${names.etcdPeerService}.${ctx.namespace}.svc`;
  return {
    name: "$(POD_NAME)",
    // One directory per member: a hostPath shared by members that land on one node stays safe.
    "data-dir": `${DATA}/$(POD_NAME)`,
    "listen-client-urls": `https://0.0.0.0:${ETCD_CLIENT_PORT}`,
    "advertise-client-urls": `https://${self}:${ETCD_CLIENT_PORT}`,
    "listen-peer-urls": `https://0.0.0.0:${ETCD_PEER_PORT}`,
    "initial-advertise-peer-urls": `https://${self}:${ETCD_PEER_PORT}`,
    // Plain HTTP: loopback only (the probes use the TLS client port, see etcdProbe).
    "listen-metrics-urls": `http://127.0.0.1:${ETCD_METRICS_PORT}`,
    "tls-min-version": "TLS1.2",
    // --initial-cluster and --initial-cluster-state come from the membership ConfigMap's
    // ETCD_INITIAL_CLUSTER(_STATE) (etcdMembershipEnv): they change with every membership step,
    // and a flag in the Pod template would roll every member for each.
    "initial-cluster-token": `${ctx.namespace}-${names.etcd}`,
    "client-cert-auth": "true",
    "trusted-ca-file": `${PKI}/ca.crt`,
    "cert-file": `${PKI}/server.crt`,
    "key-file": `${PKI}/server.key`,
    "peer-client-cert-auth": "true",
    "peer-trusted-ca-file": `${PKI}/ca.crt`,
    "peer-cert-file": `${PKI}/peer.crt`,
    "peer-key-file": `${PKI}/peer.key`,
    "snapshot-count": "10000",
    "auto-compaction-mode": "periodic",
    "auto-compaction-retention": "8h",
  };
}

/**
 * `kok etcd restore` for one member: the snapshot, the store, and the member's own identity
 * flags exactly as etcd gets them (etcdFlags), so the restored data directory is the one etcd
 * opens and its membership is the one etcd starts with. It does nothing when the member's data
 * directory already exists.
 */
export function etcdRestoreArgs(ctx: ClusterContext): string[] {
  const restore = ctx.spec.etcd.restore;
  const s3 = ctx.spec.etcd.backup?.store.s3;
  if (!restore || !s3) throw new Error("etcdRestoreArgs: spec.etcd.restore needs spec.etcd.backup.store");
  // A restore creates the cluster: every member of the spec, restored into one new cluster.
  const flags: Record<string, string> = { ...generatedEtcdFlags(ctx), "initial-cluster": etcdInitialCluster(ctx), ...ctx.spec.etcd.extraArgs };
  const pick = ["data-dir", "name", "initial-cluster", "initial-cluster-token", "initial-advertise-peer-urls"];
  return [
    "etcd",
    "restore",
    `--snapshot=${restore.snapshot}`,
    `--s3-endpoint=${s3.endpoint}`,
    `--region=${s3.region}`,
    ...pick.map((flag) => `--${flag}=${flags[flag]}`),
  ];
}

/** The restore container's scratch directory (the root file system is read-only). */
const RESTORE_TMP = "/tmp";

/** The init container that restores a member's data directory from `spec.etcd.restore` (etcdRestoreArgs). */
export function etcdRestoreInitContainer(ctx: ClusterContext, image: string, dataVolumeName: string): k8s.types.input.core.v1.Container {
  return {
    name: "restore",
    image,
    // The image's entrypoint is `kok` (src/images/operator.ts).
    args: etcdRestoreArgs(ctx),
    env: [{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }, ...storeCredentialEnv(ctx.name), { name: "TMPDIR", value: RESTORE_TMP }],
    // ETCD_INITIAL_CLUSTER_STATE: a member that joins later (scaling, a replacement) restores nothing.
    envFrom: [{ configMapRef: { name: objectNames(ctx.name).etcdMembership } }],
    resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "1Gi" } },
    securityContext: MASTER_CONTAINER_SECURITY_CONTEXT,
    volumeMounts: [
      { name: dataVolumeName, mountPath: DATA },
      { name: "restore-tmp", mountPath: RESTORE_TMP },
    ],
  };
}

/**
 * A probe that reads key `health` through the member's TLS client port on loopback: linearizable
 * (needs a leader and quorum, as /readyz) for startup and readiness, serializable (the member
 * answers from its own store, as /livez) for liveness, so losing quorum never restarts members.
 * Exec probes are not `$(VAR)`-expanded, hence the fixed paths.
 */
export function etcdProbe(consistency: "linearizable" | "serializable", failureThreshold: number) {
  return {
    exec: {
      command: [
        "etcdctl",
        `--endpoints=https://127.0.0.1:${ETCD_CLIENT_PORT}`,
        `--cacert=${PKI}/ca.crt`,
        `--cert=${PKI}/server.crt`,
        `--key=${PKI}/server.key`,
        "--dial-timeout=2s",
        "--command-timeout=4s",
        "get",
        "health",
        `--consistency=${consistency === "linearizable" ? "l" : "s"}`,
      ],
    },
    periodSeconds: 10,
    timeoutSeconds: 5,
    failureThreshold,
  };
}

/**
 * The membership ConfigMap's data, read by etcd as ETCD_INITIAL_CLUSTER and
 * ETCD_INITIAL_CLUSTER_STATE (env, not flags: a flag on the command line would shadow them).
 * etcd reads them only when its data directory is empty: when the cluster is created (`new`, every
 * member) and when a member joins one that exists (`existing`: etcd checks that the list is exactly
 * the current membership, the joining learner included, which the operator added just before).
 * A ConfigMap read at the container's start changes no Pod template, so no member rolls.
 */
export function etcdMembershipEnv(ctx: ClusterContext, membership: EtcdMembershipRender): Record<string, string> {
  return { ETCD_INITIAL_CLUSTER: etcdInitialCluster(ctx, membership.members), ETCD_INITIAL_CLUSTER_STATE: membership.state };
}

export class Etcd extends pulumi.ComponentResource {
  readonly statefulSet: k8s.apps.v1.StatefulSet;
  readonly clientService: k8s.core.v1.Service;
  readonly peerService: k8s.core.v1.Service;
  /** Done only once the StatefulSet's rollout has finished and no older member Pod is left. */
  readonly rollout: RolloutGate;

  constructor(name: string, args: EtcdArgs, opts?: pulumi.ComponentResourceOptions) {
    super(componentType("Etcd"), name, {}, withLegacyAlias("Etcd", opts));
    const ctx = args.cluster;
    const names = objectNames(ctx.name);
    const labels = componentLabels(ctx.name, "etcd");
    const selector = selectorLabels(ctx.name, "etcd");
    const child = { parent: this };

    const files = {
      "ca.crt": args.certificates.trustBundle ?? args.certificates.ca.certPem,
      "server.crt": args.certificates.server.certPem,
      "server.key": args.certificates.server.keyPem,
      "peer.crt": args.certificates.peer.certPem,
      "peer.key": args.certificates.peer.keyPem,
    };
    const secret = masterSecret(`${name}-certs`, ctx, names.etcdCerts, "etcd", files, child);

    const ports = [
      { name: "client", port: ETCD_CLIENT_PORT, targetPort: ETCD_CLIENT_PORT },
      { name: "peer", port: ETCD_PEER_PORT, targetPort: ETCD_PEER_PORT },
    ];
    this.peerService = new k8s.core.v1.Service(
      `${name}-peer`,
      {
        metadata: { name: names.etcdPeerService, namespace: ctx.namespace, labels },
        // Members must resolve each other before any is Ready, or the first quorum never forms.
        spec: { clusterIP: "None", publishNotReadyAddresses: true, selector, ports },
      },
      child,
    );
    this.clientService = new k8s.core.v1.Service(
      `${name}-client`,
      {
        // skipAwait: pulumi-kubernetes waits for the endpoints to settle, which they never do while
        // a member being replaced restarts; the rollout gate waits for the members instead.
        metadata: { name: names.etcdClientService, namespace: ctx.namespace, labels, annotations: { [SKIP_AWAIT_ANNOTATION]: "true" } },
        spec: { type: "ClusterIP", selector, ports: [ports[0]] },
      },
      child,
    );

    const membership = args.membership ?? { members: ctx.spec.etcd.replicas, state: "new" };
    const membershipConfig = new k8s.core.v1.ConfigMap(
      `${name}-membership`,
      { metadata: { name: names.etcdMembership, namespace: ctx.namespace, labels }, data: etcdMembershipEnv(ctx, membership) },
      child,
    );
    const statefulSetSpec = etcdStatefulSetSpec(ctx, files, args.restoreImage, membership.members);
    const inPlace = certificatesReloadInPlace(ctx.spec.etcd.storage);
    this.statefulSet = new k8s.apps.v1.StatefulSet(
      `${name}-statefulset`,
      // skipAwait: a learner is never Ready (it serves no linearizable read) until the operator
      // promotes it, after this update; the gate below waits for what must be waited for.
      { metadata: { name: names.etcd, namespace: ctx.namespace, labels, annotations: { [SKIP_AWAIT_ANNOTATION]: "true" } }, spec: statefulSetSpec },
      { parent: this, dependsOn: [secret, this.peerService, membershipConfig], ...(inPlace ? { ignoreChanges: [CHECKSUM_IGNORE_PATH] } : {}) },
    );
    // The replica count is left out of the gate's revision: a membership step (one learner more,
    // one member fewer) is the operator's to follow; a new template is waited for. So is the
    // checksum of certificates reloaded in place: no roll to wait for.
    const gated = Object.fromEntries(
      Object.entries(statefulSetSpec)
        .filter(([field]) => field !== "replicas")
        .map(([field, value]) => [field, inPlace && field === "template" ? withoutChecksum(statefulSetSpec.template) : value]),
    );
    this.rollout = new RolloutGate(
      `${name}-rollout`,
      {
        workload: { kind: RolloutKind.StatefulSet, namespace: ctx.namespace, name: names.etcd },
        revision: specRevision(gated),
        kubeconfig: args.metaKubeconfig,
      },
      { parent: this, dependsOn: [this.statefulSet] },
    );
    disruptionBudget(`${name}-pdb`, ctx, names.etcd, "etcd", child);

    this.registerOutputs({ clientUrl: pulumi.output(`https://${names.etcdClientService}.${ctx.namespace}.svc:${ETCD_CLIENT_PORT}`) });
  }
}

/**
 * Whether new certificates leave the members running. An emptyDir member is not restarted for new
 * leaves: it would come back empty, and a single member would take the business cluster's whole
 * state with it. It needs no restart either: etcd reads its certificate and key again for every
 * new connection (since etcd 3.2; seen with 3.6.16), and the kubelet refreshes the mounted Secret
 * in place (a whole-directory mount, no subPath). So the checksum annotation keeps the value the
 * StatefulSet was created with (and an existing one keeps its own: no roll when this rule came).
 * The trust bundle, which etcd reads once at start, never changes for such a cluster: a CA rotation
 * keeps its etcd CA (ca-rotation-machine.ts, `etcdCaKept`).
 */
/** The checksum annotation of the members' template, as a Pulumi property path. */
const CHECKSUM_IGNORE_PATH = `spec.template.metadata.annotations["${CHECKSUM_ANNOTATION}"]`;

function withoutChecksum(template: k8s.types.input.apps.v1.StatefulSetSpec["template"]): unknown {
  const t = template as { metadata: { annotations: Record<string, unknown> } };
  const annotations = Object.fromEntries(Object.entries(t.metadata.annotations).filter(([key]) => key !== CHECKSUM_ANNOTATION));
  return { ...t, metadata: { ...t.metadata, annotations } };
}

export function certificatesReloadInPlace(storage: ClusterContext["spec"]["etcd"]["storage"]): boolean {
  return !etcdDataOutlivesPods(storage);
}

/** Whether etcd's data survives a new Pod of its member (a claim or a hostPath; not an emptyDir). */
export function etcdDataOutlivesPods(storage: Partial<ClusterContext["spec"]["etcd"]["storage"]> | undefined): boolean {
  return storage?.volumeSource?.emptyDir === undefined;
}

/** The members' StatefulSet: started together, probed through their TLS client port (etcdProbe), data on the spec's storage. */
function etcdStatefulSetSpec(ctx: ClusterContext, files: Record<string, pulumi.Input<string>>, restoreImage: string | undefined, members: number): k8s.types.input.apps.v1.StatefulSetSpec {
  const spec = ctx.spec.etcd;
  const names = objectNames(ctx.name);
  const labels = componentLabels(ctx.name, "etcd");
  const selector = selectorLabels(ctx.name, "etcd");
  const pki = secretVolume(names.etcdCerts, PKI);
  const dataVolumeName = "data";
  const storage = spec.storage;
  if (spec.restore && !restoreImage) throw new Error(`Etcd of cluster ${ctx.name}: spec.etcd.restore needs the restore image (EtcdArgs.restoreImage)`);
  // Only a restore adds an init container: the template of every other cluster is unchanged.
  const restore = spec.restore && restoreImage ? { container: etcdRestoreInitContainer(ctx, restoreImage, dataVolumeName), volume: { name: "restore-tmp", emptyDir: {} } } : undefined;
  return {
    serviceName: names.etcdPeerService,
    // The membership step, not the spec: the operator adds and removes members one at a time.
    replicas: members,
    // A member removed by scaling down leaves no volume behind: one day its ordinal joins again,
    // as a new member, and old data would make it start as the removed one.
    persistentVolumeClaimRetentionPolicy: { whenScaled: "Delete", whenDeleted: "Retain" },
    // All members start together: an ordered start would wait forever for member 0 to be
    // Ready, which it cannot be before a quorum exists.
    podManagementPolicy: "Parallel",
    selector: { matchLabels: selector },
    updateStrategy: { type: "RollingUpdate" },
    template: {
      metadata: { labels, annotations: { [CHECKSUM_ANNOTATION]: secretChecksum(files) } },
      spec: {
        ...podPlacement(ctx, "etcd"),
        ...masterPodBasics(),
        ...(restore ? { initContainers: [restore.container] } : {}),
        containers: [
          {
            name: "etcd",
            image: spec.image,
            command: ["etcd", ...etcdFlags(ctx)],
            env: [{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }],
            envFrom: [{ configMapRef: { name: names.etcdMembership } }],
            ports: [
              { name: "client", containerPort: ETCD_CLIENT_PORT },
              { name: "peer", containerPort: ETCD_PEER_PORT },
            ],
            resources: spec.resources,
            securityContext: MASTER_CONTAINER_SECURITY_CONTEXT,
            volumeMounts: [pki.mount, { name: dataVolumeName, mountPath: DATA }],
            startupProbe: etcdProbe("linearizable", 30),
            readinessProbe: etcdProbe("linearizable", 3),
            livenessProbe: etcdProbe("serializable", 8),
          },
        ],
        volumes: [
          pki.volume,
          ...(storage.volumeSource ? [{ name: dataVolumeName, ...storage.volumeSource }] : []),
          ...(restore ? [restore.volume] : []),
        ],
      },
    },
    volumeClaimTemplates: storage.claimTemplate
      ? [
          {
            metadata: { name: dataVolumeName, labels },
            spec: {
              accessModes: ["ReadWriteOnce"],
              storageClassName: storage.claimTemplate.storageClassName,
              resources: { requests: { storage: storage.claimTemplate.size } },
            },
          },
        ]
      : undefined,
  };
}
