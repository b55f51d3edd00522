/**
 * `kok dev up | down | env | status | logs`: the local meta-cluster (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler on loopback) and its node agent. See docs/dev-cluster.md.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_PORT_BASE, DEFAULT_STATE_DIR, defaultConfig, loadConfig, saveConfig, statePaths, type DevConfig } from "../dev/config";
import { nodePaths } from "../dev/node-agent/cleanup";

const USAGE = `usage: kok dev <up|down|env|status|logs> [flags]

  up      start (or finish starting) the local meta-cluster and its node agent; waits until ready
          --state-dir DIR    where certificates, kubeconfig, data, logs and pid files live
                             (default ${DEFAULT_STATE_DIR}; also every other subcommand)
          --port-base N      ports are N+2379/2380 (etcd), N+6443 (apiserver), N+10257, N+10259
                             (default ${DEFAULT_PORT_BASE}; fixed at the first up of a state dir)
          --pod-cidr CIDR    addresses of the node's Pods (default 10.88.0.0/16)
          --no-node          control plane only: no node agent, Pods stay Pending
  down    stop every process \`up\` started and remove the node's namespaces
          --purge            also delete the state directory
  env     print \`export KUBECONFIG=...\` for the admin kubeconfig
  status  list the processes and whether they are healthy
  logs POD [--namespace NS] [--container NAME]
          print a Pod container's log from the node agent`;

function requireConfig(stateDir: string): DevConfig {
  const config = loadConfig(stateDir);
  if (!config) throw new Error(`no dev cluster in ${stateDir}: run \`kok dev up --state-dir ${stateDir}\` first`);
  return config;
}

function printLogs(config: DevConfig, pod: string, namespace: string | undefined, container: string | undefined): number {
  const dir = nodePaths(config).logs;
  const files = existsSync(dir) ? readdirSync(dir) : [];
  const matches = files.filter((f) => {
    const [ns, name, c] = f.replace(/\.log$/, "").split("_");
    return name === pod && (!namespace || ns === namespace) && (!container || c === container);
  });
  if (matches.length !== 1) {
    console.error(matches.length ? `several logs match: ${matches.join(", ")}; add --namespace/--container` : `no log of pod ${pod} in ${dir}`);
    return 1;
  }
  process.stdout.write(readFileSync(join(dir, matches[0])));
  return 0;
}

export async function runDev(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
      "port-base": { type: "string" },
      "pod-cidr": { type: "string" },
      "no-node": { type: "boolean", default: false },
      purge: { type: "boolean", default: false },
      namespace: { type: "string", short: "n" },
      container: { type: "string", short: "c" },
    },
  });
  const stateDir = values["state-dir"] ?? DEFAULT_STATE_DIR;
  const log = (line: string) => console.log(line);
  switch (sub) {
    case "up": {
      const withNode = !values["no-node"];
      if (withNode && process.getuid?.() !== 0) {
        throw new Error("the dev node runs Pods in network namespaces, which needs root: run as root, or pass --no-node for the control plane only");
      }
      const portBase = values["port-base"] === undefined ? DEFAULT_PORT_BASE : Number(values["port-base"]);
      if (!Number.isInteger(portBase) || portBase < 1024 || portBase + 10259 > 65535) throw new Error(`--port-base ${values["port-base"]}: want an integer 1024..${65535 - 10259}`);
      let config = loadConfig(stateDir);
      if (config && (values["port-base"] !== undefined || values["pod-cidr"] !== undefined)) {
        log(`note: ${stateDir} already has a dev cluster; its saved ports and pod CIDR are kept (down --purge to change them)`);
      }
      if (!config) {
        config = defaultConfig(stateDir, portBase, values["pod-cidr"]);
        saveConfig(config);
      }
      log(`kok dev up (state ${config.stateDir})`);
      // Loaded on demand: the node agent process and `kok validate` need none of it (nor Pulumi's SDK).
      const { devUp } = await import("../dev/meta-cluster");
      await devUp(config, { withNode, log });
      return 0;
    }
    case "down": {
      const config = loadConfig(stateDir);
      if (!config) {
        log(`nothing to stop: no dev cluster in ${stateDir}`);
        return 0;
      }
      const { devDown } = await import("../dev/meta-cluster");
      await devDown(config, { purge: values.purge ?? false, log });
      log("kok dev down: done");
      return 0;
    }
    case "env":
      console.log(`export KUBECONFIG=${statePaths(requireConfig(stateDir).stateDir).adminKubeconfig}`);
      return 0;
    case "status": {
      const { devStatus } = await import("../dev/meta-cluster");
      const statuses = await devStatus(requireConfig(stateDir));
      for (const s of statuses) log(`${s.name.padEnd(24)} ${s.pid ? `pid ${s.pid}`.padEnd(12) : "stopped".padEnd(12)} ${s.healthy ? "healthy" : "not healthy"}`);
      return statuses.every((s) => s.healthy) ? 0 : 1;
    }
    case "logs":
      if (!positionals[0]) throw new Error("usage: kok dev logs POD [--namespace NS] [--container NAME]");
      return printLogs(requireConfig(stateDir), positionals[0], values.namespace, values.container);
    default:
      console.error(USAGE);
      return sub === undefined || sub === "help" || sub === "--help" ? 0 : 2;
  }
}
