/**
 * The dev node has no container runtime: an image names a binary of the local toolchain.
 * `<any registry>/kube-apiserver:v1.35.4` → k8s/v1.35.4/bin/kube-apiserver (so an upgrade really
 * runs the new minor), `<any registry>/etcd:3.6.16-0` → bin/etcd. Anything else is refused the
 * way a kubelet refuses an image it cannot pull.
 */
import { kubernetesBinary, toolchainBinary } from "../toolchain";

const KUBERNETES_BINARIES = new Set(["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]);
/** What the etcd image ships besides its entrypoint (exec probes run etcdctl). */
const ETCD_IMAGE_BINARIES = new Set(["etcd", "etcdctl", "etcdutl"]);

export interface ImageReference {
  /** Last path segment of the repository: `kube-apiserver`, `etcd`. */
  readonly name: string;
  readonly tag: string;
}

export function parseImage(image: string): ImageReference {
  const withoutDigest = image.split("@")[0];
  const slash = withoutDigest.lastIndexOf("/");
  const colon = withoutDigest.lastIndexOf(":");
  const hasTag = colon > slash;
  const repository = hasTag ? withoutDigest.slice(0, colon) : withoutDigest;
  return { name: repository.slice(repository.lastIndexOf("/") + 1), tag: hasTag ? withoutDigest.slice(colon + 1) : "latest" };
}

export class ImageNotAvailableError extends Error {}

/** The local binary for an image; throws ImageNotAvailableError saying what is missing. */
export function binaryForImage(image: string): { name: string; path: string } {
  const ref = parseImage(image);
  try {
    if (KUBERNETES_BINARIES.has(ref.name)) {
      if (!/^v\d+\.\d+\.\d+$/.test(ref.tag)) throw new ImageNotAvailableError(`image ${image}: tag must be an exact Kubernetes version like v1.36.3`);
      return { name: ref.name, path: kubernetesBinary(ref.name, ref.tag) };
    }
    if (ref.name === "etcd") return { name: "etcd", path: toolchainBinary("etcd") };
  } catch (error) {
    if (error instanceof ImageNotAvailableError) throw error;
    throw new ImageNotAvailableError(`image ${image}: ${(error as Error).message}`);
  }
  throw new ImageNotAvailableError(
    `image ${image}: the kok dev node runs only images of the local toolchain (${[...KUBERNETES_BINARIES, "etcd"].join(", ")})`,
  );
}

/**
 * The local binary for a command run in a container of `image` (an exec probe): the image's own
 * binary, or for etcd also etcdctl and etcdutl. Throws ImageNotAvailableError naming the command.
 */
export function binaryForCommand(image: string, command: string): string {
  const name = command.slice(command.lastIndexOf("/") + 1);
  const own = binaryForImage(image);
  if (name === own.name) return own.path;
  if (own.name === "etcd" && ETCD_IMAGE_BINARIES.has(name)) {
    try {
      return toolchainBinary(name);
    } catch (error) {
      throw new ImageNotAvailableError(`command ${command} of image ${image}: ${(error as Error).message}`);
    }
  }
  throw new ImageNotAvailableError(`command ${command}: not a binary of image ${image} on the kok dev node`);
}
