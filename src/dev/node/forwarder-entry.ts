/**
 * The real node's forwarder process:
 *   forwarder-entry [--node-ports NODE_IP --kubeconfig PATH] <listenHost:port>=<targetHost:port> ...
 * pipes TCP from the machine's end of the node link to services that listen on loopback only
 * (the meta-cluster's apiserver, the registry), and with --node-ports the other way: each
 * NodePort of the meta-cluster from 127.0.0.1 to the node (node-ports.ts). Bytes only: TLS and
 * client certificates pass through untouched. Started and stopped by `kok dev` (forwarder.ts)
 * with a pid file.
 */
import { createServer } from "node:net";
import * as k8s from "@kubernetes/client-node";
import { ResilientInformer } from "../../runtime/informer";
import { pipeTo } from "../tcp-pipe";
import { LoopbackNodePorts } from "./node-ports";

function parse(spec: string): { listen: [string, number]; target: [string, number] } {
  const m = /^([\d.]+):(\d+)=([\d.]+):(\d+)$/.exec(spec);
  if (!m) throw new Error(`forwarder: "${spec}" is not listenHost:port=targetHost:port`);
  return { listen: [m[1], Number(m[2])], target: [m[3], Number(m[4])] };
}

const log = (line: string) => console.log(line);
const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const [, value] = args.splice(at, 2);
  return value;
};
const nodeIP = option("--node-ports");
const kubeconfig = option("--kubeconfig");

for (const spec of args.map(parse)) {
  const server = createServer((client) => pipeTo(client, spec.target[1], spec.target[0]));
  server.on("error", (error) => {
    console.error(`forwarder ${spec.listen.join(":")}: ${error.message}`);
    process.exit(1);
  });
  server.listen(spec.listen[1], spec.listen[0], () => log(`forwarding ${spec.listen.join(":")} -> ${spec.target.join(":")}`));
}

if (nodeIP && kubeconfig) {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const nodePorts = new LoopbackNodePorts(nodeIP, log);
  // The operator's informer: it restarts with backoff when the apiserver goes away and comes back.
  const services = new ResilientInformer<k8s.V1Service>({
    kubeConfig: kc,
    path: "/api/v1/services",
    list: () => core.listServiceForAllNamespaces(),
    onError: (error, delay) => log(`watch services failed (${error instanceof Error ? error.message : String(error)}); restarting in ${delay} ms`),
  });
  services.onChange(() => nodePorts.sync(services.list()));
  services.start();
}
process.on("SIGTERM", () => process.exit(0));
