/**
 * Plain-HTTP requests to the dev services on loopback (the registry and the object store serve
 * HTTP there; the masters' HTTPS checks are in health.ts). node:http, not fetch, so the headers
 * sent are exactly the ones given — a SigV4 signature covers them.
 */
import { request } from "node:http";

export interface HttpResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

export interface HttpOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer | string;
  readonly timeoutMs?: number;
}

export function httpRequest(url: string, opts: HttpOptions = {}): Promise<HttpResponse> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const body = typeof opts.body === "string" ? Buffer.from(opts.body) : opts.body;
  const headers: Record<string, string> = { ...opts.headers };
  const method = opts.method ?? "GET";
  // A length even for an empty PUT/POST (CreateBucket, an upload session): Node would otherwise send it chunked.
  if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-length") && (body || !["GET", "HEAD"].includes(method))) {
    headers["content-length"] = String(body?.length ?? 0);
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url}: timed out after ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}
