/**
 * The fixed patterns of tenant-written strings, written once: the schemas carry them (so the CRDs
 * refuse a bad object at `kubectl apply`) and the validation functions test the same expressions
 * (so `kok validate`, the components and the operator refuse exactly what the apiserver refuses).
 * Every expression is valid both as a JavaScript RegExp and as an RE2 (Go) regexp, which is what
 * the apiserver uses for OpenAPI `pattern`: no look-around, no back-references.
 */

/** POSIX portable user name (as useradd accepts it): it reaches `ssh -l`, never an option. */
export const POSIX_USER_PATTERN = "^[a-z_][a-z0-9_-]{0,31}$";

/**
 * A package version: words of letters and digits joined by one of `. _ + ~ -`. No `/`, no `..`,
 * no leading separator: the version names a directory under the install root on the host.
 */
export const PACKAGE_VERSION_PATTERN = "^[A-Za-z0-9]+([._+~-][A-Za-z0-9]+)*$";
export const MAX_PACKAGE_VERSION_LENGTH = 64;

export const SHA256_PATTERN = "^[0-9a-f]{64}$";

/** An http(s) URL without credentials, spaces or a fragment. */
export const ARTIFACT_URL_PATTERN = "^https?://[A-Za-z0-9.:\\[\\]_-]+(/[^\\s#]*)?$";
export const MAX_URL_LENGTH = 2048;

/** A lowercase DNS subdomain (the Node name). */
export const HOSTNAME_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
export const MAX_HOSTNAME_LENGTH = 63;

/**
 * Exactly one known_hosts key: `<type> <base64>` and an optional printable comment. No newline,
 * no marker (`@cert-authority`, `@revoked`): the pin is written into a known_hosts file.
 */
export const HOST_KEY_PATTERN = "^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) [A-Za-z0-9+/]+={0,2}( [ -~]*)?$";
export const MAX_HOST_KEY_LENGTH = 8192;

export const KUBERNETES_VERSION_PATTERN = "^v(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$";
export const ETCD_VERSION_PATTERN = "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$";

/** A registry path as an image prefix: `host[:port]/path`, lowercase, no tag or digest. */
export const IMAGE_REPOSITORY_PATTERN = "^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$";
/** An image reference `repository[:tag][@sha256:digest]`. */
export const IMAGE_PATTERN =
  "^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$";

/** A Kubernetes quantity (`250m`, `20Gi`, `1e3`). */
export const QUANTITY_PATTERN = "^[+]?([0-9]+([.][0-9]*)?|[.][0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$";

/** Compiled once for the validation functions. */
export const matches = (pattern: string, text: string): boolean => new RegExp(pattern).test(text);
