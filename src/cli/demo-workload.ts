/**
 * The demo's last step: `hello` (dev/hello-workload.ts: two busybox httpd Pods spread over the two
 * worker Nodes, a ClusterIP Service and a headless one) applied into the business cluster, followed
 * until its Pods are Ready, then asked through its Service name from one of its own Pods, which
 * takes the pod network, kube-proxy and CoreDNS of the business cluster. A Pod that does not get
 * Ready does not fail the demo: it is named with its events, and the demo goes on to its hints.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { helloWorkload } from "../dev/hello-workload";
import type { DemoContext } from "./demo-machines";

/** How long the hello Pods get to be Ready before the demo names the stuck one and goes on. */
const READY_TIMEOUT_MS = 5 * 60_000;
/** How long the first answer through the Service may take (endpoints, kube-proxy rules, DNS). */
const ANSWER_TIMEOUT_MS = 60_000;

interface PodJson {
  metadata: { name: string };
  spec: { nodeName?: string };
  status: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { ready: boolean; state?: { waiting?: { reason?: string; message?: string }; terminated?: { reason?: string } } }[];
  };
}

export interface DemoWorkload {
  /** The manifest written to the demo's directory. */
  readonly file: string;
  /** Whether its Pods got Ready and it answered through its Service. */
  readonly answered: boolean;
}

const podReady = (p: PodJson) => p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

function podLine(p: PodJson): string {
  const waiting = p.status.containerStatuses?.find((c) => !c.ready)?.state;
  const why = waiting?.waiting?.reason ?? waiting?.terminated?.reason;
  return `${p.metadata.name}${p.spec.nodeName ? ` on ${p.spec.nodeName}` : ""}: ${podReady(p) ? "Ready" : `${p.status.phase ?? "Pending"}${why ? ` (${why})` : ""}`}`;
}

/** Applies the workload, waits for its Pods, asks it through the Service; never throws for the workload's sake. */
export async function runDemoWorkload(ctx: DemoContext, businessKubeconfig: string): Promise<DemoWorkload | undefined> {
  let stop = false;
  void ctx.interrupted.then(() => (stop = true));
  const file = join(ctx.work, "hello.yaml");
  writeFileSync(file, `# The demo's workload (src/dev/hello-workload.ts), written by \`npm start\`:\n#   kubectl --kubeconfig ${businessKubeconfig} apply --server-side -f ${file}\n` + helloWorkload().map((o) => stringify(o)).join("---\n"));
  const applied = Date.now();
  ctx.say(`    kubectl --kubeconfig ${businessKubeconfig} apply --server-side -f ${file}`);
  await ctx.business(["apply", "--server-side", "--field-manager=kok-demo", "-f", file]);
  let last = "";
  let pods: PodJson[] = [];
  while (!stop) {
    pods = (JSON.parse(await ctx.business(["get", "pods", "-l", "app=hello", "-o", "json"]).catch(() => '{"items":[]}')) as { items: PodJson[] }).items;
    const line = pods.length ? pods.map(podLine).join("; ") : "no Pods yet";
    if (line !== last) ctx.say(`    Pods: ${line} (${ctx.elapsed()})`);
    last = line;
    if (pods.length >= 2 && pods.every(podReady)) break;
    if (Date.now() - applied > READY_TIMEOUT_MS) {
      await explainStuck(ctx, businessKubeconfig, pods);
      return { file, answered: false };
    }
    await Promise.race([new Promise((r) => setTimeout(r, 2000)), ctx.interrupted]);
  }
  if (stop) return undefined;
  ctx.say(`    the hello Pods are Ready ${Math.round((Date.now() - applied) / 1000)}s after the apply (${ctx.elapsed()})`);

  ctx.say(`    kubectl --kubeconfig ${businessKubeconfig} exec deploy/hello -- wget -qO- http://hello`);
  const answers = new Set<string>();
  let failure = "";
  const asked = Date.now();
  // A few requests: kube-proxy spreads them over both replicas, so the answers usually name both nodes.
  for (let answered = 0; !stop && answers.size < 2 && answered < 6 && Date.now() - asked < ANSWER_TIMEOUT_MS; ) {
    try {
      // No `wget -T`: this busybox's wget dies of SIGSEGV with it (exit 139); kubectl is given the time limit instead.
      answers.add((await ctx.business(["exec", "deploy/hello", "--", "wget", "-qO-", "http://hello"], undefined, 15_000)).trim());
      answered++;
    } catch (error) {
      failure = (error as Error).message;
      await Promise.race([new Promise((r) => setTimeout(r, 2000)), ctx.interrupted]);
    }
  }
  if (!answers.size) {
    ctx.say(`    no answer through the Service within ${ANSWER_TIMEOUT_MS / 1000}s: ${failure.slice(0, 400)}`);
    ctx.say(`      look at: kubectl --kubeconfig ${businessKubeconfig} -n kube-system get pods -o wide (kube-proxy, CoreDNS, flannel), and get endpointslices -l kubernetes.io/service-name=hello`);
    return { file, answered: false };
  }
  for (const answer of answers) ctx.say(`      → ${answer}`);
  ctx.say(`    the workload answered through its Service name ${Math.round((Date.now() - applied) / 1000)}s after the apply (${ctx.elapsed()})`);
  return { file, answered: true };
}

/** Names the first Pod that is not Ready, with its latest events, and where to look. */
async function explainStuck(ctx: DemoContext, businessKubeconfig: string, pods: PodJson[]): Promise<void> {
  const stuck = pods.find((p) => !podReady(p));
  ctx.say(`    the hello Pods are not Ready after ${READY_TIMEOUT_MS / 60_000} minutes${stuck ? `: ${podLine(stuck)}` : " (none was created)"}; the demo goes on without them`);
  if (stuck) {
    const events = await ctx
      .business(["get", "events", "--field-selector", `involvedObject.name=${stuck.metadata.name}`, "--sort-by=.lastTimestamp", "-o", "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message", "--no-headers"])
      .catch((error: Error) => error.message);
    for (const event of events.trim().split("\n").slice(-8)) ctx.say(`      ${event.slice(0, 300)}`);
  }
  ctx.say(`      look at: kubectl --kubeconfig ${businessKubeconfig} describe pod ${stuck?.metadata.name ?? "-l app=hello"}, and -n kube-system get pods -o wide (flannel, kube-proxy, CoreDNS)`);
}
