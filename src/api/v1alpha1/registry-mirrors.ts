/**
 * The container runtime settings of a catalog (ClusterPackageVersion): the pod sandbox (pause)
 * image and registry mirrors, written into every worker's containerd configuration. The mirrors
 * are what an air-gapped site needs: `registry.k8s.io/pause:3.10.2` is then pulled from the
 * mirror under its upstream name, so image references in Pod specs stay as they are.
 */
import { Type, type Static } from "@sinclair/typebox";
import { DEFAULT_PAUSE_VERSION } from "./cluster-defaults";
import { IMAGE_PATTERN, matches, MAX_URL_LENGTH } from "./patterns";
import type { Problem } from "./validation";

/** A registry host as containerd names it in `certs.d/<host>`: lowercase DNS name or IPv4, optional port. */
export const REGISTRY_HOST_PATTERN = "^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?$";
/**
 * A mirror endpoint: http(s), a host, an optional port and path, nothing else (no credentials,
 * query, fragment, quotes, spaces or control characters: it is written into a TOML file as root).
 */
export const MIRROR_URL_PATTERN = "^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*/?$";
export const MAX_MIRRORED_REGISTRIES = 32;
export const MAX_MIRRORS_PER_REGISTRY = 8;

export const RegistryMirrors = Type.Record(
  Type.String(),
  Type.Array(Type.String({ maxLength: MAX_URL_LENGTH, pattern: MIRROR_URL_PATTERN }), { minItems: 1, maxItems: MAX_MIRRORS_PER_REGISTRY }),
  {
    maxProperties: MAX_MIRRORED_REGISTRIES,
    description:
      'Registry host[:port] → mirror URLs tried in order before the registry itself, e.g. { "registry.k8s.io": ["https://mirror.example.com"] }. ' +
      "Keys: lowercase host[:port]; mirrors: http(s)://host[:port][/path]; at most 32 registries of 8 mirrors. " +
      "Written to /etc/containerd/certs.d/<host>/hosts.toml on every worker at its next install or upgrade; the mirrors must be under the admin policy's allowedRegistries.",
  },
);
export type RegistryMirrors = Static<typeof RegistryMirrors>;

export const SandboxImage = Type.String({
  maxLength: 512,
  pattern: IMAGE_PATTERN,
  description: `The pod sandbox (pause) image of the workers' containerd. Default: <the Cluster's imageRepository>/pause:${DEFAULT_PAUSE_VERSION}. Only from the admin policy's allowedRegistries.`,
});

/** What WorkerNode writes into containerd's configuration besides paths and the cgroup driver. */
export interface ContainerRuntimeSettings {
  /** Default `registry.k8s.io/pause:<DEFAULT_PAUSE_VERSION>`. */
  readonly sandboxImage?: string;
  readonly registryMirrors?: RegistryMirrors;
}

/** Every problem of a registryMirrors value, each naming its registry (and mirror index). */
export function registryMirrorsProblems(mirrors: unknown, path: string): Problem[] {
  if (mirrors === undefined) return [];
  if (typeof mirrors !== "object" || mirrors === null || Array.isArray(mirrors)) {
    return [{ path, message: 'must be a map of registry host to mirror URLs, e.g. { "registry.k8s.io": ["https://mirror.example.com"] }' }];
  }
  const problems: Problem[] = [];
  const entries = Object.entries(mirrors as Record<string, unknown>);
  if (entries.length > MAX_MIRRORED_REGISTRIES) problems.push({ path, message: `at most ${MAX_MIRRORED_REGISTRIES} registries (got ${entries.length})` });
  for (const [registry, urls] of entries) {
    const at = `${path}[${JSON.stringify(registry)}]`;
    if (!matches(REGISTRY_HOST_PATTERN, registry)) {
      problems.push({ path: at, message: "the key must be a registry host[:port] such as registry.k8s.io or registry.example.com:5000 (lowercase, no scheme or path)" });
    }
    if (!Array.isArray(urls) || urls.length === 0) {
      problems.push({ path: at, message: "must be a non-empty list of mirror URLs" });
      continue;
    }
    if (urls.length > MAX_MIRRORS_PER_REGISTRY) problems.push({ path: at, message: `at most ${MAX_MIRRORS_PER_REGISTRY} mirrors (got ${urls.length})` });
    urls.forEach((url, i) => {
      if (typeof url !== "string" || url.length > MAX_URL_LENGTH || !matches(MIRROR_URL_PATTERN, url)) {
        problems.push({
          path: `${at}[${i}]`,
          message: `${JSON.stringify(url).slice(0, 80)} is not a mirror URL: http(s)://host[:port][/path] without credentials, query, quotes, spaces or control characters`,
        });
      }
    });
  }
  return problems;
}

/** `host[:port][/path]` of a mirror URL: what the admin policy's allowedRegistries prefixes are matched against. */
export const mirrorLocation = (url: string): string => url.replace(/^https?:\/\//, "").replace(/\/+$/, "");
