/**
 * Etcd: the business cluster's etcd as a StatefulSet with a headless peer Service (stable member
 * names) and a client Service, TLS for clients and peers, storage from a claim template or any
 * VolumeSource, and in standard mode spreading and a PodDisruptionBudget.
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
import { CHECKSUM_ANNOTATION, disruptionBudget, httpProbe, masterSecret, podPlacement, secretChecksum, secretVolume } from "./master-workload";
import type { PemPair } from "./pki";
import { RolloutGate, RolloutKind, specRevision } from "./rollout-gate";

export interface EtcdArgs {
  readonly cluster: ClusterContext;
  readonly certificates: { readonly ca: PemPair; readonly server: PemPair; readonly peer: PemPair };
  /**
   * Kubeconfig of the meta-cluster for the rollout gate, which reads the StatefulSet itself: the
   * one the Kubernetes provider uses. Default: the engine's ambient kubeconfig.
   */
  readonly metaKubeconfig?: pulumi.Input<string>;
}

const PKI = "/etc/kubernetes/pki/etcd";
const DATA = "/var/lib/etcd";
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
export const ETCD_METRICS_PORT = 2381;

/** etcd's flags; `$(POD_NAME)` is expanded by the kubelet from the pod's env. */
export function etcdFlags(ctx: ClusterContext): string[] {
  const names = objectNames(ctx.name);
  const self = `$(POD_NAME).${names.etcdPeerService}.${ctx.namespace}.svc`;
  return renderFlags(
    {
      name: "$(POD_NAME)",
      // One directory per member: a hostPath shared by members that land on one node stays safe.
      "data-dir": `${DATA}/$(POD_NAME)`,
      "listen-client-urls": `https://0.0.0.0:${ETCD_CLIENT_PORT}`,
      "advertise-client-urls": `https://${self}:${ETCD_CLIENT_PORT}`,
      "listen-peer-urls": `https://0.0.0.0:${ETCD_PEER_PORT}`,
      "initial-advertise-peer-urls": `https://${self}:${ETCD_PEER_PORT}`,
      "listen-metrics-urls": `http://0.0.0.0:${ETCD_METRICS_PORT}`,
      "initial-cluster": etcdInitialCluster(ctx),
      "initial-cluster-state": "new",
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
    },
    ctx.spec.etcd.extraArgs,
  );
}

export class Etcd extends pulumi.ComponentResource {
  readonly statefulSet: k8s.apps.v1.StatefulSet;
  readonly clientService: k8s.core.v1.Service;
  readonly peerService: k8s.core.v1.Service;
  /** Done only once the StatefulSet's rollout has finished and no older member Pod is left. */
  readonly rollout: RolloutGate;

  constructor(name: string, args: EtcdArgs, opts?: pulumi.ComponentResourceOptions) {
    super("kube-on-kube:masters:Etcd", name, {}, opts);
    const ctx = args.cluster;
    const spec = ctx.spec.etcd;
    const names = objectNames(ctx.name);
    const labels = componentLabels(ctx.name, "etcd");
    const selector = selectorLabels(ctx.name, "etcd");
    const child = { parent: this };

    const files = {
      "ca.crt": args.certificates.ca.certPem,
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
        metadata: { name: names.etcdClientService, namespace: ctx.namespace, labels },
        spec: { type: "ClusterIP", selector, ports: [ports[0]] },
      },
      child,
    );

    const pki = secretVolume(names.etcdCerts, PKI);
    const dataVolumeName = "data";
    const storage = spec.storage;
    const statefulSetSpec: k8s.types.input.apps.v1.StatefulSetSpec = {
      serviceName: names.etcdPeerService,
      replicas: spec.replicas,
      // All members start together: an ordered start would wait forever for member 0 to be
      // Ready, which it cannot be before a quorum exists.
      podManagementPolicy: "Parallel",
      selector: { matchLabels: selector },
      updateStrategy: { type: "RollingUpdate" },
      template: {
        metadata: { labels, annotations: { [CHECKSUM_ANNOTATION]: secretChecksum(files) } },
        spec: {
          ...podPlacement(ctx, "etcd"),
          enableServiceLinks: false,
          containers: [
            {
              name: "etcd",
              image: spec.image,
              command: ["etcd", ...etcdFlags(ctx)],
              env: [{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }],
              ports: [
                { name: "client", containerPort: ETCD_CLIENT_PORT },
                { name: "peer", containerPort: ETCD_PEER_PORT },
                { name: "metrics", containerPort: ETCD_METRICS_PORT },
              ],
              resources: spec.resources,
              volumeMounts: [pki.mount, { name: dataVolumeName, mountPath: DATA }],
              startupProbe: httpProbe("/readyz", ETCD_METRICS_PORT, "HTTP", 30),
              readinessProbe: httpProbe("/readyz", ETCD_METRICS_PORT, "HTTP", 3),
              livenessProbe: httpProbe("/livez", ETCD_METRICS_PORT, "HTTP", 8),
            },
          ],
          volumes: [
            pki.volume,
            ...(storage.volumeSource ? [{ name: dataVolumeName, ...storage.volumeSource }] : []),
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
    this.statefulSet = new k8s.apps.v1.StatefulSet(
      `${name}-statefulset`,
      { metadata: { name: names.etcd, namespace: ctx.namespace, labels }, spec: statefulSetSpec },
      { parent: this, dependsOn: [secret, this.peerService] },
    );
    this.rollout = new RolloutGate(
      `${name}-rollout`,
      {
        workload: { kind: RolloutKind.StatefulSet, namespace: ctx.namespace, name: names.etcd },
        revision: specRevision(statefulSetSpec),
        kubeconfig: args.metaKubeconfig,
      },
      { parent: this, dependsOn: [this.statefulSet] },
    );
    disruptionBudget(`${name}-pdb`, ctx, names.etcd, "etcd", child);

    this.registerOutputs({ clientUrl: pulumi.output(`https://${names.etcdClientService}.${ctx.namespace}.svc:${ETCD_CLIENT_PORT}`) });
  }
}
