/**
 * The dev node agent (`entry worker`, kept running by its supervisor, which `kok dev up` starts):
 * a stand-in for kubelet + container runtime + kube-proxy + cluster DNS on one machine, enough to run the
 * hosted masters' Pods for real. See docs/dev-cluster.md for what it does and does not do.
 */
import type * as k8s from "@kubernetes/client-node";
import { loadConfig, stateTag, statePaths } from "../config";
import { cleanupNode, nodePaths } from "./cleanup";
import { startDnsServer } from "./dns";
import { PodAddressAllocator } from "./ipam";
import { ResilientInformer } from "../../runtime/informer";
import { clients as makeClients, statusCode, type Clients } from "./kube";
import { deleteBridge, ensureBridge } from "./network";
import { NodeHeartbeat } from "./node";
import { NodePortProxies } from "./node-ports";
import { PodManager } from "./pods";
import { ServiceRegistry } from "./service-registry";
import type { VolumeSources } from "./volumes";
import type { KeyLookup } from "./pod-spec";

const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);

function decode(data: Record<string, string> | undefined): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64")]));
}

async function orUndefined<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (error) {
    if (statusCode(error) === 404) return undefined;
    throw error;
  }
}

function volumeSources({ core }: Clients): VolumeSources {
  return {
    readSecret: async (namespace, name) => {
      const secret = await orUndefined(core.readNamespacedSecret({ name, namespace }));
      return secret ? decode(secret.data) : undefined;
    },
    readConfigMap: async (namespace, name) => {
      const cm = await orUndefined(core.readNamespacedConfigMap({ name, namespace }));
      if (!cm) return undefined;
      return { ...Object.fromEntries(Object.entries(cm.data ?? {}).map(([k, v]) => [k, Buffer.from(v)])), ...decode(cm.binaryData) };
    },
    serviceAccountToken: async (namespace, serviceAccount, pod, audience, expirationSeconds) => {
      const request = await core.createNamespacedServiceAccountToken({
        name: serviceAccount,
        namespace,
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: {
            audiences: audience ? [audience] : [],
            expirationSeconds,
            boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod.metadata?.name, uid: pod.metadata?.uid },
          },
        },
      });
      return request.status?.token ?? "";
    },
  };
}

function keyLookup(sources: VolumeSources): KeyLookup {
  return async (kind, namespace, name, key, optional) => {
    const data = kind === "Secret" ? await sources.readSecret(namespace, name) : await sources.readConfigMap(namespace, name);
    if (!data) {
      if (optional) return undefined;
      throw new Error(`${kind} ${namespace}/${name} not found`);
    }
    if (key === "*") return JSON.stringify(Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString("utf8")])));
    if (data[key] === undefined && !optional) throw new Error(`${kind} ${namespace}/${name} has no key "${key}"`);
    return data[key]?.toString("utf8");
  };
}

export async function runNodeAgent(stateDir: string): Promise<number> {
  const config = loadConfig(stateDir);
  if (!config) throw new Error(`no dev cluster in ${stateDir}: run \`kok dev up\` first`);
  const paths = nodePaths(config);
  const tag = stateTag(config.stateDir);
  const leftovers = await cleanupNode(config);
  if (leftovers) log(`removed ${leftovers} leftover process(es)/namespace(s) of an earlier run`);

  const ipam = new PodAddressAllocator(config.podCIDR, paths.ipam);
  await ensureBridge(tag, ipam.gateway, ipam.prefix);
  const clients = makeClients(statePaths(config.stateDir).adminKubeconfig);
  const registry = new ServiceRegistry(config.clusterDomain);
  const dns = await startDnsServer(ipam.gateway, 53, (name) => registry.lookup(name), (error) => log(`dns: ${error.message}`));
  log(`dns on ${ipam.gateway}:53, pods on bridge kok${tag} (${config.podCIDR})`);
  const proxies = new NodePortProxies(registry, log);
  const syncProxies = () => proxies.sync(registry.allServices());

  /** The operator's informer (restarts with backoff, guarded watches), told each change with the object, or undefined once it is gone. */
  const watch = <T extends k8s.KubernetesObject>(path: string, list: () => Promise<k8s.KubernetesListObject<T>>, changed: (key: string, obj: T | undefined) => void, fieldSelector?: string) => {
    const informer = new ResilientInformer<T>({
      kubeConfig: clients.kc,
      path,
      list,
      fieldSelector,
      onError: (error, delay) => log(`watch ${path} failed (${error instanceof Error ? error.message : String(error)}); restarting in ${delay} ms`),
    });
    informer.onChange((key, type) => changed(key, type === "delete" ? undefined : informer.get(key)));
    informer.start();
    return informer;
  };
  const services = watch<k8s.V1Service>("/api/v1/services", () => clients.core.listServiceForAllNamespaces(), (key, svc) => {
    if (svc) registry.upsertService(svc);
    else registry.deleteService(key);
    syncProxies();
  });
  const slices = watch<k8s.V1EndpointSlice>("/apis/discovery.k8s.io/v1/endpointslices", () => clients.discovery.listEndpointSliceForAllNamespaces(), (key, slice) => {
    if (slice) registry.upsertSlice(slice);
    else registry.deleteSlice(key);
  });

  const heartbeat = new NodeHeartbeat(clients, config.nodeName, ipam.gateway, log);
  await heartbeat.register();

  const sources = volumeSources(clients);
  let manager: PodManager | undefined = undefined;
  const fieldSelector = `spec.nodeName=${config.nodeName}`;
  const pods = watch<k8s.V1Pod>("/api/v1/pods", () => clients.core.listPodForAllNamespaces({ fieldSelector }), (key) => manager?.enqueue(key), fieldSelector);
  manager = new PodManager(
    clients,
    (key) => pods.get(key),
    {
      tag,
      ipam,
      hostIP: ipam.gateway,
      clusterDomain: config.clusterDomain,
      podsDir: paths.pods,
      logsDir: paths.logs,
      sources,
      lookupKey: keyLookup(sources),
      log,
    },
  );
  for (const pod of pods.list()) manager.enqueue(`${pod.metadata?.namespace}/${pod.metadata?.name}`);
  log(`node ${config.nodeName} running pods`);

  return new Promise<number>((resolve) => {
    const shutdown = async (signal: string) => {
      log(`${signal}: stopping pods`);
      await heartbeat.stop().catch((error: unknown) => log(`node status: ${(error as Error).message}`));
      await Promise.all([pods.stop(), services.stop(), slices.stop()]).catch(() => undefined);
      await manager?.close();
      proxies.close();
      dns.close();
      await deleteBridge(tag).catch((error: unknown) => log(`bridge: ${(error as Error).message}`));
      log("stopped");
      resolve(0);
    };
    // The supervisor forwards the SIGTERM that `down` sends to the whole group: act on the first only.
    let shuttingDown = false;
    const onSignal = (signal: string) => {
      if (shuttingDown) return;
      shuttingDown = true;
      void shutdown(signal);
    };
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    process.on("SIGINT", () => onSignal("SIGINT"));
  });
}

