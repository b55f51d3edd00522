/**
 * Certificate renewal through the real engine and the real tls provider: a ControlPlane whose
 * leaves are inside their renewal window (a rotation drill: renew-before ≥ validity) gets new
 * leaves on `refresh` + `up`; the Secrets change, the checksum annotation rolls the masters, the
 * apiserver serves the new certificate, and the business cluster keeps answering.
 */
import { writeFileSync } from "node:fs";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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

  it("re-issues the leaves after a refresh inside the window and rolls the masters onto them", async () => {
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
  });
});
