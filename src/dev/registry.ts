/**
 * The dev cluster's image registry: distribution v3's `registry serve` on 127.0.0.1, filesystem
 * storage under the state directory (kept by `down`, so the images are pushed once), deletes
 * allowed (so a rebuilt tag can be cleaned up), no auth — it listens on loopback only.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { stringify } from "yaml";
import { statePaths, type DevConfig } from "./config";
import { httpRequest } from "./http";
import type { DevService } from "./services";

/** `127.0.0.1:<port>`: what `kok images build --registry` and containerd's mirror config point at. */
export function registryAddress(config: DevConfig): string {
  return `127.0.0.1:${config.ports.registry}`;
}

/** distribution's configuration file (https://distribution.github.io/distribution/about/configuration/). */
export function registryConfigYaml(config: DevConfig): string {
  const paths = statePaths(config.stateDir);
  return stringify({
    version: 0.1,
    // Each request is logged once ("response completed"), not a second time in Apache format.
    log: { level: "info", formatter: "text", accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: paths.registryData },
      delete: { enabled: true },
      cache: { blobdescriptor: "inmemory" },
    },
    http: { addr: registryAddress(config) },
  });
}

export function registryService(config: DevConfig): DevService {
  const paths = statePaths(config.stateDir);
  const address = registryAddress(config);
  return {
    name: "registry",
    file: "registry",
    binary: "registry",
    args: ["serve", paths.registryConfig],
    // distribution v3 exports OpenTelemetry traces to localhost:4318 unless told not to, and logs
    // an error for every failed export: there is no collector here.
    env: () => ({ OTEL_TRACES_EXPORTER: "none" }),
    // REGISTRY_<SECTION>_<KEY> variables override the config file: a developer's shell must not
    // move our storage or listener.
    dropEnv: (name) => name.startsWith("REGISTRY_"),
    port: config.ports.registry,
    address: `http://${address}`,
    prepare() {
      mkdirSync(paths.registryData, { recursive: true });
      writeFileSync(paths.registryConfig, registryConfigYaml(config));
    },
    async probe() {
      // The API's base endpoint: 200 when the registry serves the v2 API and needs no auth.
      const res = await httpRequest(`http://${address}/v2/`);
      const healthy = res.status === 200;
      return { serving: healthy, healthy, detail: healthy ? undefined : `GET /v2/ answered ${res.status}` };
    },
  };
}
