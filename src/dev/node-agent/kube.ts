/**
 * The agent's connection to the meta-cluster: clients from the admin kubeconfig, and informers
 * that restart with capped backoff (client-node's ListWatch relists on 410 but stops on any other
 * error, e.g. while the apiserver restarts).
 */
import * as k8s from "@kubernetes/client-node";

export interface Clients {
  readonly kc: k8s.KubeConfig;
  readonly core: k8s.CoreV1Api;
  readonly coordination: k8s.CoordinationV1Api;
  readonly discovery: k8s.DiscoveryV1Api;
}

export function clients(kubeconfigPath: string): Clients {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return {
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    coordination: kc.makeApiClient(k8s.CoordinationV1Api),
    discovery: kc.makeApiClient(k8s.DiscoveryV1Api),
  };
}

/**
 * A Watch whose connection failures reach the informer's error callback: client-node's own one
 * throws from inside the informer's reconnect, where nobody can catch it.
 */
class ReportingWatch extends k8s.Watch {
  override async watch(
    path: string,
    params: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    try {
      return await super.watch(path, params, callback, done);
    } catch (error) {
      done(error);
      return new AbortController();
    }
  }
}

export interface ResilientInformer<T extends k8s.KubernetesObject> {
  readonly cache: k8s.ObjectCache<T>;
  stop(): Promise<void>;
}

/** An informer whose callbacks see every add/update/delete; restarts 1s→30s after errors. */
export function startInformer<T extends k8s.KubernetesObject>(
  kc: k8s.KubeConfig,
  path: string,
  list: () => Promise<k8s.KubernetesListObject<T>>,
  handlers: { onChange: (obj: T) => void; onDelete: (obj: T) => void; log: (line: string) => void },
  fieldSelector?: string,
): ResilientInformer<T> {
  const informer = new k8s.ListWatch<T>(path, new ReportingWatch(kc), list, false, undefined, fieldSelector);
  let stopped = false;
  let failures = 0;
  let restartPending = false;
  const start = () => {
    restartPending = false;
    informer.start().then(
      () => {
        failures = 0;
      },
      (error: unknown) => restart(error),
    );
  };
  const restart = (error: unknown) => {
    if (stopped || restartPending) return;
    restartPending = true;
    failures++;
    const delay = Math.min(30_000, 1000 * 2 ** Math.min(failures - 1, 5));
    handlers.log(`watch ${path} failed (${error instanceof Error ? error.message : String(error)}); restarting in ${delay} ms`);
    setTimeout(() => !stopped && start(), delay).unref();
  };
  informer.on(k8s.ADD, handlers.onChange);
  informer.on(k8s.UPDATE, handlers.onChange);
  informer.on(k8s.DELETE, handlers.onDelete);
  informer.on(k8s.ERROR, restart);
  start();
  return {
    cache: informer,
    stop: async () => {
      stopped = true;
      await informer.stop();
    },
  };
}

/** The HTTP status of a client-node error, if it is one. */
export function statusCode(error: unknown): number | undefined {
  return error instanceof k8s.ApiException ? error.code : undefined;
}
