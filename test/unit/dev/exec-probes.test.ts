/**
 * Exec probes on the kok dev node: the etcd masters are probed with `etcdctl` inside the container
 * (their metrics listener is on the Pod's loopback only), so the agent must map the command to a
 * binary of the image and run it in the container's namespaces. Here the "container" is this test
 * process itself (nsenter into one's own namespaces needs root, which the dev node needs anyway).
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execInNamespacesOf } from "../../../src/dev/node-agent/container";
import { binaryForCommand, ImageNotAvailableError } from "../../../src/dev/node-agent/images";
import { runProbe } from "../../../src/dev/node-agent/probes";

let toolchain: string;
const savedToolchainDir = process.env.KOK_TOOLCHAIN_DIR;

beforeAll(() => {
  toolchain = mkdtempSync(join(tmpdir(), "kok-exec-probe-"));
  mkdirSync(join(toolchain, "bin"));
  for (const name of ["etcd", "etcdctl"]) {
    writeFileSync(join(toolchain, "bin", name), "#!/bin/sh\n");
    chmodSync(join(toolchain, "bin", name), 0o755);
  }
  process.env.KOK_TOOLCHAIN_DIR = toolchain;
});

afterAll(() => {
  if (savedToolchainDir === undefined) delete process.env.KOK_TOOLCHAIN_DIR;
  else process.env.KOK_TOOLCHAIN_DIR = savedToolchainDir;
  rmSync(toolchain, { recursive: true, force: true });
});

describe("binaryForCommand", () => {
  it("finds etcdctl for the etcd image, and refuses what the image does not ship", () => {
    expect(binaryForCommand("registry.k8s.io/etcd:3.6.16-0", "etcdctl")).toBe(join(toolchain, "bin", "etcdctl"));
    expect(binaryForCommand("registry.k8s.io/etcd:3.6.16-0", "/usr/local/bin/etcd")).toBe(join(toolchain, "bin", "etcd"));
    expect(() => binaryForCommand("registry.k8s.io/etcd:3.6.16-0", "sh")).toThrow(ImageNotAvailableError);
    expect(() => binaryForCommand("registry.k8s.io/etcd:3.6.16-0", "etcdutl")).toThrow(/etcdutl not found/);
  });
});

describe("exec probes", () => {
  const container = { name: "etcd" };

  it("succeed on exit 0 and fail with the command's output otherwise, in the target's namespaces", async () => {
    const exec = () => (command: readonly string[], timeoutMs: number) => execInNamespacesOf(process.pid, command, { GREETING: "from the pod env" }, timeoutMs);
    const probe = (command: string[]) => ({ exec: { command }, timeoutSeconds: 5 });
    expect(await runProbe(probe(["/bin/true"]), "10.88.0.2", container, exec())).toEqual({ ok: true });
    expect(await runProbe(probe(["/bin/sh", "-c", 'echo "$GREETING"; exit 3']), "10.88.0.2", container, exec())).toEqual({
      ok: false,
      message: "command exited with 3: from the pod env",
    });
  });

  it("kill a command that overruns its timeout", async () => {
    const result = await execInNamespacesOf(process.pid, ["/bin/sleep", "30"], {}, 300);
    expect(result).toEqual({ ok: false, message: "command timed out after 300 ms" });
  });

  it("fail with a reason when the node has no way to run them", async () => {
    expect(await runProbe({ exec: { command: ["etcdctl"] } }, "10.88.0.2", container)).toEqual({
      ok: false,
      message: "only httpGet, tcpSocket and exec probes run on the kok dev node",
    });
  });
});
