/** HTTPS checks against the local components, with the admin client certificate when needed. */
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";

export interface ClientTls {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** The admin (or any) client certificate from the dev PKI directory. */
export function clientTls(pkiDir: string, user: string): ClientTls {
  return {
    ca: readFileSync(join(pkiDir, "ca.crt"), "utf8"),
    cert: readFileSync(join(pkiDir, `${user}.crt`), "utf8"),
    key: readFileSync(join(pkiDir, `${user}.key`), "utf8"),
  };
}

export interface HttpResult {
  readonly status: number;
  readonly body: string;
}

/** One GET. Without a CA the server is not verified (healthz of components with their own self-signed serving certs). */
export function httpsGet(url: string, tls: ClientTls, timeoutMs = 5000): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "GET", ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.ca !== undefined, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls until `check` returns true. `isDead` lets a crashed process end the wait at once with
 * its log's tail instead of waiting out the timeout.
 */
export async function waitFor(what: string, check: () => Promise<boolean>, opts: { timeoutMs: number; isDead?: () => string | undefined }): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError = "";
  for (;;) {
    const death = opts.isDead?.();
    if (death) throw new Error(`${what}: ${death}`);
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${Math.round(opts.timeoutMs / 1000)} s${lastError ? ` (last error: ${lastError})` : ""}`);
    await sleep(250);
  }
}
