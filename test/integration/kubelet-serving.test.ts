/**
 * The kubelet's serving certificate, for real: a WorkerNode joins a real kube-apiserver (as in
 * worker-kubelet-joins) and the kubelet then serves port 10250 with the certificate @pulumi/tls
 * signed with the cluster CA, so a client that trusts only that CA and checks the machine's IP
 * (what kube-apiserver does with --kubelet-certificate-authority) completes the TLS handshake; the
 * kubelet's config carries the cluster DNS address derived from the service range.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkerNode } from "../../src/components/worker-node";
import { engineStack, requireEngine, type EngineStack } from "../support/worker-engine";
import { sandboxWorkerArgs, writeTestBridgeCni } from "../support/worker-fixtures";
import { startWorkerTestbed, type WorkerTestbed } from "../support/worker-testbed";

let bed: WorkerTestbed;
let target: EngineStack;


beforeAll(async () => {
  requireEngine(["tls-5.3.0"]);
  bed = await startWorkerTestbed({ prefix: "serving", hosts: 1 });
  const host = bed.hosts[0];
  writeTestBridgeCni(host.root, "kok1", "10.244.8.0/24");
  target = await engineStack("serving", async () => {
    const args = sandboxWorkerArgs({ host, hostname: "serving-0", packages: bed.packages(), api: bed.api, ca: bed.ca });
    const node = new WorkerNode("serving", { ...args, cluster: { ...args.cluster, serviceCIDR: "172.20.0.0/16", clusterDomain: "serving.local" } });
    return { nodeName: node.nodeName };
  });
});

afterAll(async () => {
  try {
    await target?.stack.destroy();
  } catch {
    // Stopped below in any case.
  }
  target?.remove();
  await bed?.stop();
});

describe("the kubelet's serving certificate", () => {
  it("is signed by the cluster CA for the machine's IP, so a client trusting only that CA reaches the kubelet; the key is 0600", async () => {
    const result = await target.stack.up();
    expect(result.summary.result).toBe("succeeded");
    const host = bed.hosts[0];
    const pki = path.join(host.root, "var/lib/kubelet/pki");
    expect(statSync(path.join(pki, "kubelet-serving.key")).mode & 0o777).toBe(0o600);
    const text = execFileSync("openssl", ["x509", "-in", path.join(pki, "kubelet-serving.crt"), "-noout", "-text"], { encoding: "utf8" });
    expect(text).toContain(`IP Address:${host.ip}`);
    expect(text).toContain("DNS:serving-0");
    expect(text).toContain("TLS Web Server Authentication");
    // curl verifies the chain against the cluster CA only and the IP against the SAN; the kubelet
    // then answers 401 (no credentials), which shows the handshake succeeded.
    const code = execFileSync(
      "curl",
      ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--connect-timeout", "5", "--max-time", "10", "--cacert", bed.ca.certFile, `https://${host.ip}:10250/healthz`],
      { encoding: "utf8" },
    );
    expect(code).toBe("401");
    // (kube-apiserver's own dial, via the node proxy or a Pod's logs, cannot be shown on these
    // hosts: they live on 127.0.0.x, and the apiserver refuses to proxy to loopback addresses.)
    const config = parse(readFileSync(path.join(host.root, "var/lib/kubelet/config.yaml"), "utf8")) as Record<string, unknown>;
    expect(config).toMatchObject({ clusterDNS: ["172.20.0.10"], clusterDomain: "serving.local", tlsCertFile: path.join(pki, "kubelet-serving.crt") });
    // In the state the key is only inside secret values (the export shows them decrypted, but
    // marked); the kubelet step's command text and output never hold it.
    const SECRET_SIG = "4dabf18193072939515e22adb298388d";
    const keyLine = readFileSync(path.join(pki, "kubelet-serving.key"), "utf8").split("\n")[1];
    const deployment = (await target.stack.exportStack()).deployment as { resources: { urn: string; outputs?: Record<string, unknown> }[] };
    const kubeletStep = deployment.resources.find((r) => r.urn.endsWith("::serving-kubelet"))!;
    expect(Object.keys(kubeletStep.outputs?.stdin as object)).toContain(SECRET_SIG);
    const visible = Object.entries(kubeletStep.outputs ?? {}).filter(([k]) => k !== "stdin");
    expect(JSON.stringify(visible)).not.toContain(keyLine);
  });
});
