/**
 * WorkerNode through the component provider under the real engine: a program that knows it only
 * as `kube-on-kube:index:WorkerNode` (as a YAML or Python program does) plans exactly the steps
 * and certificates the TypeScript class plans for the same arguments, with the SSH key and the CA
 * key passed as secrets. Preview only: running the steps on hosts is worker-pool-engine's
 * subject; what is under test here is that `construct` turns the inputs into the same WorkerNode.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodePool } from "../../src/components/node-pool";
import { WorkerNode } from "../../src/components/worker-node";
import { assertPlugins, newTestStack, type TestStack } from "../support/engine";
import { machine, packages } from "../support/worker-fixtures";

const PROVIDER_DIR = path.resolve(__dirname, "..", "..", "provider");
const work = mkdtempSync(path.join(tmpdir(), "kok-remote-worker-"));
let caCertificate: string;
let caKey: string;
let sshKey: string;

const args = () => ({
  machine: machine(),
  packages: packages(),
  credentials: { privateKey: pulumi.secret(sshKey) },
  cluster: { endpoint: "https://203.0.113.10:6443", caCertificate, caPrivateKey: pulumi.secret(caKey) },
  serviceManager: "none",
  stepProvider: "openssh",
  preflight: { ignore: ["kernel", "swap", "ports"] },
});

/** A component as another language sees it: a type token and inputs, no code. */
class Remote extends pulumi.ComponentResource {
  constructor(type: string, name: string, inputs: Record<string, unknown>) {
    super(`kube-on-kube:index:${type}`, name, inputs, {}, true);
  }
}

/** Two machines, the second with credentials of its own; maxUnavailable as the schema has it. */
const poolArgs = (maxUnavailable: number | string) => ({
  machines: [
    { name: "m1", spec: machine({ hostname: "worker-0001", ip: "192.0.2.11", labels: { pool: "general" } }) },
    { name: "m2", spec: machine({ hostname: "worker-0002", ip: "192.0.2.12", labels: { pool: "general" } }), credentials: { password: pulumi.secret("m2-password") } },
  ],
  packageVersion: { clusterRef: { name: "prod-a" }, packages: packages(), rollout: { canary: { count: 1 }, maxUnavailable } },
  credentials: { privateKey: pulumi.secret(sshKey) },
  cluster: { endpoint: "https://203.0.113.10:6443", caCertificate, caPrivateKey: pulumi.secret(caKey) },
  node: { serviceManager: "none", stepProvider: "openssh", preflight: { ignore: ["kernel", "swap", "ports"] } },
});

/**
 * What a preview would create: type, name and inputs of each resource but the stack and the
 * provider of the remote component itself. A dynamic resource's serialized provider code is left
 * out (its text names the process's module paths); the step scripts and their triggers stay in.
 */
async function planned(test: TestStack): Promise<{ resource: string; inputs: string }[]> {
  const events: EngineEvent[] = [];
  await test.stack.preview({ onEvent: (e) => events.push(e) });
  return events
    .map((e) => e.resourcePreEvent?.metadata)
    .filter((m): m is NonNullable<typeof m> => m !== undefined && m.op === "create" && m.type !== "pulumi:pulumi:Stack" && m.type !== "pulumi:providers:kube-on-kube")
    .map((m) => {
      const inputs = { ...(m.new?.inputs ?? {}) } as Record<string, unknown>;
      delete inputs.__provider;
      return { resource: `${m.type} ${m.urn.split("::").pop()}`, inputs: JSON.stringify(inputs) };
    })
    .sort((a, b) => a.resource.localeCompare(b.resource));
}

describe("WorkerNode through the component provider", () => {
  let local: TestStack;
  let remote: TestStack;
  let localPool: TestStack;
  let remotePool: TestStack;

  beforeAll(async () => {
    assertPlugins([{ name: "tls", version: "5.3.0" }]);
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path.join(work, "ca.key"), "-out", path.join(work, "ca.crt"), "-subj", "/CN=kubernetes", "-days", "1"], { stdio: "pipe" });
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(work, "id")], { stdio: "pipe" });
    caCertificate = readFileSync(path.join(work, "ca.crt"), "utf8");
    caKey = readFileSync(path.join(work, "ca.key"), "utf8");
    sshKey = readFileSync(path.join(work, "id"), "utf8");
    local = await newTestStack("kok-worker-local", async () => {
      new WorkerNode("w1", args() as ConstructorParameters<typeof WorkerNode>[1]);
    });
    remote = await newTestStack("kok-worker-remote", async () => {
      new Remote("WorkerNode", "w1", args());
    });
    localPool = await newTestStack("kok-pool-local", async () => {
      new NodePool("p", poolArgs(1) as ConstructorParameters<typeof NodePool>[1]);
    });
    remotePool = await newTestStack("kok-pool-remote", async () => {
      new Remote("NodePool", "p", poolArgs("1"));
    });
    for (const t of [remote, remotePool]) t.stack.workspace.envVars.PATH = `${PROVIDER_DIR}${path.delimiter}${t.stack.workspace.envVars.PATH}`;
  });
  afterAll(() => {
    [local, remote, localPool, remotePool].forEach((t) => t?.dispose());
    rmSync(work, { recursive: true, force: true });
  });

  it("plans the same steps and certificates as the TypeScript class", async () => {
    const expected = await planned(local);
    const got = await planned(remote);
    const steps = expected.filter((r) => r.resource.startsWith("pulumi-nodejs:dynamic:Resource "));
    expect(steps.map((r) => r.resource.split(" ")[1])).toEqual(["w1-cni", "w1-containerd", "w1-host", "w1-join", "w1-kubelet", "w1-preflight", "w1-verify"]);
    // The steps' scripts are planned in full, and the SSH key is nowhere in plaintext.
    expect(steps.every((r) => r.inputs.includes("create"))).toBe(true);
    expect(expected.some((r) => r.inputs.includes(sshKey.split("\n")[1])), "key in plaintext").toBe(false);
    expect(got).toEqual(expected);
  });

  it("plans a NodePool's batches as the TypeScript class does, maxUnavailable given as a string", async () => {
    const expected = await planned(localPool);
    const got = await planned(remotePool);
    const nodes = expected.filter((r) => r.resource.startsWith("kube-on-kube:index:WorkerNode ")).map((r) => r.resource);
    expect(nodes).toEqual(["kube-on-kube:index:WorkerNode p-m1", "kube-on-kube:index:WorkerNode p-m2"]);
    expect(expected.some((r) => r.inputs.includes("m2-password")), "password in plaintext").toBe(false);
    expect(got).toEqual(expected);
  });
});
