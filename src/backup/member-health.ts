/**
 * Is this member healthy, asked before its snapshot is taken: etcd's own `/health` on the client
 * port (a quorum read with a deadline; `{"health":"true"}` only when the member has a leader and
 * answers), over TLS with the backup's client certificate.
 *
 * Why not `etcdctl endpoint health`: `etcdctl snapshot save` has no deadline of its own (it may
 * stream gigabytes) and an address that never answers would hold it for the whole --timeout, so
 * a bounded check comes first; and etcdctl reports every failure to connect as `context deadline
 * exceeded`, the real cause (refused, unknown CA, expired certificate) appearing only in a gRPC
 * retry log that is not always written. Node's TLS client names it every time.
 */
import { readFileSync } from "node:fs";
import { request } from "node:https";
import type { TlsFiles } from "./etcd-tools";

/** OpenSSL's messages are a colon-separated trace; the TLS alert or verify reason is the part that says why. */
function describe(error: NodeJS.ErrnoException): string {
  if (!error.code?.startsWith("ERR_SSL_")) return error.code && !error.message.includes(error.code) ? `${error.code}: ${error.message}` : error.message;
  const reason = error.message.split(":").find((part) => /alert|certificate|verify|handshake/.test(part));
  return `TLS refused (${error.code}${reason ? `: ${reason.trim()}` : ""})`;
}

export function memberHealth(endpoint: string, tls: TlsFiles, timeoutMs = 5000): Promise<void> {
  const url = `${endpoint.replace(/\/$/, "")}/health`;
  const fail = (why: string) => new Error(`etcd member ${endpoint} is not healthy: ${why}`);
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: readFileSync(tls.cacert), cert: readFileSync(tls.cert), key: readFileSync(tls.key), timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let length = 0;
      res.on("data", (c: Buffer) => {
        if ((length += c.length) <= 4096) chunks.push(c);
      });
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8").trim();
        let health: unknown;
        try {
          health = (JSON.parse(body) as { health?: unknown }).health;
        } catch {
          health = undefined;
        }
        if (res.statusCode === 200 && health === "true") resolve();
        else reject(fail(`/health answered HTTP ${res.statusCode} ${body.slice(0, 200)}`));
      });
      res.on("error", (error) => reject(fail(error.message)));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on("error", (error: NodeJS.ErrnoException) => reject(fail(describe(error))));
    req.end();
  });
}
