/**
 * The four processes of the local meta-cluster and their flags: envtest's set (loopback, RBAC,
 * service-account issuer and keys) plus TLS everywhere and a kube-controller-manager and
 * kube-scheduler, so Deployments, StatefulSets, garbage collection and namespace deletion work.
 * Pure: the flags are unit-tested without starting anything.
 */
import { join } from "node:path";
import { nthAddress, parseCidr } from "../api/v1alpha1/cidr";
import { statePaths, type DevConfig } from "./config";
import { nodeLink } from "./node/layout";
import type { LeafRequest } from "./pki";

export type ComponentName = "etcd" | "kube-apiserver" | "kube-controller-manager" | "kube-scheduler";

export interface ComponentPlan {
  readonly name: ComponentName;
  /** Binary name in the toolchain's bin/. */
  readonly binary: string;
  readonly args: string[];
  readonly port: number;
  /** Health URL, and whether it needs the CA + a client certificate (`etcd-client`/`admin`) or none. */
  readonly health: { readonly url: string; readonly clientUser?: string };
}

/** The certificates the processes use; the admin one goes into the admin kubeconfig. */
export function pkiLeaves(config: DevConfig): LeafRequest[] {
  const serviceIP = firstAddress(config.serviceCIDR);
  return [
    { file: "etcd-server", commonName: "kok-dev-etcd", usage: "server", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] },
    { file: "etcd-client", commonName: "kube-apiserver-etcd-client", usage: "client" },
    {
      file: "apiserver",
      commonName: "kube-apiserver",
      usage: "server",
      dnsNames: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", `kubernetes.default.svc.${config.clusterDomain}`],
      ipAddresses: ["127.0.0.1", serviceIP],
    },
    { file: "admin", commonName: "kok-dev-admin", organization: "system:masters", usage: "client" },
    // The apiserver's client certificate towards kubelets (kubectl logs/exec on the real node).
    { file: "apiserver-kubelet-client", commonName: "kube-apiserver-kubelet-client", organization: "system:masters", usage: "client" },
    { file: "kube-controller-manager", commonName: "system:kube-controller-manager", usage: "client" },
    { file: "kube-scheduler", commonName: "system:kube-scheduler", usage: "client" },
  ];
}

/** The first address of a CIDR (the meta-cluster's `kubernetes` Service IP; the pod bridge). */
export function firstAddress(cidr: string): string {
  const parsed = parseCidr(cidr);
  if (!parsed) throw new Error(`"${cidr}" is not a CIDR`);
  return nthAddress(parsed, 1);
}

export function componentPlans(config: DevConfig): ComponentPlan[] {
  const paths = statePaths(config.stateDir);
  const pki = (file: string) => join(paths.pki, file);
  const { ports } = config;
  const etcdUrl = `https://127.0.0.1:${ports.etcdClient}`;
  const peerUrl = `http://127.0.0.1:${ports.etcdPeer}`;
  const kubeconfigFlags = (component: string) => {
    const file = paths.componentKubeconfig(component);
    return [`--kubeconfig=${file}`, `--authentication-kubeconfig=${file}`, `--authorization-kubeconfig=${file}`];
  };
  return [
    {
      name: "etcd",
      binary: "etcd",
      port: ports.etcdClient,
      args: [
        "--name=kok-dev",
        `--data-dir=${paths.etcdData}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        // The single member's peer port only ever talks to itself: loopback, plain HTTP.
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=kok-dev=${peerUrl}`,
        `--cert-file=${pki("etcd-server.crt")}`,
        `--key-file=${pki("etcd-server.key")}`,
        `--trusted-ca-file=${pki("ca.crt")}`,
        "--client-cert-auth=true",
        // As envtest: a throwaway dev store trades durability on power loss for speed.
        "--unsafe-no-fsync=true",
      ],
      health: { url: `${etcdUrl}/readyz`, clientUser: "etcd-client" },
    },
    {
      name: "kube-apiserver",
      binary: "kube-apiserver",
      port: ports.apiServer,
      args: [
        `--etcd-servers=${etcdUrl}`,
        `--etcd-cafile=${pki("ca.crt")}`,
        `--etcd-certfile=${pki("etcd-client.crt")}`,
        `--etcd-keyfile=${pki("etcd-client.key")}`,
        `--secure-port=${ports.apiServer}`,
        "--bind-address=127.0.0.1",
        // The `kubernetes` Service's endpoint: the machine's end of the real node's link, where the
        // node's forwarder passes connections to this loopback listener (src/dev/node/forwarder.ts).
        `--advertise-address=${nodeLink(config.podCIDR).host}`,
        `--cert-dir=${paths.pki}`,
        `--tls-cert-file=${pki("apiserver.crt")}`,
        `--tls-private-key-file=${pki("apiserver.key")}`,
        `--client-ca-file=${pki("ca.crt")}`,
        `--service-cluster-ip-range=${config.serviceCIDR}`,
        `--service-account-issuer=https://kubernetes.default.svc.${config.clusterDomain}`,
        `--service-account-key-file=${pki("sa.pub")}`,
        `--service-account-signing-key-file=${pki("sa.key")}`,
        // Node: the real kubelet may touch only its own Node and its Pods' objects.
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        `--kubelet-client-certificate=${pki("apiserver-kubelet-client.crt")}`,
        `--kubelet-client-key=${pki("apiserver-kubelet-client.key")}`,
        `--kubelet-certificate-authority=${pki("ca.crt")}`,
        "--kubelet-preferred-address-types=InternalIP",
        "--allow-privileged=true",
      ],
      health: { url: `https://127.0.0.1:${ports.apiServer}/readyz`, clientUser: "admin" },
    },
    {
      name: "kube-controller-manager",
      binary: "kube-controller-manager",
      port: ports.controllerManager,
      args: [
        ...kubeconfigFlags("kube-controller-manager"),
        "--bind-address=127.0.0.1",
        `--secure-port=${ports.controllerManager}`,
        // One instance: nothing to elect, and no Lease churn in the dev cluster.
        "--leader-elect=false",
        "--cluster-name=kok-dev",
        // Every default controller: namespace deletion, garbage collection, service accounts and
        // their kube-root-ca.crt, Deployments, ReplicaSets, StatefulSets, EndpointSlices, PDBs.
        "--controllers=*",
        `--service-account-private-key-file=${pki("sa.key")}`,
        `--root-ca-file=${pki("ca.crt")}`,
        "--use-service-account-credentials=true",
        `--cluster-signing-cert-file=${pki("ca.crt")}`,
        `--cluster-signing-key-file=${pki("ca.key")}`,
      ],
      health: { url: `https://127.0.0.1:${ports.controllerManager}/healthz` },
    },
    {
      name: "kube-scheduler",
      binary: "kube-scheduler",
      port: ports.scheduler,
      args: [...kubeconfigFlags("kube-scheduler"), "--bind-address=127.0.0.1", `--secure-port=${ports.scheduler}`, "--leader-elect=false"],
      health: { url: `https://127.0.0.1:${ports.scheduler}/readyz` },
    },
  ];
}
