/**
 * What the dev node knows of Services: their EndpointSlices, kept by informers, answering the DNS
 * names Pods use (`<svc>.<ns>.svc[.<domain>]`, `<hostname>.<svc>.<ns>.svc[.<domain>]`) and
 * giving NodePort proxies their backends. There is no Service IP routing on this node: a Service
 * name resolves straight to its ready endpoints, which is enough because our Services use
 * port == targetPort.
 */
import type * as k8s from "@kubernetes/client-node";

export interface Backend {
  readonly address: string;
  readonly port: number;
}

export class ServiceRegistry {
  private readonly services = new Map<string, k8s.V1Service>();
  /** Slices by `<ns>/<slice name>`. */
  private readonly slices = new Map<string, k8s.V1EndpointSlice>();

  constructor(private readonly clusterDomain: string) {}

  upsertService(svc: k8s.V1Service): void {
    this.services.set(`${svc.metadata?.namespace}/${svc.metadata?.name}`, svc);
  }

  /** Forgets the Service `namespace/name`. */
  deleteService(key: string): void {
    this.services.delete(key);
  }

  upsertSlice(slice: k8s.V1EndpointSlice): void {
    this.slices.set(`${slice.metadata?.namespace}/${slice.metadata?.name}`, slice);
  }

  /** Forgets the EndpointSlice `namespace/name`. */
  deleteSlice(key: string): void {
    this.slices.delete(key);
  }

  allServices(): k8s.V1Service[] {
    return [...this.services.values()];
  }

  private slicesOf(namespace: string, service: string): k8s.V1EndpointSlice[] {
    return [...this.slices.values()].filter(
      (s) => s.metadata?.namespace === namespace && s.metadata?.labels?.["kubernetes.io/service-name"] === service && s.addressType === "IPv4",
    );
  }

  /**
   * Endpoints a client may use. The EndpointSlice controller already marks every endpoint ready
   * when the Service has publishNotReadyAddresses, which is how etcd members find each other
   * before any of them is Ready.
   */
  private endpointsOf(namespace: string, service: string): { addresses: string[]; hostname?: string }[] {
    // The API sends `endpoints: null` for a Service that has none.
    return this.slicesOf(namespace, service).flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready !== false));
  }

  /** A records for a name, or undefined when it is not a name of ours (NXDOMAIN). */
  lookup(fqdn: string): string[] | undefined {
    let name = fqdn.toLowerCase().replace(/\.$/, "");
    const domainSuffix = `.${this.clusterDomain}`;
    if (name.endsWith(domainSuffix)) name = name.slice(0, -domainSuffix.length);
    if (!name.endsWith(".svc")) return undefined;
    const parts = name.slice(0, -".svc".length).split(".");
    if (parts.length === 2) {
      const [service, namespace] = parts;
      if (!this.services.has(`${namespace}/${service}`)) return undefined;
      return unique(this.endpointsOf(namespace, service).flatMap((e) => e.addresses));
    }
    if (parts.length === 3) {
      const [hostname, service, namespace] = parts;
      const matches = this.endpointsOf(namespace, service).filter((e) => e.hostname === hostname);
      return matches.length ? unique(matches.flatMap((e) => e.addresses)) : undefined;
    }
    return undefined;
  }

  /** Ready backends of one Service port (matched by port name, as kube-proxy does). */
  backends(namespace: string, service: string, portName: string | undefined): Backend[] {
    const result: Backend[] = [];
    for (const slice of this.slicesOf(namespace, service)) {
      const port = (slice.ports ?? []).find((p) => (p.name ?? "") === (portName ?? ""));
      if (!port?.port) continue;
      for (const endpoint of slice.endpoints ?? []) {
        if (endpoint.conditions?.ready === false) continue;
        for (const address of endpoint.addresses) result.push({ address, port: port.port });
      }
    }
    return result;
  }
}

function unique(values: string[]): string[] {
  return [...new Set(values)].sort();
}
