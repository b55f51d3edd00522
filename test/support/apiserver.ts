/**
 * A real etcd + kube-apiserver on loopback for integration tests, started the way
 * controller-runtime's envtest does it: no kubelet, no controllers, free ports, a temp dir,
 * a static admin token in `system:masters`. Binaries come from `npm run toolchain`; a missing one
 * fails the test at once naming that command (nothing is skipped).
 *
 * The apiserver can be stopped and started again on the same port and etcd, which is how tests
 * break every watch and then check that informers recover.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { TOOLCHAIN_DIR } from "./engine";

export interface TestApiserver {
  /** https://127.0.0.1:<port> */
  readonly url: string;
  /** http://127.0.0.1:<port> of its etcd (plain HTTP, loopback), to read what is stored. */
  readonly etcdUrl: string;
  /** A fresh admin KubeConfig (token auth, system:masters). */
  kubeConfig(): KubeConfig;
  /**
   * Kills kube-apiserver only, as a crash would (SIGKILL: a graceful stop waits ~10 s for open
   * watches to drain); etcd keeps the data. Every watch breaks with a reset connection.
   */
  stopApiserver(): Promise<void>;
  /** Starts kube-apiserver again on the same port and waits for /readyz. */
  startApiserver(): Promise<void>;
  /** Stops both processes and removes the temp dir. */
  stop(): Promise<void>;
}

function binary(name: string): string {
  const file = path.join(TOOLCHAIN_DIR, "bin", name);
  if (!existsSync(file)) {
    throw new Error(`${name} is missing at ${file}: build it with \`npm run toolchain\` (see docs/toolchain.md)`);
  }
  return file;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

function startProcess(bin: string, args: string[], logFile: string): ChildProcess {
  const log = openSync(logFile, "a");
  const child = spawn(bin, args, { stdio: ["ignore", log, log] });
  closeSync(log);
  return child;
}

async function stopProcess(child: ChildProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const killTimer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(killTimer);
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** GET `url` with the token, ignoring TLS trust (loopback health probe only); resolves the status code. */
function probe(url: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { headers: { Authorization: `Bearer ${token}` }, rejectUnauthorized: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", () => resolve(0));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, child: ChildProcess, logFile: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}:\n${tail(logFile)}`);
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms:\n${tail(logFile)}`);
}

export interface TestApiserverOptions {
  /** More kube-apiserver flags (`--name=value`), used on every start. */
  readonly extraArgs?: readonly string[];
}

export async function startTestApiserver(options: TestApiserverOptions = {}): Promise<TestApiserver> {
  const etcdBin = binary("etcd");
  const apiserverBin = binary("kube-apiserver");
  const dir = mkdtempSync(path.join(tmpdir(), "kok-apiserver-"));
  const [etcdPort, peerPort, securePort] = [await freePort(), await freePort(), await freePort()];
  const token = randomBytes(24).toString("hex");

  const etcdLog = path.join(dir, "etcd.log");
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const etcd = startProcess(
    etcdBin,
    [
      "--name=default",
      `--data-dir=${path.join(dir, "etcd")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      "--unsafe-no-fsync=true",
    ],
    etcdLog,
  );
  await waitFor("etcd", async () => (await fetch(`${etcdUrl}/health`).then((r) => r.ok).catch(() => false)), etcd, etcdLog);

  // The service-account key pair the apiserver signs and checks tokens with.
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  writeFileSync(path.join(dir, "sa.key"), privateKey.export({ type: "pkcs8", format: "pem" }));
  writeFileSync(path.join(dir, "sa.pub"), publicKey.export({ type: "spki", format: "pem" }));
  writeFileSync(path.join(dir, "tokens.csv"), `${token},admin,admin-uid,system:masters\n`, { mode: 0o600 });
  mkdirSync(path.join(dir, "certs"));

  const url = `https://127.0.0.1:${securePort}`;
  const apiserverLog = path.join(dir, "kube-apiserver.log");
  const apiserverArgs = [
    `--etcd-servers=${etcdUrl}`,
    `--cert-dir=${path.join(dir, "certs")}`,
    `--secure-port=${securePort}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    "--service-cluster-ip-range=10.0.0.0/24",
    `--service-account-issuer=${url}`,
    `--service-account-key-file=${path.join(dir, "sa.pub")}`,
    `--service-account-signing-key-file=${path.join(dir, "sa.key")}`,
    "--authorization-mode=RBAC",
    `--token-auth-file=${path.join(dir, "tokens.csv")}`,
    "--allow-privileged=true",
    ...(options.extraArgs ?? []),
  ];
  let apiserver: ChildProcess | undefined;

  const startApiserver = async () => {
    const child = startProcess(apiserverBin, apiserverArgs, apiserverLog);
    apiserver = child;
    await waitFor("kube-apiserver", async () => (await probe(`${url}/readyz`, token)) === 200, child, apiserverLog);
  };
  const stopApiserver = () => stopProcess(apiserver, "SIGKILL");

  try {
    await startApiserver();
  } catch (err) {
    await stopProcess(apiserver);
    await stopProcess(etcd);
    throw err;
  }

  return {
    url,
    etcdUrl,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        // The apiserver writes its self-signed serving cert followed by the CA that signed it.
        clusters: [{ name: "test", server: url, caFile: path.join(dir, "certs", "apiserver.crt") }],
        users: [{ name: "admin", token }],
        contexts: [{ name: "test", cluster: "test", user: "admin" }],
        currentContext: "test",
      });
      return kc;
    },
    stopApiserver,
    startApiserver,
    async stop() {
      await stopProcess(apiserver, "SIGKILL");
      await stopProcess(etcd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
