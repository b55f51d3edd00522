/**
 * Probes, run by the agent as a kubelet does: httpGet (HTTP or HTTPS without verifying the
 * certificate; 200–399 is success) and tcpSocket from the host against the Pod's IP, and exec
 * inside the container's namespaces through the runner the container gives (exit 0 is success).
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import type * as k8s from "@kubernetes/client-node";

export interface ProbeResult {
  readonly ok: boolean;
  readonly message?: string;
}

function resolvePort(port: number | string | undefined, container: k8s.V1Container): number {
  if (typeof port === "number") return port;
  if (port !== undefined && /^\d+$/.test(port)) return Number(port);
  const named = container.ports?.find((p) => p.name === port);
  if (!named) throw new Error(`probe port "${port}" is not a port of container ${container.name}`);
  return named.containerPort;
}

function httpGet(action: k8s.V1HTTPGetAction, podIP: string, container: k8s.V1Container, timeoutMs: number): Promise<ProbeResult> {
  const https = action.scheme === "HTTPS";
  const headers = Object.fromEntries((action.httpHeaders ?? []).map((h) => [h.name, h.value]));
  const options = { host: action.host || podIP, port: resolvePort(action.port, container), path: action.path ?? "/", method: "GET", headers, timeout: timeoutMs };
  return new Promise((resolve) => {
    const done = (result: ProbeResult) => resolve(result);
    const onResponse = (res: import("node:http").IncomingMessage) => {
      res.resume();
      const status = res.statusCode ?? 0;
      done(status >= 200 && status < 400 ? { ok: true } : { ok: false, message: `HTTP probe failed with statuscode: ${status}` });
    };
    const req = https ? httpsRequest({ ...options, rejectUnauthorized: false }, onResponse) : httpRequest(options, onResponse);
    req.on("timeout", () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on("error", (error) => done({ ok: false, message: `Get ${https ? "https" : "http"}://${options.host}:${options.port}${options.path}: ${error.message}` }));
    req.end();
  });
}

function tcpSocket(action: k8s.V1TCPSocketAction, podIP: string, container: k8s.V1Container, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: action.host || podIP, port: resolvePort(action.port, container), timeout: timeoutMs });
    socket.once("connect", () => {
      socket.destroy();
      resolve({ ok: true });
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolve({ ok: false, message: "tcp probe timed out" });
    });
    socket.once("error", (error) => resolve({ ok: false, message: error.message }));
  });
}

/** Runs an exec probe's command in the container; resolves its result within `timeoutMs`. */
export type ExecInContainer = (command: readonly string[], timeoutMs: number) => Promise<ProbeResult>;

export async function runProbe(probe: k8s.V1Probe, podIP: string, container: k8s.V1Container, exec?: ExecInContainer): Promise<ProbeResult> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  try {
    if (probe.httpGet) return await httpGet(probe.httpGet, podIP, container, timeoutMs);
    if (probe.tcpSocket) return await tcpSocket(probe.tcpSocket, podIP, container, timeoutMs);
    if (probe.exec?.command?.length && exec) return await exec(probe.exec.command, timeoutMs);
    return { ok: false, message: "only httpGet, tcpSocket and exec probes run on the kok dev node" };
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
}
