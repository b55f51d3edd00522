/**
 * A Machine on a network host (src/dev/host-netns.ts) joins a business cluster of the local
 * meta-cluster, with nothing mocked: the operator (in this process) SSHes to the host's own
 * address, the install fetches from the mirror on the machine's end of the node link, containerd
 * and the kubelet run in the host's namespaces, and the kubelet reaches the business apiserver at
 * the node IP's NodePort; a Pod runs there with its images pulled through the catalog's registry
 * mirror (the dev registry) and its log read through the apiserver; `kok dev down` with all of it
 * running ends every process of the host. The Pod's network is the Cluster's add-on's: flannel
 * writes the host's CNI configuration (test/e2e/workloads.test.ts checks Pods across two hosts).
 * The kubelet's certificates (valid one hour here) are in the Machine's status as the host has
 * them, and a renewal at the planned point re-issues both while the Node stays Ready. A rotation
 * of the cluster CA (`kubeonkube.io/rotate-ca`) runs with the worker: phase 1 trusts both CAs
 * everywhere, the worker re-issues its kubelet certificates from the new CA and installs the
 * bundle, phase 2 waits for it and takes the old CA away, the Node stays Ready throughout, and a
 * `kubectl get` loop with the phase-1 kubeconfig never fails.
 */
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { ROTATE_CA_ANNOTATION, type CertificatesStatus, type ClusterObject, type MachineStatus } from "../../src/api/v1alpha1";
import { bundleFingerprint, certificateFingerprint, certificateNotAfter, parseCertificates } from "../../src/runtime/certificates";
import { loadConfig } from "../../src/dev/config";
import { devAdminPolicy } from "../../src/dev/dev-policy";
import { realNodeLayout } from "../../src/dev/node/layout";
import { toolchainBinary, toolchainEngineEnv } from "../../src/dev/toolchain";
import { startOperator, type RunningOperator } from "../../src/operator/operator";
import { devUp, eventually, freeNodePort, installCrds, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";
import { startNetnsFleetHosts, type FleetHosts } from "../support/fleet-hosts";
import { caDataOf, kubectlLoop, type KubectlTry } from "../support/kubectl-loop";
import { minimalSpec } from "../support/specs";
import { sshRun } from "../support/sshd-hosts";

const work = mkdtempSync(join(tmpdir(), "kok-netns-machine-"));
let cluster: DevCluster;
let fleet: FleetHosts | undefined;
let operator: RunningOperator | undefined;
const logs: string[] = [];
let clusterApplied = 0;
let operatorOptions: Parameters<typeof startOperator>[0];
const kubectl = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args], { encoding: "utf8" });
const apply = (name: string, object: unknown) => {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, stringify(object));
  kubectl("apply", "-f", file);
};

beforeAll(async () => {
  cluster = await newDevCluster();
  await devUp(cluster);
  const config = loadConfig(cluster.stateDir)!;
  installCrds(cluster, work);
  fleet = await startNetnsFleetHosts(cluster.stateDir, 1, "nm");
  const host = fleet.hosts[0];
  kubectl("create", "namespace", "fleet");
  kubectl("-n", "fleet", "create", "secret", "generic", "ssh-0", `--from-literal=privateKey=${host.privateKey}`);
  mkdirSync(join(work, "state"), { recursive: true });
  operatorOptions = {
    kubeconfigPath: cluster.kubeconfig,
    backendUrl: `file://${join(work, "state")}`,
    workRoot: join(work, "work"),
    resyncMs: 60_000,
    concurrency: 2,
    metricsAddr: "127.0.0.1:0",
    engineEnv: toolchainEngineEnv("kok-netns-machine-e2e"),
    // An hour: short enough that a renewal re-issues only because the operator asked for it
    // (the TLS provider's own early renewal is then 0 h, kubelet-certificates.ts).
    workerDefaults: { ...fleet.workerDefaults, certificateValidityHours: 1 },
    policy: devAdminPolicy(config),
    log: (line) => void logs.push(JSON.stringify(line)),
  };
  operator = await startOperator(operatorOptions);
  const nodePort = await freeNodePort();
  clusterApplied = Date.now();
  apply("cluster", {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Cluster",
    metadata: { name: "biz", namespace: "fleet" },
    spec: minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: realNodeLayout(config).nodeIP, nodePort, port: 6443 } } }),
  });
  apply("cpv", {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "ClusterPackageVersion",
    metadata: { name: "biz-workers", namespace: "fleet" },
    spec: { clusterRef: { name: "biz" }, packages: fleet.packages("v1.36.3"), registryMirrors: { "registry.k8s.io": [`http://${fleet.registry}`], "docker.io": [`http://${fleet.registry}`] } },
  });
  apply("machine", {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Machine",
    metadata: { name: "w0", namespace: "fleet", annotations: { "kubeonkube.io/install-root": host.root } },
    spec: {
      clusterRef: { name: "biz" },
      ip: host.ip,
      hostname: host.name,
      idc: "netns",
      ssh: { port: host.port, user: host.user, credentialsSecretRef: { name: "ssh-0" }, hostKey: host.hostKey },
      packageVersionRef: { name: "biz-workers" },
    },
  });
}, 900_000);

afterAll(async () => {
  const steps: [string, () => Promise<unknown>][] = [
    ["stop the operator", async () => operator?.stop()],
    ["stop the hosts", async () => fleet?.stop()],
    ["stop the meta-cluster", async () => cluster && kok(["dev", "down", ...cluster.args, "--purge"])],
  ];
  const failures: string[] = [];
  for (const [what, step] of steps) await step().catch((e: unknown) => failures.push(`${what}: ${(e as Error).message}`));
  if (failures.length) throw new Error(`teardown: ${failures.join("; ")}`);
  rmSync(work, { recursive: true, force: true });
}, 300_000);

describe("a Machine on a network host", () => {
  it("installs, and its kubelet in the host's namespaces joins the business cluster through the node IP", async () => {
    const m = await eventually(
      "Machine w0 Ready",
      async () => {
        const machine = JSON.parse(kubectl("-n", "fleet", "get", "machine", "w0", "-o", "json")) as { status?: { phase?: string; lastOperation?: { message?: string } } };
        if (machine.status?.phase === "Failed") throw new Error(`Machine w0 failed: ${JSON.stringify(machine.status)}`);
        return machine.status?.phase === "Ready" ? machine : undefined;
      },
      1_200_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\noperator log tail:\n${logs.slice(-30).join("\n")}`);
    });
    console.log(`Cluster applied → Machine Ready (its Node Ready) in ${((Date.now() - clusterApplied) / 1000).toFixed(0)}s`);
    expect(m.status?.phase).toBe("Ready");
    const host = fleet!.hosts[0];
    // The kubelet listens in the host's own stack on every address, as on a real host.
    expect((await sshRun(host, "ss -Hltn 'sport = :10250'")).stdout).toMatch(/\*:10250|\[::\]:10250|0\.0\.0\.0:10250/);
    // The host's /run/netns is its own: the machine's namespaces are not there.
    expect((await sshRun(host, "ls -A /run/netns")).stdout).not.toContain("kokn-");
    const secret = JSON.parse(kubectl("-n", "fleet", "get", "secret", "biz-admin-kubeconfig", "-o", "json")) as { data: { kubeconfig: string } };
    const kubeconfig = join(work, "biz.kubeconfig");
    writeFileSync(kubeconfig, Buffer.from(secret.data.kubeconfig, "base64"), { mode: 0o600 });
    const node = JSON.parse(execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", kubeconfig, "get", "node", host.name, "-o", "json"], { encoding: "utf8" })) as {
      spec: { podCIDR?: string };
      status: { addresses: { type: string; address: string }[]; conditions: { type: string; status: string }[] };
    };
    expect(node.status.addresses).toContainEqual({ type: "InternalIP", address: host.ip });
    expect(node.status.conditions.find((c) => c.type === "Ready")?.status).toBe("True");
    // Ready because flannel wrote the host's CNI configuration (in the host's own directory).
    expect(existsSync(join(host.root, "etc/cni/net.d/10-flannel.conflist"))).toBe(true);
    // A Pod on it: the pause and busybox images come through the catalog's registry mirror (the dev
    // registry on the machine's end of the node link); the apiserver reads its log from the kubelet.
    const business = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8", stdio: "pipe" });
    const podStarted = Date.now();
    business("run", "hello", "--image=docker.io/library/busybox:1.35.0", "--restart=Never", "--overrides", JSON.stringify({ spec: { nodeName: host.name } }), "--command", "--", "sh", "-c", "echo hello from $(hostname); sleep 3600");
    await eventually("Pod hello Ready", async () => (business("get", "pod", "hello", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}") === "True" ? true : undefined), 300_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${business("describe", "pod", "hello")}`);
    });
    console.log(`Pod on the network host Ready in ${((Date.now() - podStarted) / 1000).toFixed(0)}s`);
    // An address of the node's range (the controller-manager's allocation, flannel's lease).
    expect(node.spec.podCIDR).toMatch(/^10\.244\.\d+\.0\/24$/);
    expect(business("get", "pod", "hello", "-o", "jsonpath={.status.podIP}").startsWith(node.spec.podCIDR!.replace(/0\/24$/, ""))).toBe(true);
    expect(business("logs", "hello")).toBe("hello from hello\n");
  });

  it("reports the kubelet's certificates as the host has them, and renews them at the planned point with the Node staying Ready", async () => {
    const host = fleet!.hosts[0];
    type Certs = MachineStatus["certificates"];
    const machineStatus = () => (JSON.parse(kubectl("-n", "fleet", "get", "machine", "w0", "-o", "json")) as { status: MachineStatus }).status;
    const before = machineStatus().certificates as NonNullable<Certs>;
    // The CA the Cluster's stack recorded (status.caSecretRef, in the masters' namespace).
    const ref = (JSON.parse(kubectl("-n", "fleet", "get", "cluster", "biz", "-o", "json")) as { status: { caSecretRef: { namespace: string; name: string; certificateKey: string } } }).status.caSecretRef;
    const caData = (JSON.parse(kubectl("-n", ref.namespace, "get", "secret", ref.name, "-o", "json")) as { data: Record<string, string> }).data;
    const ca = Buffer.from(caData[ref.certificateKey], "base64").toString("utf8");
    const onHost = () => {
      const kubeconfig = parse(readFileSync(join(host.root, "etc/kubernetes/kubelet.conf"), "utf8")) as { users: { user: Record<string, string> }[]; clusters: { cluster: Record<string, string> }[] };
      return {
        client: Buffer.from(kubeconfig.users[0].user["client-certificate-data"], "base64").toString("utf8"),
        trust: Buffer.from(kubeconfig.clusters[0].cluster["certificate-authority-data"], "base64").toString("utf8"),
        clientCa: readFileSync(join(host.root, "etc/kubernetes/pki/ca.crt"), "utf8"),
        serving: readFileSync(join(host.root, "var/lib/kubelet/pki/kubelet-serving.crt"), "utf8"),
      };
    };
    const first = onHost();
    expect(before.kubeletClient).toEqual({ notBefore: expect.any(String), notAfter: certificateNotAfter(first.client), issuer: certificateFingerprint(ca) });
    expect(before.kubeletServing).toEqual({ notBefore: expect.any(String), notAfter: certificateNotAfter(first.serving), issuer: certificateFingerprint(ca) });
    expect(Date.parse(before.kubeletClient!.notAfter) - Date.parse(before.kubeletClient!.notBefore!)).toBe(3_600_000);
    expect(before.trustBundle).toBe(bundleFingerprint(first.trust));
    expect(bundleFingerprint(first.clientCa)).toBe(bundleFingerprint(ca));
    // Planned inside the default window: 70–85 % of the hour.
    const planned = Date.parse(before.renewAfter!) - Date.parse(before.kubeletClient!.notBefore!);
    expect(planned).toBeGreaterThanOrEqual(0.7 * 3_600_000 - 1000);
    expect(planned).toBeLessThan(0.85 * 3_600_000);
    const scrape = await (await fetch(`http://${operator!.server.address.host}:${operator!.server.address.port}/metrics`)).text();
    expect(scrape).toContain(`kube_on_kube_machine_certificate_expiry_timestamp_seconds{namespace="fleet",name="w0",cluster="biz",certificate="client"} ${Date.parse(before.kubeletClient!.notAfter) / 1000}`);

    // The same operator with a window that opened 72 s into the hour: the renewal is due at once.
    await operator!.stop();
    // A look at the Machine, and the SSH probe (which reads the CA Secret), every 15 s: for the trust bundle below.
    operator = await startOperator({ ...operatorOptions, healthCheckMs: 15_000, probeIntervalMs: 15_000, workerDefaults: { ...operatorOptions.workerDefaults, certificateRenewal: { windowStart: 0.02, spread: 0.01 } } });
    const renewing = Date.now();
    const after = await eventually(
      "Machine w0 renewed its kubelet certificates",
      async () => {
        const s = machineStatus();
        const current = s.conditions?.find((c) => c.type === "CertificatesCurrent");
        if (current?.reason === "RenewalFailed") throw new Error(`renewal failed: ${current.message}`);
        return (s.certificates?.renewals ?? 0) >= 1 && current?.status === "True" ? s.certificates! : undefined;
      },
      300_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\noperator log tail:\n${logs.slice(-30).join("\n")}`);
    });
    console.log(`kubelet certificates renewed (operator restart → status) in ${((Date.now() - renewing) / 1000).toFixed(0)}s`);
    const second = onHost();
    expect(certificateFingerprint(second.client)).not.toBe(certificateFingerprint(first.client));
    expect(certificateFingerprint(second.serving)).not.toBe(certificateFingerprint(first.serving));
    expect(Date.parse(after.kubeletClient!.notAfter)).toBeGreaterThan(Date.parse(before.kubeletClient!.notAfter));
    expect(after.kubeletClient!.issuer).toBe(certificateFingerprint(ca));
    expect(after.trustBundle).toBe(before.trustBundle);
    const events = kubectl("-n", "fleet", "get", "events", "--field-selector", "involvedObject.name=w0", "-o", "jsonpath={.items[*].reason}");
    expect(events).toContain("CertificatesRenewed");
    // The Node stays Ready, and the apiserver still reads a log from the kubelet (its new serving certificate).
    const business = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", join(work, "biz.kubeconfig"), ...args], { encoding: "utf8", stdio: "pipe" });
    await eventually("Node Ready on its renewed certificates", async () => (business("get", "node", host.name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}") === "True" ? true : undefined), 120_000);
    expect(business("logs", "hello")).toBe("hello from hello\n");
  });

  it("rotates the cluster CA in two phases: the worker re-issues its kubelet certificates from the new CA and trusts both, stays Ready; a client with the phase-1 kubeconfig never fails, one with the old kubeconfig is refused after phase 2", async () => {
    const host = fleet!.hosts[0];
    const machineStatus = () => (JSON.parse(kubectl("-n", "fleet", "get", "machine", "w0", "-o", "json")) as { status: MachineStatus }).status;
    const clusterStatus = () => (JSON.parse(kubectl("-n", "fleet", "get", "cluster", "biz", "-o", "json")) as ClusterObject).status;
    const adminKubeconfig = (file: string) => {
      const secret = JSON.parse(kubectl("-n", "fleet", "get", "secret", "biz-admin-kubeconfig", "-o", "json")) as { data: { kubeconfig: string } };
      writeFileSync(file, Buffer.from(secret.data.kubeconfig, "base64"), { mode: 0o600 });
      return file;
    };
    const authority = (c: CertificatesStatus | undefined, name: string) => c?.authorities?.find((a) => a.name === name)?.fingerprint;
    const oldKubeconfig = adminKubeconfig(join(work, "before-rotation.kubeconfig"));
    const before = clusterStatus()?.certificates;
    const oldLoop = kubectlLoop(oldKubeconfig);
    const started = Date.now();
    kubectl("-n", "fleet", "annotate", "cluster", "biz", `${ROTATE_CA_ANNOTATION}=r1`);
    const failFast = (error: Error) => {
      throw new Error(`${error.message}\noperator log tail:\n${logs.slice(-30).join("\n")}`);
    };

    // Phase 1 applied: the kubeconfig it wrote trusts both CAs.
    const phase1 = await eventually("phase 1 of the rotation applied", async () => {
      const c = clusterStatus()?.certificates;
      return ["WaitingForMachines", "Completing", "DroppingOldEtcdCa", "KeepingOldServiceAccountKey"].includes(c?.rotation?.phase ?? "") ? c! : undefined;
    }, 600_000).catch(failFast);
    const phase1At = Date.now();
    expect(phase1.rotation).toMatchObject({ token: "r1", generation: 1 });
    const newKubeconfig = adminKubeconfig(join(work, "phase-1.kubeconfig"));
    const newLoop = kubectlLoop(newKubeconfig);
    const trusted = parseCertificates(caDataOf(newKubeconfig), "the phase-1 CA data");
    expect(trusted).toHaveLength(2);

    // The worker: kubelet certificates of the new CA, the two-CA bundle installed.
    const newCa = authority(phase1, "cluster")!;
    expect(newCa).not.toBe(authority(before, "cluster"));
    const reissued = await eventually("Machine w0 re-issued its kubelet certificates from the new CA and trusts the bundle", async () => {
      const s = machineStatus();
      const c = s.certificates;
      return c?.kubeletClient?.issuer === newCa && c.kubeletServing?.issuer === newCa && c.trustBundle === phase1.trustBundle ? c : undefined;
    }, 600_000).catch(failFast);
    const machineAt = Date.now();
    const kubeletConf = parse(readFileSync(join(host.root, "etc/kubernetes/kubelet.conf"), "utf8")) as { users: { user: Record<string, string> }[]; clusters: { cluster: Record<string, string> }[] };
    // The client certificate on the host is signed by the new CA (the CA Secret's signing CA now).
    const ref = clusterStatus()!.caSecretRef!;
    const signing = Buffer.from((JSON.parse(kubectl("-n", ref.namespace, "get", "secret", ref.name, "-o", "json")) as { data: Record<string, string> }).data[ref.certificateKey], "base64").toString("utf8");
    expect(certificateFingerprint(signing)).toBe(newCa);
    const client = new X509Certificate(Buffer.from(kubeletConf.users[0].user["client-certificate-data"], "base64").toString("utf8"));
    expect(client.verify(new X509Certificate(signing).publicKey)).toBe(true);
    expect(bundleFingerprint(Buffer.from(kubeletConf.clusters[0].cluster["certificate-authority-data"], "base64").toString("utf8"))).toBe(phase1.trustBundle);
    expect(bundleFingerprint(readFileSync(join(host.root, "etc/kubernetes/pki/ca.crt"), "utf8"))).toBe(phase1.trustBundle);
    expect(reissued.kubeletClient?.notAfter).toBe(certificateNotAfter(Buffer.from(kubeletConf.users[0].user["client-certificate-data"], "base64").toString("utf8")));

    // Phase 2 waited for the Machine, then took the old CA away.
    const done = await eventually("phase 2 of the rotation applied", async () => {
      const c = clusterStatus()?.certificates;
      return c?.rotation?.phase === "KeepingOldServiceAccountKey" ? c : undefined;
    }, 600_000).catch(failFast);
    const phase2At = Date.now();
    const finalKubeconfig = adminKubeconfig(join(work, "after-rotation.kubeconfig"));
    const business = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", finalKubeconfig, ...args], { encoding: "utf8", stdio: "pipe" });
    // Phase 2's bundle reaches the worker after the Cluster applied it (a restart of its kubelet):
    // the Machine reports it once the restarted kubelet answers. Node Ready alone lags a restart.
    await eventually("Machine w0 installed phase 2's trust bundle", async () => (machineStatus().certificates?.trustBundle === done.trustBundle ? true : undefined), 600_000).catch(failFast);
    await eventually("Node Ready after the rotation", async () => (business("get", "node", host.name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}") === "True" ? true : undefined), 120_000);
    // The apiserver still reads a log from the kubelet: it trusts the kubelet's new serving certificate.
    expect(business("logs", "hello")).toBe("hello from hello\n");
    // The add-ons started before the rotation. Phase 2 rolled the apiservers onto a serving
    // certificate of the new CA, cutting every watch: a Service made now is resolved by CoreDNS and
    // routed by kube-proxy only if their new connections trust the new CA.
    business("run", "web", "--image=docker.io/library/busybox:1.35.0", "--restart=Never", "--port=8080", "--expose", "--overrides", JSON.stringify({ spec: { nodeName: host.name } }), "--command", "--", "sh", "-c", "echo web after the rotation > /tmp/index.html; exec httpd -f -p 8080 -h /tmp");
    // busybox 1.35's wget crashes with -T (a timeout): a kill after 20 s instead.
    const fromHello = (command: string) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", finalKubeconfig, "exec", "hello", "--", "sh", "-c", command], { encoding: "utf8", stdio: "pipe", timeout: 20_000 });
    await eventually(
      "a Service made after phase 2 resolved by CoreDNS and routed by kube-proxy",
      async () => {
        try {
          return fromHello("wget -qO- http://web.default.svc.cluster.local:8080") === "web after the rotation\n" ? true : undefined;
        } catch {
          return undefined;
        }
      },
      180_000,
    ).catch((error: Error) => {
      const addonLogs = business("-n", "kube-system", "logs", "--tail=15", "--prefix", "-l", "k8s-app in (kube-proxy,kube-dns)");
      throw new Error(`${error.message}\nthe add-ons' last words:\n${addonLogs}`);
    });
    // The clients keep asking a little after the apiserver's last rollout.
    await new Promise((r) => setTimeout(r, 10_000));
    await Promise.all([oldLoop.stop(), newLoop.stop()]);
    const failed = (tries: KubectlTry[]) => tries.filter((t) => !t.ok);
    console.log(
      `CA rotation with a worker: phase 1 applied ${((phase1At - started) / 1000).toFixed(0)} s after the annotation, the worker re-issued ${((machineAt - phase1At) / 1000).toFixed(0)} s later, ` +
        `phase 2 applied ${((phase2At - started) / 1000).toFixed(0)} s after the annotation; phase-1 kubeconfig ${newLoop.tries.length} tries, ${failed(newLoop.tries).length} failed; ` +
        `old kubeconfig ${oldLoop.tries.length} tries, first failure: ${failed(oldLoop.tries)[0]?.error ?? "none"}`,
    );
    expect(failed(newLoop.tries)).toEqual([]);
    expect(newLoop.tries.length).toBeGreaterThan(10);
    // The old kubeconfig: fine through phase 1 (the server still on the old CA), refused once phase 2 took the old CA away.
    expect(failed(oldLoop.tries.filter((t) => t.at < phase1At))).toEqual([]);
    expect(oldLoop.tries.at(-1)?.ok).toBe(false);
    expect(authority(done, "service-account")).not.toBe(authority(before, "service-account"));
    expect(authority(done, "front-proxy")).not.toBe(authority(before, "front-proxy"));
    // This Cluster's etcd is one member on an emptyDir: its CA is kept (a roll would empty it), and
    // the rotation says so. With its data on volumes it rotates too (operator-cluster's e2e).
    expect(authority(done, "etcd")).toBe(authority(before, "etcd"));
    expect(done.rotation).toMatchObject({ etcdGeneration: 0, etcdCaKept: true });
    expect(parseCertificates(caDataOf(finalKubeconfig), "the final CA data").map((c) => c.fingerprint256)).toEqual([trusted[0].fingerprint256]);
    const events = kubectl("-n", "fleet", "get", "events", "--field-selector", "involvedObject.name=biz", "-o", "jsonpath={.items[*].reason}");
    for (const reason of ["RotationPreparing", "RotationWaitingForMachines", "RotationCompleting", "RotationDroppingOldEtcdCa", "RotationKeepingOldServiceAccountKey"]) expect(events).toContain(reason);
  });

  it("`kok dev down` with the host still running ends every process of it, its Pod's included", async () => {
    await operator?.stop();
    operator = undefined;
    const netns = fleet!.hosts[0].netns!.name;
    const pids = descendants(execFileSync("ip", ["netns", "pids", netns], { encoding: "utf8" }).split("\n").filter(Boolean).map(Number));
    // sshd, containerd, the kubelet, a shim, the Pod's pause and busybox at least.
    expect(pids.length).toBeGreaterThanOrEqual(6);
    const down = await kok(["dev", "down", ...cluster.args]);
    expect(down.code, down.stderr).toBe(0);
    expect(pids.filter(running)).toEqual([]);
    expect(execFileSync("ip", ["netns", "list"], { encoding: "utf8" })).not.toContain(netns);
  });
});

/** Whether a process runs (a zombie waiting for its parent does not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** `pids` and all their descendants (a Pod's processes live under its shim, in namespaces of their own). */
function descendants(pids: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const line of execFileSync("ps", ["-eo", "pid=,ppid="], { encoding: "utf8" }).split("\n").filter(Boolean)) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const all = new Set<number>();
  const visit = (pid: number): void => {
    if (all.has(pid)) return;
    all.add(pid);
    (children.get(pid) ?? []).forEach(visit);
  };
  pids.forEach(visit);
  return [...all];
}
