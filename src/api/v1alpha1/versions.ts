/**
 * Version parsing and the Kubernetes version-skew rules that guard upgrades.
 * Pure functions: the ControlPlane component and the operator both call them.
 */

export interface SemVer {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  readonly preRelease?: string;
}

const KUBERNETES_VERSION = /^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?$/;
const PLAIN_VERSION = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?$/;

function toSemVer(match: RegExpExecArray | null): SemVer | undefined {
  if (!match) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3]), preRelease: match[4] };
}

/** Parses `v1.36.3` (the leading `v` is required, as in Kubernetes release tags). */
export function parseKubernetesVersion(version: string): SemVer | undefined {
  return toSemVer(KUBERNETES_VERSION.exec(version));
}

/** Parses `3.6.16` (no leading `v`, as etcd image tags are written). */
export function parsePlainVersion(version: string): SemVer | undefined {
  return toSemVer(PLAIN_VERSION.exec(version));
}

/** Negative when a < b, zero when equal, positive when a > b (pre-releases sort before releases). */
export function compareVersions(a: SemVer, b: SemVer): number {
  if (a.major !== b.major) return a.major - b.major;
  if (a.minor !== b.minor) return a.minor - b.minor;
  if (a.patch !== b.patch) return a.patch - b.patch;
  if (a.preRelease === b.preRelease) return 0;
  if (a.preRelease === undefined) return 1;
  if (b.preRelease === undefined) return -1;
  return a.preRelease < b.preRelease ? -1 : 1;
}

export function formatKubernetesVersion(v: SemVer): string {
  return `v${v.major}.${v.minor}.${v.patch}${v.preRelease ? `-${v.preRelease}` : ""}`;
}

/**
 * Why moving the masters from `running` to `target` would break the version-skew policy, or an
 * empty list when it is allowed. Kubernetes supports upgrading one minor at a time and never
 * supports a downgrade of the masters (etcd's stored objects may already use newer fields).
 */
export function kubernetesUpgradeProblems(running: string, target: string): string[] {
  const from = parseKubernetesVersion(running);
  const to = parseKubernetesVersion(target);
  if (!from) return [`the running version "${running}" is not a Kubernetes version like v1.36.3`];
  if (!to) return [`the target version "${target}" is not a Kubernetes version like v1.36.3`];
  if (to.major !== from.major) {
    return [`a major-version change ${running} → ${target} is not supported`];
  }
  if (compareVersions(to, from) < 0) {
    return [`${running} → ${target} is a downgrade; masters can only move forward (restore from an etcd backup instead)`];
  }
  if (to.minor > from.minor + 1) {
    const next = `v${from.major}.${from.minor + 1}`;
    return [
      `${running} → ${target} skips ${to.minor - from.minor - 1} minor version(s); upgrade one minor at a time (first to ${next}.x)`,
    ];
  }
  return [];
}

/** Same rule for etcd: no downgrade, at most one minor forward per step. */
export function etcdUpgradeProblems(running: string, target: string): string[] {
  const from = parsePlainVersion(running);
  const to = parsePlainVersion(target);
  if (!from || !to) return [`etcd ${running} → ${target}: both must be versions like 3.6.16`];
  if (to.major !== from.major) return [`etcd ${running} → ${target}: a major-version change is not supported`];
  if (compareVersions(to, from) < 0) return [`etcd ${running} → ${target} is a downgrade, which etcd does not support`];
  if (to.minor > from.minor + 1) return [`etcd ${running} → ${target} skips a minor version; upgrade one minor at a time`];
  return [];
}

/**
 * The Kubernetes minors the components know how to run (their flags, probes and defaults): from
 * three minors behind the newest one built here (v1.36) to the next one, so that an upgrade to it
 * can be prepared. Anything else is refused before a stack is touched.
 */
export const SUPPORTED_KUBERNETES_MINORS = { major: 1, min: 33, max: 37 } as const;
/** etcd 3.5.11 (the first with /livez and /readyz, which the probes use) up to the 3.7 line. */
export const SUPPORTED_ETCD = { major: 3, min: { major: 3, minor: 5, patch: 11 } as SemVer, maxMinor: 7 } as const;

/** Why `version` (already parsed) is outside the supported minors, or undefined. */
export function kubernetesSupportProblem(version: SemVer): string | undefined {
  const { major, min, max } = SUPPORTED_KUBERNETES_MINORS;
  if (version.major === major && version.minor >= min && version.minor <= max) return undefined;
  return `${formatKubernetesVersion(version)} is not supported: kube-on-kube runs v${major}.${min} to v${major}.${max}`;
}

/** Why an etcd version (already parsed) is outside the supported range, or undefined. */
export function etcdSupportProblem(version: SemVer): string | undefined {
  const { major, min, maxMinor } = SUPPORTED_ETCD;
  const text = `${version.major}.${version.minor}.${version.patch}`;
  if (version.major !== major || version.minor > maxMinor) {
    return `${text} is not supported: kube-on-kube runs etcd ${min.major}.${min.minor}.${min.patch} to ${major}.${maxMinor}.x`;
  }
  if (compareVersions(version, min) < 0) {
    return `${text} is too old: the probes use /livez and /readyz, which need etcd ${min.major}.${min.minor}.${min.patch} or later`;
  }
  return undefined;
}

/**
 * kube-proxy's skew against the masters (https://kubernetes.io/releases/version-skew-policy/):
 * never a newer minor than kube-apiserver, at most three minors older, same major.
 */
export const MAX_KUBE_PROXY_SKEW = 3;
/** The first kube-proxy whose nftables mode is on by default (beta in v1.31, GA in v1.33). */
export const KUBE_PROXY_NFTABLES_MIN_MINOR = 31;

/** Why a kube-proxy of `proxy` cannot run against masters of `masters` (both parsed), or undefined. */
export function kubeProxySkewProblem(proxy: SemVer, masters: SemVer): string | undefined {
  return nodeComponentSkewProblem("kube-proxy", proxy, masters);
}

/**
 * The kubelet's skew against the masters: the same rule as kube-proxy's since Kubernetes v1.28
 * (never newer than kube-apiserver, at most three minors older).
 */
export const MAX_KUBELET_SKEW = 3;

/**
 * Why a kubelet of `kubelet` (a package version as the host reports it, e.g. v1.36.3) cannot run
 * against these masters, or an empty list. `running` is the version the masters' stack last
 * reported (the Cluster's status.version), `target` the spec's; while the masters move from one
 * to the other both answer, so the kubelet must be no newer than the older one and no more than
 * three minors behind the newer one.
 */
export function kubeletSkewProblems(kubelet: string, masters: { readonly running?: string; readonly target: string }): string[] {
  const own = parseKubernetesVersion(kubelet);
  if (!own) return [`kubelet version "${kubelet}" is not a Kubernetes version like v1.36.3, so its skew against the masters cannot be checked`];
  const versions = [masters.running, masters.target].flatMap((v) => (v ? [parseKubernetesVersion(v)] : [])).filter((v): v is SemVer => v !== undefined);
  if (versions.length === 0) return [];
  const oldest = versions.reduce((a, b) => (compareVersions(a, b) <= 0 ? a : b));
  const newest = versions.reduce((a, b) => (compareVersions(a, b) >= 0 ? a : b));
  // Newer than the older masters, or too old for the newer: each checked against the one it concerns.
  const newer = own.major !== oldest.major || own.minor > oldest.minor ? nodeComponentSkewProblem("kubelet", own, oldest) : undefined;
  const older = own.major === newest.major && own.minor <= newest.minor ? nodeComponentSkewProblem("kubelet", own, newest) : undefined;
  return [...new Set([newer, older].filter((p): p is string => p !== undefined))];
}

/** The shared rule of the node components: same major, never a newer minor, at most three older. */
function nodeComponentSkewProblem(name: "kubelet" | "kube-proxy", own: SemVer, masters: SemVer): string | undefined {
  const p = formatKubernetesVersion(own);
  const m = formatKubernetesVersion(masters);
  const max = name === "kubelet" ? MAX_KUBELET_SKEW : MAX_KUBE_PROXY_SKEW;
  if (own.major !== masters.major) return `${name} ${p} is another major version than the masters' ${m}`;
  if (own.minor > masters.minor) return `${name} ${p} is newer than the masters' ${m}: ${name} must never be newer than kube-apiserver (version skew policy)`;
  if (masters.minor - own.minor > max) {
    return `${name} ${p} is ${masters.minor - own.minor} minors older than the masters' ${m}: ${name} may be at most ${max} older (version skew policy)`;
  }
  return undefined;
}
