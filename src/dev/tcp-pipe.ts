/**
 * One accepted TCP connection piped, both ways, to `host:port`; either side's error closes both.
 * Bytes only: what the dev environment forwards (TLS to an apiserver, HTTP to a registry or a
 * NodePort) passes through untouched.
 */
import { connect, type Socket } from "node:net";

export function pipeTo(client: Socket, port: number, host: string): void {
  const upstream = connect(port, host);
  client.pipe(upstream).pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", close);
  upstream.on("error", close);
}
