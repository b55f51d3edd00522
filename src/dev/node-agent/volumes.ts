/**
 * A Pod's volumes made real on the host, as a kubelet does before it starts containers: Secret,
 * ConfigMap and projected (service-account token, ConfigMap, Secret, downward API) volumes
 * written as files under the Pod's directory; emptyDir as a directory there; hostPath as given.
 * The returned paths are bind-mounted at each container's mountPaths.
 */
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type * as k8s from "@kubernetes/client-node";
import { fieldValue, type PodFacts } from "./pod-spec";

interface KeyToPath {
  readonly key: string;
  readonly path: string;
  readonly mode?: number;
}

export interface VolumeSources {
  readSecret(namespace: string, name: string): Promise<Record<string, Buffer> | undefined>;
  readConfigMap(namespace: string, name: string): Promise<Record<string, Buffer> | undefined>;
  serviceAccountToken(namespace: string, serviceAccount: string, pod: k8s.V1Pod, audience: string | undefined, expirationSeconds: number): Promise<string>;
}

function writeEntry(dir: string, path: string, content: Buffer | string, mode: number): void {
  const file = join(dir, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
  chmodSync(file, mode);
}

/** Writes the selected keys (all when `items` is empty) of a Secret/ConfigMap's data. */
function writeKeys(dir: string, data: Record<string, Buffer>, items: readonly KeyToPath[] | undefined, mode: number, what: string): void {
  const selected = items?.length ? items : Object.keys(data).map((key) => ({ key, path: key, mode: undefined }));
  for (const item of selected) {
    const value = data[item.key];
    if (value === undefined) throw new Error(`${what} has no key "${item.key}"`);
    writeEntry(dir, item.path, value, item.mode ?? mode);
  }
}

async function writeProjected(dir: string, source: k8s.V1ProjectedVolumeSource, facts: PodFacts, sources: VolumeSources): Promise<void> {
  const namespace = facts.pod.metadata?.namespace ?? "default";
  const mode = source.defaultMode ?? 0o644;
  for (const part of source.sources ?? []) {
    if (part.serviceAccountToken) {
      const sa = facts.pod.spec?.serviceAccountName ?? "default";
      const token = await sources.serviceAccountToken(namespace, sa, facts.pod, part.serviceAccountToken.audience, part.serviceAccountToken.expirationSeconds ?? 3600);
      writeEntry(dir, part.serviceAccountToken.path, token, mode);
    } else if (part.configMap) {
      const data = await sources.readConfigMap(namespace, part.configMap.name ?? "");
      if (data) writeKeys(dir, data, part.configMap.items, mode, `ConfigMap ${namespace}/${part.configMap.name}`);
      else if (!part.configMap.optional) throw new Error(`ConfigMap ${namespace}/${part.configMap.name} not found`);
    } else if (part.secret) {
      const data = await sources.readSecret(namespace, part.secret.name ?? "");
      if (data) writeKeys(dir, data, part.secret.items, mode, `Secret ${namespace}/${part.secret.name}`);
      else if (!part.secret.optional) throw new Error(`Secret ${namespace}/${part.secret.name} not found`);
    } else if (part.downwardAPI) {
      for (const item of part.downwardAPI.items ?? []) {
        if (!item.fieldRef) throw new Error(`projected downwardAPI ${item.path}: only fieldRef is supported by the kok dev node`);
        writeEntry(dir, item.path, fieldValue(item.fieldRef.fieldPath, facts), item.mode ?? mode);
      }
    } else {
      throw new Error("projected volume: a source kind the kok dev node does not support");
    }
  }
}

/** Makes every volume of the Pod; returns volume name → host path. */
export async function prepareVolumes(podDir: string, facts: PodFacts, sources: VolumeSources): Promise<Map<string, string>> {
  const namespace = facts.pod.metadata?.namespace ?? "default";
  const paths = new Map<string, string>();
  for (const volume of facts.pod.spec?.volumes ?? []) {
    const dir = join(podDir, "volumes", volume.name);
    if (volume.hostPath) {
      const type = volume.hostPath.type ?? "";
      if (type === "DirectoryOrCreate") mkdirSync(volume.hostPath.path, { recursive: true });
      else if (!existsSync(volume.hostPath.path) && type !== "") throw new Error(`volume ${volume.name}: hostPath ${volume.hostPath.path} does not exist`);
      else if (!existsSync(volume.hostPath.path)) mkdirSync(volume.hostPath.path, { recursive: true });
      paths.set(volume.name, volume.hostPath.path);
      continue;
    }
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    paths.set(volume.name, dir);
    if (volume.emptyDir) continue;
    if (volume.secret) {
      const data = await sources.readSecret(namespace, volume.secret.secretName ?? "");
      if (data) writeKeys(dir, data, volume.secret.items, volume.secret.defaultMode ?? 0o644, `Secret ${namespace}/${volume.secret.secretName}`);
      else if (!volume.secret.optional) throw new Error(`volume ${volume.name}: Secret ${namespace}/${volume.secret.secretName} not found`);
    } else if (volume.configMap) {
      const data = await sources.readConfigMap(namespace, volume.configMap.name ?? "");
      if (data) writeKeys(dir, data, volume.configMap.items, volume.configMap.defaultMode ?? 0o644, `ConfigMap ${namespace}/${volume.configMap.name}`);
      else if (!volume.configMap.optional) throw new Error(`volume ${volume.name}: ConfigMap ${namespace}/${volume.configMap.name} not found`);
    } else if (volume.projected) {
      await writeProjected(dir, volume.projected, facts, sources);
    } else {
      throw new Error(
        `volume ${volume.name}: only emptyDir, hostPath, secret, configMap and projected volumes run on the kok dev node (PersistentVolumeClaims are not provisioned: use etcd.storage.volumeSource)`,
      );
    }
  }
  return paths;
}

/** True when a path is a regular file (a subPath mount of one key). */
export function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}
