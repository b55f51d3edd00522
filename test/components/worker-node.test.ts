import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { installMocks, isSecretOutput, settle, valueOf, type RecordedResource } from "../support/pulumi-mocks";
import { parse } from "yaml";
import { cleanKubeconfig, execEntry, withFields } from "../support/kubeconfigs";
import { machine, packages } from "../support/worker-fixtures";

const recorder = installMocks();
type Module = typeof import("../../src/components/worker-node");
let WorkerNode: Module["WorkerNode"];
beforeAll(async () => {
  ({ WorkerNode } = await import("../../src/components/worker-node"));
});

const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nTEST-ONLY-ssh-key-material\n-----END OPENSSH PRIVATE KEY-----\n";
const CA_KEY = "-----BEGIN EC PRIVATE KEY-----\nTEST-ONLY-ca-key-material\n-----END EC PRIVATE KEY-----\n";
const cluster = { endpoint: "https://prod-a.k8s.example.com:6443", caCertificate: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n", caPrivateKey: CA_KEY };

/** Records every child's options (parent, dependsOn) through an inherited transformation. */
function captureOptions() {
  const options = new Map<string, pulumi.CustomResourceOptions>();
  const transformation: pulumi.ResourceTransformation = (a) => {
    options.set(a.name, a.opts);
    return undefined;
  };
  return { options, transformations: [transformation] };
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";
/** A recorded input as the engine would see it: whether it is marked secret, and its value. */
function secretInput(value: unknown): { secret: boolean; value: Record<string, unknown> } {
  const v = value as Record<string, unknown>;
  return v && SECRET_SIG in v ? { secret: true, value: v.value as Record<string, unknown> } : { secret: false, value: v };
}

const children = (prefix: string) => recorder.resources.filter((r) => r.name.startsWith(`${prefix}-`));
const role = (prefix: string, r: RecordedResource) => r.name.slice(prefix.length + 1);

describe("WorkerNode", () => {
  it("creates its steps in order under the component, each waiting for the one before", async () => {
    const capture = captureOptions();
    const node = new WorkerNode("w1", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster }, { transformations: capture.transformations });
    await settle();
    const remote = children("w1").filter((r) => r.type === "command:remote:Command").map((r) => role("w1", r));
    expect(remote).toEqual(["host", "preflight", "containerd", "kubelet", "cni", "join", "verify"]);
    expect(children("w1").filter((r) => r.type.startsWith("tls:")).map((r) => role("w1", r)).sort()).toEqual([
      "kubelet-cert",
      "kubelet-csr",
      "kubelet-key",
      "kubelet-serving-cert",
      "kubelet-serving-csr",
      "kubelet-serving-key",
    ]);
    const order = ["host", "preflight", "containerd", "kubelet", "cni", "join", "verify"];
    for (let i = 1; i < order.length; i++) {
      const opts = capture.options.get(`w1-${order[i]}`);
      expect(opts?.parent).toBe(node);
      expect(opts?.dependsOn).toEqual([node.steps[order[i - 1]]]);
    }
    expect(node.healthGate).toBe(node.steps.verify);
  });

  it("throws one error listing every problem before creating anything", () => {
    recorder.reset();
    const bad = machine({ ip: "10.0.0.999", ssh: { hostKey: "ssh-ed25519 AAAA" } });
    let error: Error | undefined;
    try {
      new WorkerNode("bad", { machine: bad, packages: { ...packages(), cni: { version: "v1", url: "http://m/c", sha256: "abc" } }, credentials: {}, cluster: { ...cluster, bootstrapToken: "abc.def" } });
    } catch (e) {
      error = e as Error;
    }
    expect(error?.message).toContain("WorkerNode bad is invalid (5 problems); nothing was changed");
    for (const path of ["machine.ip", "machine.ssh.hostKey", "packages.cni.sha256", "credentials", "cluster"]) expect(error?.message).toContain(`${path}:`);
    expect(recorder.resources).toEqual([]);
  });

  it("refuses a machine without a pinned host key unless allowed, and then connects without one", async () => {
    const unpinned = { ...machine(), ssh: { user: "root" } };
    expect(() => new WorkerNode("u", { machine: unpinned, credentials: { privateKey: PRIVATE_KEY }, cluster })).toThrow(/machine\.ssh\.hostKey: is required/);
    recorder.reset();
    new WorkerNode("u2", { machine: unpinned, credentials: { privateKey: PRIVATE_KEY }, cluster, allowUnknownHostKey: true });
    await settle();
    const connection = secretInput(recorder.named("u2-host").inputs.connection).value;
    expect(connection.host).toBe("192.0.2.11");
    expect(connection.hostKey).toBeUndefined();
  });

  it("pins the host key and keeps the SSH key, kubeconfig and CA key secret and out of every script", async () => {
    recorder.reset();
    const node = new WorkerNode("s", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster });
    await settle();
    const host = recorder.named("s-host");
    const connection = secretInput(host.inputs.connection);
    expect(connection.secret).toBe(true);
    expect(connection.value.hostKey).toBe(machine().ssh.hostKey);
    expect(connection.value.privateKey).toBe(PRIVATE_KEY);
    expect(secretInput(recorder.named("s-kubelet-cert").inputs.caPrivateKeyPem)).toEqual({ secret: true, value: CA_KEY });
    for (const r of children("s").filter((c) => c.type === "command:remote:Command")) {
      expect(String(r.inputs.create)).not.toContain("TEST-ONLY");
      expect(r.inputs.addPreviousOutputInEnv).toBe(false);
    }
    const join = node.steps.join as unknown as { stdin: pulumi.Output<string> };
    expect(await isSecretOutput(join.stdin)).toBe(true);
    const kubeconfig = await valueOf(join.stdin);
    expect(kubeconfig).toContain("user: system:node:worker-0001");
    expect(kubeconfig).toContain(Buffer.from("-----BEGIN PRIVATE KEY-----\nmock-s-kubelet-key\n-----END PRIVATE KEY-----\n").toString("base64"));
    const certInputs = recorder.named("s-kubelet-csr").inputs.subject as Record<string, unknown>;
    expect(certInputs).toEqual({ commonName: "system:node:worker-0001", organization: "system:nodes" });
    expect(recorder.named("s-kubelet-cert").inputs.allowedUses).toEqual(["digital_signature", "key_encipherment", "client_auth"]);
  });

  it("issues a serving certificate from the cluster CA for the machine's IP and hostname, installed by the kubelet step from a secret stdin", async () => {
    recorder.reset();
    const node = new WorkerNode("sv", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster });
    await settle();
    expect(recorder.named("sv-kubelet-serving-csr").inputs).toMatchObject({
      subject: { commonName: "system:node:worker-0001", organization: "system:nodes" },
      dnsNames: ["worker-0001"],
      ipAddresses: ["192.0.2.11"],
    });
    const cert = recorder.named("sv-kubelet-serving-cert").inputs;
    expect(cert.allowedUses).toEqual(["digital_signature", "key_encipherment", "server_auth"]);
    // Same validity and renewal as the client certificate.
    expect([cert.validityPeriodHours, cert.earlyRenewalHours]).toEqual([recorder.named("sv-kubelet-cert").inputs.validityPeriodHours, 720]);
    expect(secretInput(cert.caPrivateKeyPem)).toEqual({ secret: true, value: CA_KEY });
    const kubelet = node.steps.kubelet as unknown as { stdin: pulumi.Output<string> };
    expect(await isSecretOutput(kubelet.stdin)).toBe(true);
    expect(await valueOf(kubelet.stdin)).toBe(
      "-----BEGIN CERTIFICATE-----\nmock-sv-kubelet-serving-cert\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nmock-sv-kubelet-serving-key\n-----END PRIVATE KEY-----\n",
    );
    const script = String(recorder.named("sv-kubelet").inputs.create);
    expect(script).not.toContain("mock-sv-kubelet-serving-key");
    expect(script).toContain("tlsCertFile: /var/lib/kubelet/pki/kubelet-serving.crt");
    expect(script).toContain("tlsPrivateKeyFile: /var/lib/kubelet/pki/kubelet-serving.key");
    expect(script).toContain('write_file "$ROOT/var/lib/kubelet/pki/kubelet-serving.key" 0600');
    expect(recorder.named("sv-kubelet").inputs.stdin).toBeDefined();
  });

  it("takes the kubelet's clusterDNS (10th address of serviceCIDR) and clusterDomain from the cluster; only the kubelet step changes", async () => {
    recorder.reset();
    new WorkerNode("n0", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster });
    new WorkerNode("n1", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster: { ...cluster, serviceCIDR: "172.20.0.0/16", clusterDomain: "corp.internal" } });
    new WorkerNode("n2", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster: { ...cluster, serviceCIDR: "fd00:10:96::/108" }, kubelet: { clusterDNS: ["169.254.20.10"] } });
    await settle();
    const config = (prefix: string) => String(recorder.named(`${prefix}-kubelet`).inputs.create);
    expect(config("n0")).toContain("clusterDNS:\n  - 10.96.0.10\nclusterDomain: cluster.local");
    expect(config("n1")).toContain("clusterDNS:\n  - 172.20.0.10\nclusterDomain: corp.internal");
    // An explicit kubelet setting (a node-local DNS cache) wins over the derived address.
    expect(config("n2")).toContain("clusterDNS:\n  - 169.254.20.10\nclusterDomain: cluster.local");
    const steps = children("n0").filter((r) => r.type === "command:remote:Command").map((r) => role("n0", r));
    const changed = steps.filter((s) => {
      const a = recorder.named(`n0-${s}`).inputs;
      const b = recorder.named(`n1-${s}`).inputs;
      return JSON.stringify([a.create, a.update, a.triggers, a.delete]) !== JSON.stringify([b.create, b.update, b.triggers, b.delete]);
    });
    expect(changed).toEqual(["kubelet"]);
    expect(recorder.named("n1-kubelet").inputs.triggers).toContainEqual({ network: { clusterDNS: ["172.20.0.10"], clusterDomain: "corp.internal" } });
    expect(recorder.named("n0-kubelet").inputs.triggers).toHaveLength(2);

    recorder.reset();
    expect(() => new WorkerNode("bad", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster: { ...cluster, serviceCIDR: "10.96.0.0/29", clusterDomain: "Not A Domain" } })).toThrow(
      /cluster\.serviceCIDR: 10\.96\.0\.0\/29 has no 10th address[\s\S]*cluster\.clusterDomain/,
    );
    expect(recorder.resources).toEqual([]);
  });

  it("labels the node from labels and idc, and registers its taints", async () => {
    recorder.reset();
    new WorkerNode("l", { machine: machine({ taints: [{ key: "gpu", effect: "NoSchedule" }] }), credentials: { password: "pw" }, cluster });
    await settle();
    const create = String(recorder.named("l-join").inputs.create);
    expect(create).toContain("--node-labels=pool=general,topology.kubernetes.io/zone=hz-a");
    expect(create).toContain("--register-with-taints=gpu:NoSchedule");
  });

  it("re-runs only the changed steps: a kubelet bump changes the kubelet and verify steps and nothing else", async () => {
    recorder.reset();
    new WorkerNode("old", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster });
    new WorkerNode("new", { machine: machine(), packages: packages("v1.36.4"), credentials: { privateKey: PRIVATE_KEY }, cluster });
    await settle();
    const steps = children("old").filter((r) => r.type === "command:remote:Command").map((r) => role("old", r));
    const changed = steps.filter((s) => {
      const a = recorder.named(`old-${s}`).inputs;
      const b = recorder.named(`new-${s}`).inputs;
      return JSON.stringify([a.create, a.update, a.triggers, a.delete]) !== JSON.stringify([b.create, b.update, b.triggers, b.delete]);
    });
    expect(changed).toEqual(["kubelet", "verify"]);
  });

  it("writes the runtime settings in the containerd step only, and refuses bad mirrors by path before creating anything", async () => {
    recorder.reset();
    new WorkerNode("plain", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster });
    const runtime = { sandboxImage: "mirror.example.com/k8s/pause:3.10.2", registryMirrors: { "registry.k8s.io": ["https://mirror.example.com"] } };
    new WorkerNode("mirrored", { machine: machine(), runtime, containerd: { restrictOomScoreAdj: true }, credentials: { privateKey: PRIVATE_KEY }, cluster });
    await settle();
    const steps = children("plain").filter((r) => r.type === "command:remote:Command").map((r) => role("plain", r));
    const changed = steps.filter((s) => {
      const a = recorder.named(`plain-${s}`).inputs;
      const b = recorder.named(`mirrored-${s}`).inputs;
      return JSON.stringify([a.create, a.triggers]) !== JSON.stringify([b.create, b.triggers]);
    });
    expect(changed).toEqual(["containerd"]);
    const script = String(recorder.named("mirrored-containerd").inputs.create);
    expect(script).toContain("certs.d/registry.k8s.io/hosts.toml");
    expect(script).toContain("mirror.example.com/k8s/pause:3.10.2");
    expect(script).toContain("restrict_oom_score_adj = true");
    expect(String(recorder.named("plain-containerd").inputs.create)).toContain("registry.k8s.io/pause:3.10.2");

    recorder.reset();
    expect(
      () => new WorkerNode("evil", { machine: machine(), runtime: { registryMirrors: { "../x": ["http://m"], "docker.io": ['http://m"\n[x]'] } }, credentials: { privateKey: PRIVATE_KEY }, cluster }),
    ).toThrow(/runtime\.registryMirrors\["\.\.\/x"\][\s\S]*runtime\.registryMirrors\["docker\.io"\]\[0\]/);
    expect(recorder.resources).toEqual([]);
  });

  it("adds drain and the Ready gate when an admin kubeconfig is given, with the kubeconfig only on stdin", async () => {
    recorder.reset();
    const admin = cleanKubeconfig();
    const node = new WorkerNode("d", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster: { ...cluster, adminKubeconfig: admin } });
    await settle();
    const names = children("d").filter((r) => r.type.startsWith("command:")).map((r) => `${r.type.split(":")[1]}:${role("d", r)}`);
    expect(names).toEqual(["remote:host", "remote:preflight", "local:drain", "remote:containerd", "remote:kubelet", "remote:cni", "remote:join", "remote:verify", "local:ready"]);
    const drain = recorder.named("d-drain").inputs;
    expect(String(drain.create)).toContain("kubectl --kubeconfig \"$kc\"");
    expect(String(drain.create)).not.toContain(parse(admin).users[0].user["client-key-data"]);
    expect(String(drain.delete)).toContain("delete node worker-0001");
    expect(await isSecretOutput((node.steps.drain as unknown as { stdin: pulumi.Output<string> }).stdin)).toBe(true);
    // A clean kubeconfig reaches kubectl unchanged: stacks written before the filter see no diff.
    expect(await valueOf((node.steps.drain as unknown as { stdin: pulumi.Output<string> }).stdin)).toBe(admin);
    expect(node.healthGate).toBe(node.steps.ready);
  });

  it("refuses an admin kubeconfig kubectl would run code or read files from, before creating anything", () => {
    recorder.reset();
    let hostile = withFields(cleanKubeconfig(), "user", { exec: execEntry("/nonexistent/never"), tokenFile: "/var/run/secrets/token" });
    hostile = withFields(hostile, "cluster", { "proxy-url": "http://proxy.example:3128" });
    let message = "";
    try {
      new WorkerNode("x", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster: { ...cluster, adminKubeconfig: hostile } });
    } catch (e) {
      message = (e as Error).message;
    }
    for (const field of ["users[0].user.exec is not allowed", "users[0].user.tokenFile is not allowed", "clusters[0].cluster.proxy-url is not allowed"]) {
      expect(message).toContain(`cluster.adminKubeconfig: ${field}`);
    }
    expect(recorder.resources).toEqual([]);
  });

  it("rebuilds an admin kubeconfig given as an Output from its server, CA and client certificate only", async () => {
    recorder.reset();
    const node = new WorkerNode("q", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster: { ...cluster, adminKubeconfig: pulumi.secret(withFields(cleanKubeconfig(), "cluster", { "insecure-skip-tls-verify": false })) } });
    await settle();
    const stdin = parse(await valueOf((node.steps.ready as unknown as { stdin: pulumi.Output<string> }).stdin));
    expect(Object.keys(stdin.clusters[0].cluster).sort()).toEqual(["certificate-authority-data", "server"]);
  });

  it("passes a bootstrap token instead of a signed certificate", async () => {
    recorder.reset();
    const noKey = { endpoint: cluster.endpoint, caCertificate: cluster.caCertificate };
    const node = new WorkerNode("b", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster: { ...noKey, bootstrapToken: "abcdef.0123456789abcdef" } });
    await settle();
    expect(children("b").filter((r) => r.type.startsWith("tls:"))).toEqual([]);
    // No CA key, no serving certificate: the kubelet keeps its self-signed one and reads nothing from stdin.
    expect(String(recorder.named("b-kubelet").inputs.create)).not.toContain("tlsCertFile");
    expect(recorder.named("b-kubelet").inputs.stdin).toBeUndefined();
    expect(String(recorder.named("b-join").inputs.create)).toContain("--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf");
    expect(await valueOf((node.steps.join as unknown as { stdin: pulumi.Output<string> }).stdin)).toContain("token: abcdef.0123456789abcdef");
  });

  it("runs the same steps through the OpenSSH dynamic provider, with the same names and secrets", async () => {
    recorder.reset();
    const node = new WorkerNode("o", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster, stepProvider: "openssh" });
    await settle();
    const steps = children("o").filter((r) => r.type === "pulumi-nodejs:dynamic:Resource");
    expect(steps.map((r) => role("o", r))).toEqual(["host", "preflight", "containerd", "kubelet", "cni", "join", "verify"]);
    const connection = secretInput(recorder.named("o-host").inputs.connection);
    expect(connection.secret).toBe(true);
    expect(connection.value.hostKey).toBe(machine().ssh.hostKey);
    const provider = String(recorder.named("o-host").inputs.__provider);
    expect(provider).toContain("StrictHostKeyChecking=yes");
    expect(provider).not.toContain("TEST-ONLY");
    expect(await isSecretOutput((node.steps.join as unknown as { stdin: pulumi.Output<string> }).stdin)).toBe(true);
  });

  it("runs every remote script through sudo -n for an SSH user other than root, with either step provider; root's scripts are bare", async () => {
    recorder.reset();
    const deploy = { ...machine(), ssh: { ...machine().ssh, user: "deploy" } };
    new WorkerNode("d", { machine: deploy, credentials: { privateKey: PRIVATE_KEY }, cluster });
    new WorkerNode("ds", { machine: deploy, credentials: { privateKey: PRIVATE_KEY }, cluster, stepProvider: "openssh" });
    new WorkerNode("r", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster });
    await settle();
    for (const prefix of ["d", "ds"]) {
      const steps = children(prefix).filter((r) => r.type === "command:remote:Command" || r.type === "pulumi-nodejs:dynamic:Resource");
      expect(steps.map((r) => role(prefix, r))).toEqual(["host", "preflight", "containerd", "kubelet", "cni", "join", "verify"]);
      for (const step of steps) {
        for (const field of ["create", "update"]) {
          expect(String(step.inputs[field])).toMatch(/^\/bin\/sh -c '/);
          expect(String(step.inputs[field])).toContain("exec sudo -n -- /bin/bash -c ");
        }
      }
      expect(String(recorder.named(`${prefix}-host`).inputs.delete)).toContain("exec sudo -n -- /bin/bash -c ");
    }
    for (const step of children("r").filter((r) => r.type === "command:remote:Command")) {
      expect(String(step.inputs.create)).toMatch(/^\/bin\/bash -c '/);
      expect(String(step.inputs.create)).not.toContain("sudo");
    }
    expect(String(recorder.named("r-host").inputs.delete)).toMatch(/^\/bin\/bash -c '/);
  });

  it("installs the trust bundle as ca.crt and the kubeconfig's CA data, reports the certificates with the CA that signed each (no key), and makes the renewal token each key's replacement trigger", async () => {
    recorder.reset();
    const capture = captureOptions();
    const bundle = `${cluster.caCertificate}-----BEGIN CERTIFICATE-----\nNEW-CA\n-----END CERTIFICATE-----\n`;
    const node = new WorkerNode("tb", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster: { ...cluster, trustBundle: bundle }, renewal: 2 }, { transformations: capture.transformations });
    await settle();
    expect(String(recorder.named("tb-join").inputs.create)).toContain(`${bundle}KUBE_ON_KUBE_EOF\nthen changed=1; log "wrote /etc/kubernetes/pki/ca.crt"`);
    const kubeconfig = parse(await valueOf((node.steps.join as unknown as { stdin: pulumi.Output<string> }).stdin)) as { clusters: { cluster: Record<string, string> }[] };
    expect(Buffer.from(kubeconfig.clusters[0].cluster["certificate-authority-data"], "base64").toString()).toBe(bundle);
    // The certificates are still signed by the CA, not the bundle.
    expect(recorder.named("tb-kubelet-cert").inputs.caCertPem).toBe(cluster.caCertificate);
    const reported = await valueOf(node.certificates);
    expect(reported).toEqual({
      kubeletClient: { certPem: "-----BEGIN CERTIFICATE-----\nmock-tb-kubelet-cert\n-----END CERTIFICATE-----\n", caCertPem: cluster.caCertificate },
      kubeletServing: { certPem: "-----BEGIN CERTIFICATE-----\nmock-tb-kubelet-serving-cert\n-----END CERTIFICATE-----\n", caCertPem: cluster.caCertificate },
      trustBundle: bundle,
    });
    expect(JSON.stringify(reported)).not.toContain("PRIVATE KEY");
    expect(capture.options.get("tb-kubelet-key")?.replacementTrigger).toEqual({ renewal: 2 });
    expect(capture.options.get("tb-kubelet-serving-key")?.replacementTrigger).toEqual({ renewal: 2 });

    recorder.reset();
    const plain = captureOptions();
    const without = new WorkerNode("nb", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster }, { transformations: plain.transformations });
    await settle();
    expect((await valueOf(without.certificates)).trustBundle).toBe(cluster.caCertificate);
    expect(plain.options.get("nb-kubelet-key")?.replacementTrigger).toEqual({ renewal: 0 });
    expect(() => new WorkerNode("bad", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster, renewal: -1 })).toThrow(/renewal: must be a non-negative integer \(got -1\)/);
    expect(() => new WorkerNode("bad", { machine: machine(), credentials: { privateKey: PRIVATE_KEY }, cluster: { ...cluster, trustBundle: "" } })).toThrow(/cluster\.trustBundle: must be PEM text holding one or more CA certificates/);
  });
});
