/**
 * `npm start` / `kok demo`: the whole product on this machine. Starts the local meta-cluster
 * (`kok dev up`), installs the CRDs, runs the operator in this process with a file:// backend,
 * applies examples/operator/cluster.yaml and follows the Cluster from Provisioning to Ready,
 * then says how to reach the business cluster and what to try next. Ctrl-C stops the operator;
 * the meta-cluster keeps running until `kok dev down`.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { DEFAULT_STATE_DIR, defaultConfig, loadConfig, saveConfig, statePaths } from "../dev/config";
import { devUp } from "../dev/meta-cluster";
import { toolchainBinary, toolchainEngineEnv } from "../dev/toolchain";
import { allCustomResourceDefinitions } from "../operator/crds";
import { startOperator } from "../operator/operator";

const REPO = resolve(__dirname, "..", "..");
const say = (line: string) => console.log(`[demo] ${line}`);

export async function runDemo(): Promise<number> {
  const started = Date.now();
  const elapsed = () => `${Math.round((Date.now() - started) / 1000)}s`;
  const work = join(homedir(), ".kube-on-kube", "demo");
  mkdirSync(work, { recursive: true });

  say("1/4 starting the local meta-cluster (etcd, kube-apiserver, controller-manager, scheduler, a node)");
  const config = loadConfig(DEFAULT_STATE_DIR) ?? defaultConfig(DEFAULT_STATE_DIR);
  saveConfig(config);
  await devUp(config, { withNode: true, log: (line) => say(`    ${line.trim()}`) });
  const kubeconfig = statePaths(DEFAULT_STATE_DIR).adminKubeconfig;
  const kubectl = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8" });

  say("2/4 installing the kube-on-kube CRDs");
  const crds = join(work, "crds.yaml");
  writeFileSync(crds, allCustomResourceDefinitions().map((d) => stringify(d)).join("---\n"));
  kubectl("apply", "-f", crds);
  kubectl("wait", "--for=condition=Established", "crd/clusters.kubeonkube.io", "--timeout=60s");
  try {
    kubectl("create", "namespace", "fleet");
  } catch {
    // already there from an earlier run
  }

  say("3/4 starting the operator (file:// backend in ~/.kube-on-kube/demo)");
  const passphraseFile = join(work, "passphrase");
  let passphrase: string;
  try {
    passphrase = readFileSync(passphraseFile, "utf8");
  } catch {
    passphrase = randomBytes(24).toString("base64");
    writeFileSync(passphraseFile, passphrase, { mode: 0o600 });
  }
  mkdirSync(join(work, "state"), { recursive: true });
  const operator = await startOperator({
    kubeconfigPath: kubeconfig,
    backendUrl: `file://${join(work, "state")}`,
    workRoot: join(work, "work"),
    resyncMs: 60_000,
    concurrency: 2,
    metricsAddr: "127.0.0.1:18080",
    engineEnv: toolchainEngineEnv(passphrase),
    log: (line) => {
      if (line.level !== "info") say(`    operator: ${line.msg} ${line.error ?? ""}`);
    },
  });

  say("4/4 kubectl apply -f examples/operator/cluster.yaml");
  kubectl("apply", "-f", join(REPO, "examples", "operator", "cluster.yaml"));
  let last = "";
  for (;;) {
    const status = JSON.parse(kubectl("-n", "fleet", "get", "cluster", "demo", "-o", "json")).status ?? {};
    const line = `phase ${status.phase ?? "Pending"}${status.lastOperation ? `, last operation ${status.lastOperation.kind} ${status.lastOperation.result}` : ""}`;
    if (line !== last) say(`    Cluster fleet/demo: ${line} (${elapsed()})`);
    last = line;
    if (status.phase === "Ready" && status.lastOperation?.result === "succeeded") break;
    if (status.phase === "Failed") {
      say(`the Cluster failed: ${status.lastOperation?.message ?? JSON.stringify(status.conditions)}`);
      await operator.stop();
      return 1;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  const businessKubeconfig = join(work, "demo.kubeconfig");
  writeFileSync(businessKubeconfig, Buffer.from(JSON.parse(kubectl("-n", "fleet", "get", "secret", "demo-admin-kubeconfig", "-o", "json")).data.kubeconfig, "base64"), { mode: 0o600 });
  say(`the business cluster is Ready after ${elapsed()}:`);
  console.log(
    [
      "",
      `  export KUBECONFIG=${kubeconfig}             # the meta-cluster`,
      "  kubectl get kc -A                            # Mode, Version, Phase, Endpoint",
      "  kubectl -n fleet describe cluster demo       # conditions and events",
      `  kubectl --kubeconfig ${businessKubeconfig} get --raw /readyz?verbose   # the business cluster`,
      "  curl -s http://127.0.0.1:18080/metrics | grep kube_on_kube_",
      "",
      "Try next (the operator keeps running here):",
      "  kubectl -n fleet-demo delete deployment demo-scheduler   # drift: restored at the next resync (60s)",
      "  kubectl -n fleet delete cluster demo                     # the stack is destroyed, then the finalizer released",
      "Ctrl-C stops the operator; `npx kok dev down` stops the meta-cluster.",
      "",
    ].join("\n"),
  );
  await new Promise<void>((done) => {
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
  await operator.stop();
  return 0;
}
