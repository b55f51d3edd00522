/**
 * The real node's forwarder process: `forwarder-entry <listenHost:port>=<targetHost:port> ...`
 * pipes TCP from the machine's end of the node link to services that listen on loopback only
 * (the meta-cluster's apiserver, the registry). Bytes only: TLS and client certificates pass
 * through untouched. Started and stopped by `kok dev` (forwarder.ts) with a pid file.
 */
import { connect, createServer } from "node:net";

function parse(spec: string): { listen: [string, number]; target: [string, number] } {
  const m = /^([\d.]+):(\d+)=([\d.]+):(\d+)$/.exec(spec);
  if (!m) throw new Error(`forwarder: "${spec}" is not listenHost:port=targetHost:port`);
  return { listen: [m[1], Number(m[2])], target: [m[3], Number(m[4])] };
}

for (const spec of process.argv.slice(2).map(parse)) {
  const server = createServer((client) => {
    const upstream = connect(spec.target[1], spec.target[0]);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close);
    upstream.on("error", close);
  });
  server.on("error", (error) => {
    console.error(`forwarder ${spec.listen.join(":")}: ${error.message}`);
    process.exit(1);
  });
  server.listen(spec.listen[1], spec.listen[0], () => console.log(`forwarding ${spec.listen.join(":")} -> ${spec.target.join(":")}`));
}
process.on("SIGTERM", () => process.exit(0));
