/** Checks that loopback ports are free before anything starts, naming each taken one. */
import { createServer } from "node:net";

export function isPortFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Problems for every taken port, e.g. `port 16443 (kube-apiserver) on 127.0.0.1 is in use`. */
export async function takenPorts(ports: Record<string, number>): Promise<string[]> {
  const problems: string[] = [];
  for (const [owner, port] of Object.entries(ports)) {
    if (!(await isPortFree(port))) {
      problems.push(
        `port ${port} (${owner}) on 127.0.0.1 is in use: stop what listens there (\`ss -ltnp 'sport = :${port}'\`) or choose other ports (\`kok dev up --port-base N\`)`,
      );
    }
  }
  return problems;
}
