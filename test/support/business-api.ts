/**
 * A real business-cluster API for the worker tests: etcd and kube-apiserver from the toolchain on
 * 127.0.0.1, token authentication, RBAC. No kubelet, scheduler or controller-manager: enough for
 * the kubectl steps (drain, Ready gate, uncordon, Node removal). Fails naming what is missing.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { TOOLCHAIN } from "./worker-engine";

export interface BusinessApi {
  readonly endpoint: string;
  /** An admin kubeconfig (token auth, server certificate not verified: it is self-signed per run). */
  readonly adminKubeconfig: string;
  kubectl(args: string[], input?: string): string;
  stop(): Promise<void>;
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });

async function waitFor(what: string, probe: () => boolean, child: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${what}: process exited (${child.exitCode}): ${log().slice(-2000)}`);
    if (probe()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not happen: ${log().slice(-2000)}`);
}

export interface BusinessApiOptions {
  /**
   * The cluster CA (PEM files). With it the API server's serving certificate is signed by this CA
   * (SAN 127.0.0.1), client certificates signed by it are accepted, and the Node authorizer and
   * NodeRestriction admission are on, as for real kubelets. Without it the server certificate is
   * self-signed and only the admin token is accepted.
   */
  readonly ca?: { readonly certFile: string; readonly keyFile: string };
}

export async function startBusinessApi(options: BusinessApiOptions = {}): Promise<BusinessApi> {
  const bin = (name: string) => path.join(TOOLCHAIN, "bin", name);
  for (const name of ["etcd", "kube-apiserver", "kubectl"]) {
    if (!existsSync(bin(name))) throw new Error(`${bin(name)} is missing: build it with \`npm run toolchain\``);
  }
  const work = mkdtempSync(path.join(tmpdir(), "kok-api-"));
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const children: ChildProcess[] = [];
  const start = (file: string, args: string[]) => {
    let log = "";
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-20000)));
    child.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-20000)));
    children.push(child);
    return { child, log: () => log };
  };
  const etcd = start(bin("etcd"), [
    "--name", "workers", "--data-dir", path.join(work, "etcd"),
    "--listen-client-urls", `http://127.0.0.1:${etcdPort}`, "--advertise-client-urls", `http://127.0.0.1:${etcdPort}`,
    "--listen-peer-urls", `http://127.0.0.1:${peerPort}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peerPort}`,
    "--initial-cluster", `workers=http://127.0.0.1:${peerPort}`,
    // A throwaway store, as envtest runs it: without this, every write waits for fsync, and while
    // other tests write images and unpack layers the apiserver's bootstrap took minutes (worker-pods: 307 s).
    "--unsafe-no-fsync=true",
  ]);
  const curlOk = (url: string, insecure = false) => {
    try {
      // Bounded: curl's own default waits up to 300 s on a connection that does not answer (seen:
      // worker-pods' setup took 307 s when one probe met the apiserver mid-start).
      execFileSync("curl", ["-fsS", "--connect-timeout", "2", "--max-time", "5", ...(insecure ? ["-k", "-H", "Authorization: Bearer admin-token"] : []), url], { stdio: "pipe" });
      return true;
    } catch {
      return false;
    }
  };
  await waitFor("etcd healthy", () => curlOk(`http://127.0.0.1:${etcdPort}/health`), etcd.child, etcd.log);
  execFileSync("openssl", ["genrsa", "-out", path.join(work, "sa.key"), "2048"], { stdio: "pipe" });
  execFileSync("openssl", ["rsa", "-in", path.join(work, "sa.key"), "-pubout", "-out", path.join(work, "sa.pub")], { stdio: "pipe" });
  writeFileSync(path.join(work, "tokens.csv"), 'admin-token,admin,admin,"system:masters"\n');
  const tlsFlags: string[] = [];
  if (options.ca) {
    const key = path.join(work, "apiserver.key");
    const csr = path.join(work, "apiserver.csr");
    const crt = path.join(work, "apiserver.crt");
    const ext = path.join(work, "apiserver.ext");
    writeFileSync(ext, "subjectAltName=IP:127.0.0.1,DNS:kubernetes,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    execFileSync("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=kube-apiserver"], { stdio: "pipe" });
    execFileSync("openssl", ["x509", "-req", "-in", csr, "-CA", options.ca.certFile, "-CAkey", options.ca.keyFile, "-CAcreateserial", "-out", crt, "-days", "1", "-extfile", ext], { stdio: "pipe" });
    tlsFlags.push("--tls-cert-file", crt, "--tls-private-key-file", key, "--client-ca-file", options.ca.certFile, "--enable-admission-plugins", "NodeRestriction");
  }
  const api = start(bin("kube-apiserver"), [
    "--etcd-servers", `http://127.0.0.1:${etcdPort}`, "--cert-dir", path.join(work, "certs"),
    "--secure-port", String(apiPort), "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
    "--service-cluster-ip-range", "10.0.0.0/24", "--service-account-issuer", "https://kubernetes.default.svc",
    "--service-account-key-file", path.join(work, "sa.pub"), "--service-account-signing-key-file", path.join(work, "sa.key"),
    "--token-auth-file", path.join(work, "tokens.csv"), "--authorization-mode", options.ca ? "Node,RBAC" : "RBAC",
    ...tlsFlags,
  ]);
  const endpoint = `https://127.0.0.1:${apiPort}`;
  await waitFor("kube-apiserver ready", () => curlOk(`${endpoint}/readyz`, true), api.child, api.log);
  // The CA the serving certificate chains to (the self-signed one is its own), inline: the
  // operator's code refuses kubeconfigs that skip TLS checks (trusted-kubeconfig.ts).
  const servingCa = readFileSync(options.ca?.certFile ?? path.join(work, "certs", "apiserver.crt")).toString("base64");
  const adminKubeconfig = `apiVersion: v1
kind: Config
clusters: [{ name: business, cluster: { server: "${endpoint}", certificate-authority-data: ${servingCa} } }]
users: [{ name: admin, user: { token: admin-token } }]
contexts: [{ name: admin, context: { cluster: business, user: admin } }]
current-context: admin
`;
  const kubeconfigFile = path.join(work, "admin.conf");
  writeFileSync(kubeconfigFile, adminKubeconfig, { mode: 0o600 });
  return {
    endpoint,
    adminKubeconfig,
    kubectl: (args, input) => execFileSync(bin("kubectl"), ["--kubeconfig", kubeconfigFile, ...args], { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] }),
    async stop() {
      for (const child of children.reverse()) {
        if (child.exitCode !== null) continue;
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(work, { recursive: true, force: true });
    },
  };
}
