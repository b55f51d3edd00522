/**
 * The default image of the etcd backup and restore containers: the operator image of this release,
 * which carries `kok`, etcdctl and etcdutl (src/images/operator.ts). A module of its own, without
 * Pulumi, so `kok operator` can name the default before it loads the engine's libraries.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The operator image's repository. */
export const BACKUP_IMAGE_REPOSITORY = "docker.io/kube-on-kube/operator";

/** `docker.io/kube-on-kube/operator:<version of this package>`. */
export function defaultBackupImage(): string {
  // src/components or dist/components: the package's root is two levels up either way.
  const { version } = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")) as { version: string };
  return `${BACKUP_IMAGE_REPOSITORY}:${version}`;
}
