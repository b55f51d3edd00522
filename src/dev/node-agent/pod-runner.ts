/**
 * One Pod on the dev node, from its network namespace to its containers' processes and back:
 * `start` gives it an address and a namespace, writes its volumes, resolves every container
 * (image → local binary, env, argv, mounts) and starts them; preparation failures are reported
 * in the container's waiting reason and retried. `stop` ends the processes, then removes the
 * namespace, the Pod's files and its address.
 */
import { mkdirSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import type * as k8s from "@kubernetes/client-node";
import { ContainerRunner, type ContainerState } from "./container";
import { binaryForCommand, binaryForImage, ImageNotAvailableError } from "./images";
import type { PodAddressAllocator } from "./ipam";
import { createPodNetwork, deletePodNetwork } from "./network";
import { containerArgv, containerEnv, containerPrelude, type BindMount, type KeyLookup, type PodFacts } from "./pod-spec";
import type { PodSnapshot } from "./pod-status";
import { isFile, prepareVolumes, type VolumeSources } from "./volumes";

export interface PodRunnerDeps {
  readonly tag: string;
  readonly ipam: PodAddressAllocator;
  readonly hostIP: string;
  readonly clusterDomain: string;
  readonly podsDir: string;
  readonly logsDir: string;
  readonly sources: VolumeSources;
  readonly lookupKey: KeyLookup;
  readonly log: (line: string) => void;
  /** Called whenever the Pod's status may have changed. */
  readonly onChange: (runner: PodRunner) => void;
}

const RETRY_MS = 5000;

export class PodRunner {
  readonly uid: string;
  private podIP?: string;
  private netns?: string;
  private readonly containers = new Map<string, ContainerRunner>();
  /** Containers that could not be prepared yet: why, as a waiting state. */
  private readonly pending = new Map<string, Extract<ContainerState, { kind: "waiting" }>>();
  private stopped = false;
  private retryTimer?: NodeJS.Timeout;
  private readonly startTime = new Date();

  constructor(
    readonly pod: k8s.V1Pod,
    private readonly deps: PodRunnerDeps,
  ) {
    this.uid = pod.metadata?.uid ?? "";
    for (const c of pod.spec?.containers ?? []) this.pending.set(c.name, { kind: "waiting", reason: "ContainerCreating" });
  }

  get key(): string {
    return `${this.pod.metadata?.namespace}/${this.pod.metadata?.name}`;
  }

  private get podDir(): string {
    return join(this.deps.podsDir, this.uid);
  }

  snapshot(): PodSnapshot {
    return {
      podIP: this.podIP,
      hostIP: this.deps.hostIP,
      startTime: this.startTime,
      containers: (this.pod.spec?.containers ?? []).map((c) => {
        const runner = this.containers.get(c.name);
        if (!runner) {
          return { name: c.name, image: c.image ?? "", state: this.pending.get(c.name) ?? { kind: "waiting", reason: "ContainerCreating" }, restartCount: 0, started: false, ready: false };
        }
        return {
          name: c.name,
          image: c.image ?? "",
          state: runner.state,
          lastTerminated: runner.lastTerminated,
          restartCount: runner.restartCount,
          started: runner.started,
          ready: runner.ready,
        };
      }),
    };
  }

  async start(): Promise<void> {
    const { pod, deps } = this;
    const name = pod.metadata?.name ?? "";
    const namespace = pod.metadata?.namespace ?? "default";
    this.podIP = deps.ipam.allocate(this.uid);
    const search = [`${namespace}.svc.${deps.clusterDomain}`, `svc.${deps.clusterDomain}`, deps.clusterDomain];
    const hostname = pod.spec?.hostname ?? name;
    const fqdn = pod.spec?.subdomain ? `${hostname}.${pod.spec.subdomain}.${namespace}.svc.${deps.clusterDomain}` : undefined;
    const network = await createPodNetwork(deps.tag, this.uid, this.podIP, deps.ipam.prefix, deps.ipam.gateway, {
      resolvConf: `search ${search.join(" ")}\nnameserver ${deps.ipam.gateway}\noptions ndots:5\n`,
      hosts: `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${this.podIP}\t${[fqdn, hostname].filter(Boolean).join(" ")}\n`,
    });
    this.netns = network.netns;
    deps.onChange(this);
    await this.prepareAndStart();
  }

  /** Volumes and containers; on failure the reason goes to status and it is tried again. */
  private async prepareAndStart(): Promise<void> {
    if (this.stopped || !this.podIP || !this.netns) return;
    if (this.pod.spec?.initContainers?.length) {
      // Starting the main containers without their init steps would be a lie about readiness.
      const message = "init containers are not supported by the kok dev node";
      for (const c of this.pending.keys()) this.pending.set(c, { kind: "waiting", reason: "CreateContainerConfigError", message });
      this.deps.log(`${this.key}: ${message}`);
      this.deps.onChange(this);
      return;
    }
    const facts: PodFacts = { pod: this.pod, podIP: this.podIP, hostIP: this.deps.hostIP };
    let volumes: Map<string, string>;
    try {
      mkdirSync(this.podDir, { recursive: true });
      volumes = await prepareVolumes(this.podDir, facts, this.deps.sources);
    } catch (error) {
      for (const c of this.pending.keys()) this.pending.set(c, { kind: "waiting", reason: "CreateContainerConfigError", message: (error as Error).message });
      return this.retry(error);
    }
    for (const container of this.pod.spec?.containers ?? []) {
      if (this.containers.has(container.name)) continue;
      try {
        const launch = await this.resolveContainer(container, facts, volumes);
        this.pending.delete(container.name);
        const runner = new ContainerRunner(launch, () => this.deps.onChange(this), (line) => this.deps.log(`${this.key}: ${line}`));
        this.containers.set(container.name, runner);
        runner.start();
      } catch (error) {
        const reason = error instanceof ImageNotAvailableError ? "ErrImagePull" : "CreateContainerConfigError";
        this.pending.set(container.name, { kind: "waiting", reason, message: (error as Error).message });
      }
    }
    if (this.pending.size) this.retry(new Error([...this.pending.values()].map((p) => p.message).join("; ")));
    else this.deps.onChange(this);
  }

  private retry(error: unknown): void {
    this.deps.log(`${this.key}: ${(error as Error).message}; retrying in ${RETRY_MS / 1000}s`);
    this.deps.onChange(this);
    if (!this.stopped) this.retryTimer = setTimeout(() => void this.prepareAndStart(), RETRY_MS);
  }

  private async resolveContainer(container: k8s.V1Container, facts: PodFacts, volumes: Map<string, string>) {
    const image = binaryForImage(container.image ?? "");
    const env = await containerEnv(container, facts, this.deps.lookupKey);
    const argv = containerArgv(container, image.name, env);
    if (argv[0] !== image.name && basename(argv[0]) !== image.name) {
      throw new ImageNotAvailableError(`command "${argv[0]}" is not the binary of image ${container.image} (${image.name})`);
    }
    argv[0] = image.path;
    const mounts: BindMount[] = (container.volumeMounts ?? []).map((m) => {
      const base = volumes.get(m.name);
      if (!base) throw new Error(`volumeMount ${m.name}: no such volume`);
      const source = m.subPath ? join(base, m.subPath) : base;
      return { source, target: m.mountPath, readOnly: Boolean(m.readOnly), isFile: isFile(source) };
    });
    const namespace = this.pod.metadata?.namespace ?? "default";
    const podName = this.pod.metadata?.name ?? "";
    return {
      container,
      netns: this.netns ?? "",
      podIP: this.podIP ?? "",
      argv,
      env: { HOSTNAME: this.pod.spec?.hostname ?? podName, ...env },
      prelude: containerPrelude(this.pod.spec?.hostname ?? podName, mounts),
      // Exec probes are not $(VAR)-expanded (a kubelet does not either).
      resolveCommand: (command: readonly string[]) => [binaryForCommand(container.image ?? "", command[0]), ...command.slice(1)],
      logFile: join(this.deps.logsDir, `${namespace}_${podName}_${container.name}.log`),
      pidFile: join(this.podDir, "pids", `${container.name}.pid`),
    };
  }

  /** Ends the processes (grace period capped at 30 s), then the namespace, files and address. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const graceMs = Math.min(30, this.pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000;
    await Promise.all([...this.containers.values()].map((c) => c.stop(graceMs)));
    if (this.netns) await deletePodNetwork(this.netns);
    rmSync(this.podDir, { recursive: true, force: true });
    this.deps.ipam.release(this.uid);
  }
}
