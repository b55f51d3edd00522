/**
 * `npm start` / `kok demo`: the whole product on this machine. Starts the local meta-cluster
 * (`kok dev up`), installs the CRDs, runs the operator in this process with a file:// backend,
 * applies examples/operator/cluster.yaml (its apiserver at the real node's IP, where the worker
 * hosts reach it) and follows the Cluster from Provisioning to Ready; then starts two worker hosts
 * (network hosts on the real node, dev/host-netns.ts) and a package mirror, applies a
 * ClusterPackageVersion and two Machines (demo-machines.ts) and follows them until their Nodes are
 * Ready; then runs a small workload in the business cluster and asks it through its Service
 * (demo-workload.ts); then says how to look at everything and what to try next. Ctrl-C stops the
 * operator and the hosts (with their kubelets and containerd); the meta-cluster keeps running
 * until `kok dev down`.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { parse, stringify } from "yaml";
import { legacyStackNameOf, mastersNamespaceOf } from "../api/v1alpha1";
import { DEFAULT_STATE_DIR, defaultConfig, loadConfig, saveConfig, statePaths } from "../dev/config";
import { devUp } from "../dev/meta-cluster";
import { realNodeLayout } from "../dev/node/layout";
import { NETNS_WORKER_DEFAULTS, type FleetHosts } from "../dev/sandbox-fleet";
import { toolchainBinary, toolchainEngineEnv } from "../dev/toolchain";
import { allCustomResourceDefinitions } from "../api/v1alpha1/crds";
import { startOperator, type RunningOperator } from "../operator/operator";
import { devAdminPolicy } from "../dev/dev-policy";
import { followDemoMachines, runKubectl, startDemoFleet, type DemoContext } from "./demo-machines";
import { runDemoWorkload } from "./demo-workload";

const REPO = resolve(__dirname, "..", "..");
const METRICS = "127.0.0.1:18080";
const say = (line: string) => console.log(`[demo] ${line}`);

/**
 * Resolves on the first Ctrl-C (or SIGTERM); a second one exits at once. A repeat within a second
 * is the same Ctrl-C passed on by a wrapper (tsx's CLI re-sends a signal it did not see its child
 * report), not the user's second one.
 */
function interruption(): Promise<void> {
  return new Promise<void>((done) => {
    let firstAt = 0;
    const onSignal = () => {
      if (!firstAt) {
        firstAt = Date.now();
        say("stopping (Ctrl-C again to quit at once; `npm run kok -- dev down` then stops what is left)");
        done();
      } else if (Date.now() - firstAt > 1000) {
        process.exit(130);
      }
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

/**
 * examples/operator/cluster.yaml with its apiserver's externalHost set to this dev cluster's node
 * IP (the example has the default config's), written to `work`: the worker hosts reach the
 * business apiserver at the node IP's NodePort, and so does this machine.
 */
function demoClusterManifest(work: string, nodeIP: string): { file: string; changed: boolean } {
  const example = join(REPO, "examples", "operator", "cluster.yaml");
  const cluster = parse(readFileSync(example, "utf8")) as { spec: { apiServer: { service: { externalHost?: string } } } };
  if (cluster.spec.apiServer.service.externalHost === nodeIP) return { file: example, changed: false };
  cluster.spec.apiServer.service.externalHost = nodeIP;
  const file = join(work, "cluster.yaml");
  writeFileSync(file, `# examples/operator/cluster.yaml with externalHost = this dev cluster's node IP, written by \`npm start\`
${stringify(cluster)}`);
  return { file, changed: true };
}

/** The demo's Cluster, whose masters' namespace the hints name. */
const DEMO_CLUSTER = { metadata: { namespace: "fleet", name: "demo" } };

/**
 * The demo's Pulumi state describes what it created in one meta-cluster. After `kok dev down
 * --purge` and a new `up`, that state names resources that no longer exist, and an `up` from it
 * would change nothing: it is moved aside (the meta-cluster is told apart by kube-system's uid).
 */
async function setAsideStaleState(work: string, kubectl: (args: string[]) => Promise<string>): Promise<void> {
  const owner = join(work, "meta-cluster-uid");
  const uid = (await kubectl(["get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}"])).trim();
  const previous = existsSync(owner) ? readFileSync(owner, "utf8").trim() : undefined;
  // Without a record (a demo from before this check): stale if the demo Cluster's namespace is
  // gone, under its name or the legacy one (a migrated stack keeps its masters there).
  const namespaces = (await kubectl(["get", "namespaces", "-o", "name"])).split("\n");
  const stale = previous ? previous !== uid : ![mastersNamespaceOf(DEMO_CLUSTER), legacyStackNameOf(DEMO_CLUSTER)].some((ns) => namespaces.includes(`namespace/${ns}`));
  if (stale && existsSync(join(work, "state"))) {
    const aside = join(work, `state.before-${new Date().toISOString().replace(/[:.]/g, "-")}`);
    renameSync(join(work, "state"), aside);
    say(`    the Pulumi state in ${join(work, "state")} belonged to an earlier meta-cluster: moved to ${aside}`);
  }
  writeFileSync(owner, `${uid}\n`);
}

export async function runDemo(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error("the demo runs the meta-cluster's Pods in network namespaces and its worker hosts' sshd as root: run `npm start` as root");
  const started = Date.now();
  const elapsed = () => {
    const s = Math.round((Date.now() - started) / 1000);
    return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  };
  const work = join(homedir(), ".kube-on-kube", "demo");
  mkdirSync(work, { recursive: true });
  const interrupted = interruption();
  let stopRequested = false;
  void interrupted.then(() => (stopRequested = true));
  let operator: RunningOperator | undefined;
  let fleet: FleetHosts | undefined;
  try {
    say("1/7 starting the local meta-cluster (etcd, kube-apiserver, controller-manager, scheduler, a node: kubelet + containerd)");
    const config = loadConfig(DEFAULT_STATE_DIR) ?? defaultConfig(DEFAULT_STATE_DIR);
    saveConfig(config);
    await devUp(config, { withNode: true, log: (line) => say(`    ${line.trim()}`) });
    const kubeconfig = statePaths(DEFAULT_STATE_DIR).adminKubeconfig;
    const kubectlBinary = toolchainBinary("kubectl");
    const kubectl = (args: string[], input?: string) => runKubectl(kubectlBinary, kubeconfig, args, input);
    if (stopRequested) return 130;

    say("2/7 installing the kube-on-kube CRDs");
    const crds = join(work, "crds.yaml");
    writeFileSync(crds, allCustomResourceDefinitions().map((d) => stringify(d)).join("---\n"));
    await kubectl(["apply", "-f", crds]);
    await kubectl(["wait", "--for=condition=Established", "crd/clusters.kubeonkube.io", "crd/machines.kubeonkube.io", "crd/clusterpackageversions.kubeonkube.io", "--timeout=60s"]);
    await kubectl(["create", "namespace", "fleet"]).catch(() => "already there from an earlier run");
    await setAsideStaleState(work, kubectl);

    say("3/7 starting the operator (file:// backend in ~/.kube-on-kube/demo)");
    const passphraseFile = join(work, "passphrase");
    let passphrase: string;
    try {
      passphrase = readFileSync(passphraseFile, "utf8");
    } catch {
      passphrase = randomBytes(24).toString("base64");
      writeFileSync(passphraseFile, passphrase, { mode: 0o600 });
    }
    mkdirSync(join(work, "state"), { recursive: true });
    operator = await startOperator({
      kubeconfigPath: kubeconfig,
      backendUrl: `file://${join(work, "state")}`,
      workRoot: join(work, "work"),
      resyncMs: 60_000,
      concurrency: 2,
      metricsAddr: METRICS,
      engineEnv: toolchainEngineEnv(passphrase),
      // What the fleet of network hosts (step 5) reports as its workerDefaults.
      workerDefaults: NETNS_WORKER_DEFAULTS,
      // The hosts subnet and the dev registry (the catalog's registryMirrors) are allowed here.
      policy: devAdminPolicy(config),
      // Short enough to watch: a healthy Machine is looked at every 10 s, its host probed every
      // minute, and a Node NotReady for 20 s gets its services restarted.
      healthCheckMs: 10_000,
      probeIntervalMs: 60_000,
      remediation: { notReadyTimeoutMs: 20_000, maxRemediations: 3, minHealthyPeriodMs: 120_000, maxUnhealthyShare: 0.5 },
      log: (line) => {
        if (line.level !== "info") say(`    operator: ${line.msg} ${line.error ?? ""}`);
      },
    });

    const nodeIP = realNodeLayout(config).nodeIP;
    const clusterManifest = demoClusterManifest(work, nodeIP);
    say(
      clusterManifest.changed
        ? `4/7 kubectl apply -f ${clusterManifest.file} (examples/operator/cluster.yaml with externalHost ${nodeIP}, this dev cluster's node IP)`
        : `4/7 kubectl apply -f examples/operator/cluster.yaml (apiserver at the node IP ${nodeIP}, NodePort 31600)`,
    );
    await kubectl(["apply", "-f", clusterManifest.file]);
    let last = "";
    let adminKubeconfig: string | undefined;
    while (!stopRequested) {
      const status = JSON.parse(await kubectl(["-n", "fleet", "get", "cluster", "demo", "-o", "json"])).status ?? {};
      const ready = status.phase === "Ready" && status.lastOperation?.result === "succeeded";
      if (ready) adminKubeconfig = await kubectl(["-n", "fleet", "get", "secret", "demo-admin-kubeconfig", "-o", "jsonpath={.data.kubeconfig}"]).catch(() => undefined);
      const line = `phase ${status.phase ?? "Pending"}${status.lastOperation ? `, last operation ${status.lastOperation.kind} ${status.lastOperation.result}` : ""}${
        ready && !adminKubeconfig ? "; its Secret demo-admin-kubeconfig is missing: the operator puts it back at its next resync (60s)" : ""
      }`;
      if (line !== last) say(`    Cluster fleet/demo: ${line} (${elapsed()})`);
      last = line;
      if (adminKubeconfig) break;
      if (status.phase === "Failed") {
        say(`the Cluster failed: ${status.lastOperation?.message ?? JSON.stringify(status.conditions)}`);
        say("see `kubectl -n fleet describe cluster demo`; fix what it names, then run `npm start` again");
        return 1;
      }
      await Promise.race([new Promise((r) => setTimeout(r, 2000)), interrupted]);
    }
    if (!adminKubeconfig) return 130;
    const businessKubeconfig = join(work, "demo.kubeconfig");
    writeFileSync(businessKubeconfig, Buffer.from(adminKubeconfig, "base64"), { mode: 0o600 });
    const business = (args: string[], input?: string, timeoutMs?: number) => runKubectl(kubectlBinary, businessKubeconfig, args, input, timeoutMs);
    // A Cluster Ready from an earlier run may still have its masters' Pods starting again.
    for (let waited = false; !(await business(["get", "--raw", "/readyz"]).then(() => true, () => false)); waited = true) {
      if (!waited) say("    waiting for the business cluster's apiserver to answer (its Pods are starting)");
      await Promise.race([new Promise((r) => setTimeout(r, 2000)), interrupted]);
      if (stopRequested) return 130;
    }
    const clusterReady = elapsed();
    say(`    the business cluster is Ready after ${clusterReady}`);

    say(`5/7 starting 2 worker hosts (network namespaces in ${config.hostsCIDR} on the node's hosts bridge, sshd on port 22) and the package mirror`);
    const ctx: DemoContext = {
      work,
      hostsHome: statePaths(DEFAULT_STATE_DIR).hosts,
      kubectl,
      business,
      say,
      elapsed,
      interrupted,
    };
    const demoFleet = await startDemoFleet(ctx, config);
    fleet = demoFleet.fleet;

    say("6/7 following the Machines: install (containerd, runc, CNI, kubelet), join, Node Ready");
    if (!(await followDemoMachines(ctx, fleet))) return 130;
    const hosts = fleet.hosts;
    const machinesReady = elapsed();

    say("7/7 a workload in the business cluster: Deployment hello (2 busybox httpd Pods, one per Node), Services hello and hello-headless");
    const workload = await runDemoWorkload(ctx, businessKubeconfig);
    if (!workload) return 130;
    say(
      `the business cluster was Ready after ${clusterReady}, its ${hosts.length} Machines after ${machinesReady}, ${
        workload.answered ? `its workload answered after ${elapsed()}` : "its workload did not answer (see above)"
      }:`,
    );
    console.log(
      nextSteps({
        kubeconfig,
        businessKubeconfig,
        release: Object.entries(demoFleet.catalogFiles).find(([kubelet]) => kubelet !== demoFleet.kubelet) as [string, string],
        kubeletPidFile: join(hosts[0].root, "run/kube-on-kube/kubelet.pid"),
        machines: hosts.map((h) => h.name),
        hosts: hosts.map((h) => ({ name: h.name, ip: h.ip, netns: h.netns?.name ?? "" })),
      }),
    );
    await interrupted;
    return 0;
  } finally {
    try {
      await operator?.stop();
    } finally {
      await fleet?.stop();
    }
    if (operator) say(`stopped the operator${fleet ? ", the worker hosts and the mirror" : ""}; the meta-cluster keeps running (\`npm run kok -- dev down\` stops it)`);
  }
}

/** Where to look and what to try, as aligned `command  # why` lines. */
function nextSteps(o: { kubeconfig: string; businessKubeconfig: string; release: [kubelet: string, file: string]; kubeletPidFile: string; machines: string[]; hosts: { name: string; ip: string; netns: string }[] }): string {
  const [first, canary] = o.machines;
  const block = (rows: [string, string][]) => {
    const width = Math.min(60, Math.max(...rows.map(([command]) => command.length)));
    return rows.map(([command, why]) => (command.length > width ? `  ${command}\n  ${" ".repeat(width)}  # ${why}` : `  ${command.padEnd(width)}  # ${why}`));
  };
  return [
    "",
    ...block([
      [`export KUBECONFIG=${o.kubeconfig}`, "the meta-cluster"],
      ["kubectl get kc -A", "Mode, Version, Phase, Endpoint"],
      ["kubectl -n fleet get km,cpv", "Machines (Cluster, IP, Phase, Kubelet) and their catalog"],
      [`kubectl -n fleet describe km ${first}`, "conditions and events"],
      [`kubectl -n ${mastersNamespaceOf(DEMO_CLUSTER)} get pods -o wide`, "the business cluster's masters: Pods on the meta-cluster's node"],
      [`kubectl -n ${mastersNamespaceOf(DEMO_CLUSTER)} logs deployment/demo-controller-manager`, "a master's log (the node is a real kubelet)"],
      [`kubectl --kubeconfig ${o.businessKubeconfig} get nodes -o wide`, "the business cluster's Nodes"],
      [`curl -s http://${METRICS}/metrics | grep kube_on_kube_`, "the operator's metrics"],
    ]),
    "",
    "The workload (Deployment and Services hello in the business cluster's default namespace):",
    ...block([
      [`kubectl --kubeconfig ${o.businessKubeconfig} get pods,svc -o wide -l app=hello`, "one Pod per Node, the Services"],
      [`kubectl --kubeconfig ${o.businessKubeconfig} exec deploy/hello -- wget -qO- http://hello`, "through the Service name (CoreDNS, kube-proxy, the pod network)"],
      [`kubectl --kubeconfig ${o.businessKubeconfig} port-forward svc/hello 8080:80`, "then, in another shell: curl -s http://127.0.0.1:8080"],
      [`kubectl --kubeconfig ${o.businessKubeconfig} logs -l app=hello`, "httpd's access log of each Pod"],
    ]),
    `The worker hosts are network namespaces on the node's hosts bridge: ${o.hosts.map((h) => `${h.name} ${h.ip} (\`ip netns exec ${h.netns} ip addr\`)`).join(", ")}.`,
    "",
    "Try next (the operator keeps running here):",
    ...block([
      [`kubectl apply -f ${o.release[1]}`, `gray release to kubelet ${o.release[0]}: ${canary} (the canary) first, then ${first}`],
      ["kubectl -n fleet get km -w", "watch it"],
      [`kill $(cat ${o.kubeletPidFile})`, "repair: the Node turns NotReady within a minute, its services are restarted 20 s later"],
      [`kubectl -n ${mastersNamespaceOf(DEMO_CLUSTER)} delete deployment demo-scheduler`, "drift: restored at the next resync (60s)"],
      [`kubectl -n fleet delete km ${first}`, "drain, remove the Node, clean the host"],
    ]),
    "Ctrl-C stops the operator and the worker hosts; `npm run kok -- dev down` stops the meta-cluster.",
    "",
  ].join("\n");
}
