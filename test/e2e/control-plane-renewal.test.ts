/**
 * Certificate renewal through the real engine and the real tls provider: a ControlPlane whose
 * leaves are inside their renewal window (a rotation drill: renew-before ≥ validity) gets new
 * leaves on `refresh` + `up`; the Secrets change, the checksum annotation rolls the masters, the
 * apiserver serves the new certificate, and the business cluster keeps answering.
 */
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { writeFileSync } from "node:fs";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toolchainBinary } from "../../src/dev/toolchain";
import { clusterProgram } from "../../src/program/cluster-program";
import { kubectl } from "../support/business-cluster";
import { upClusterStack, type ClusterStackWorld } from "../support/cluster-stack";
import { eventually } from "../support/dev-cluster";
import { minimalSpec } from "../support/specs";

let world: ClusterStackWorld;
const log = (line: string) => process.stdout.write(line);
const meta = (...args: string[]) => world.meta(...args);

/** Serial number of the certificate the business apiserver presents. */
function servedSerial(): Promise<string> {
  return new Promise((done, fail) => {
    const socket = connect({ host: "127.0.0.1", port: world.nodePort, rejectUnauthorized: false }, () => {
      done(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on("error", fail);
  });
}

/** A serial number as hex in one spelling (node's two APIs may differ in case and leading zeros). */
const serialOf = (hex: string) => hex.toUpperCase().replace(/^0+/, "");

/**
 * Serial number of the certificate etcd's member presents, through `kubectl port-forward` to its
 * client port (a new connection each time: etcd picks its certificate per connection). The
 * handshake needs a client certificate: the apiserver's etcd client, from its Secret.
 */
async function etcdServedSerial(): Promise<string> {
  const secret = JSON.parse(meta("-n", "rot", "get", "secret", "rot-apiserver-certs", "-o", "json")) as { data: Record<string, string> };
  const file = (key: string) => Buffer.from(secret.data[key], "base64").toString("utf8");
  const child = spawn(toolchainBinary("kubectl"), ["--kubeconfig", world.cluster.kubeconfig, "-n", "rot", "port-forward", "pod/rot-etcd-0", ":2379"], { stdio: ["ignore", "pipe", "pipe"] });
  let said = "";
  child.stdout.on("data", (c: Buffer) => (said += c.toString()));
  child.stderr.on("data", (c: Buffer) => (said += c.toString()));
  try {
    const port = await eventually("kubectl port-forward to rot-etcd-0 listening", async () => {
      if (child.exitCode !== null) throw new Error(`kubectl port-forward exited ${child.exitCode}: ${said}`);
      return /Forwarding from 127\.0\.0\.1:(\d+) ->/.exec(said)?.[1];
    }, 60_000);
    return await new Promise((done, fail) => {
      const socket = connect({ host: "127.0.0.1", port: Number(port), rejectUnauthorized: false, cert: file("apiserver-etcd-client.crt"), key: file("apiserver-etcd-client.key") }, () => {
        done(serialOf(socket.getPeerCertificate().serialNumber));
        socket.end();
      });
      socket.on("error", fail);
    });
  } finally {
    child.kill("SIGTERM");
  }
}

const checksum = (deployment: string) =>
  meta("-n", "rot", "get", "deployment", deployment, "-o", "jsonpath={.spec.template.metadata.annotations.kubeonkube\\.io/secret-checksum}");

describe("certificate renewal on a ControlPlane", () => {
  beforeAll(async () => {
    world = await upClusterStack({
      name: "renewal",
      stackName: "rot",
      what: "a minimal ControlPlane with a rotation drill",
      program: ({ nodePort, metaKubeconfig }) => {
        const spec = minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort, port: 6443 } } });
        return async () => clusterProgram({ name: "rot", spec, metaKubeconfig, rotationDrill: { validityHours: 2, renewBeforeHours: 3 } });
      },
    });
  });

  afterAll(() => world?.stop());

  it("re-issues the leaves after a refresh inside the window and rolls the masters onto them; the emptyDir etcd member keeps running and its data, and serves its new certificate", async () => {
    kubectl(world.adminKubeconfig, "-n", "default", "create", "configmap", "before-renewal", "--from-literal=kept=yes");
    const etcdPod = () => JSON.parse(meta("-n", "rot", "get", "pod", "rot-etcd-0", "-o", "json")) as { metadata: { uid: string } };
    const etcdBefore = { uid: etcdPod().metadata.uid, serial: await etcdServedSerial() };
    const before = { serial: await servedSerial(), apiserver: checksum("rot-apiserver"), scheduler: checksum("rot-scheduler") };
    const refreshed = await world.test.stack.refresh({ onOutput: log });
    expect(refreshed.summary.resourceChanges?.update ?? 0, "refresh saw leaves ready for renewal").toBeGreaterThan(0);
    const result = await world.test.stack.up({ onOutput: log });
    // The ten leaves of a cluster without user kubeconfigs (the CAs keep their validity): the
    // masters' nine and the etcd membership Jobs' client.
    expect(result.summary.resourceChanges?.replace ?? 0, "leaves replaced").toBe(10);
    writeFileSync(world.adminKubeconfig, String(result.outputs.adminKubeconfig.value), { mode: 0o600 });

    expect(checksum("rot-apiserver")).not.toBe(before.apiserver);
    expect(checksum("rot-scheduler")).not.toBe(before.scheduler);
    const serial = await eventually("the apiserver serving a new certificate", async () => {
      const now = await servedSerial().catch(() => undefined);
      return now && now !== before.serial ? now : undefined;
    });
    expect(serial).not.toBe(before.serial);
    expect(kubectl(world.adminKubeconfig, "get", "--raw", "/readyz").trim()).toBe("ok");

    // etcd's data is in an emptyDir: a restart would have started it empty, taking the business
    // cluster's state with it. Its member runs on, reads its renewed certificate from the mounted
    // Secret once the kubelet refreshed it, and the object written before is still there.
    expect(etcdPod().metadata.uid).toBe(etcdBefore.uid);
    const renewed = new X509Certificate(Buffer.from(JSON.parse(meta("-n", "rot", "get", "secret", "rot-etcd-certs", "-o", "json")).data["server.crt"], "base64").toString("utf8"));
    expect(serialOf(renewed.serialNumber)).not.toBe(etcdBefore.serial);
    const started = Date.now();
    await eventually("etcd serving its renewed certificate", async () => ((await etcdServedSerial()) === serialOf(renewed.serialNumber) ? true : undefined), 240_000);
    console.log(`etcd served its renewed certificate ${Math.round((Date.now() - started) / 1000)} s after the up, without a restart`);
    expect(kubectl(world.adminKubeconfig, "-n", "default", "get", "configmap", "before-renewal", "-o", "jsonpath={.data.kept}")).toBe("yes");
  });
});
