/**
 * The Service addresses derived from `spec.network.serviceCIDR`: the `kubernetes` Service takes the
 * first, the cluster DNS Service (the kubelets' clusterDNS) the tenth, as kubeadm derives them.
 * Properties over random IPv4 and IPv6 ranges, and the ranges validation refuses.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CLUSTER_DNS_ADDRESS_INDEX,
  cidrSize,
  clusterDnsAddress,
  formatCidr,
  kubernetesServiceAddress,
  parseCidr,
  parseIP,
  validateClusterSpec,
  type Cidr,
} from "../../src/api/v1alpha1";
import { standardSpec } from "../support/specs";

/** A range without host bits: a random address masked to a random prefix. */
const range = (family: 4 | 6, minPrefix: number, maxPrefix: number) =>
  fc
    .tuple(fc.bigInt({ min: 0n, max: (1n << (family === 4 ? 32n : 128n)) - 1n }), fc.integer({ min: minPrefix, max: maxPrefix }))
    .map(([value, prefix]) => {
      const bits = family === 4 ? 32 : 128;
      const hostMask = (1n << BigInt(bits - prefix)) - 1n;
      return formatCidr({ family, network: value & ~hostMask, prefix, hostBitsSet: false });
    });
/** Ranges that have a tenth address (IPv4 /0–/28, IPv6 /0–/124) and ranges that do not. */
const roomy = fc.oneof(range(4, 0, 28), range(6, 0, 124));
const tiny = fc.oneof(range(4, 29, 32), range(6, 125, 128));

const inside = (cidr: Cidr, address: string) => {
  const ip = parseIP(address);
  return ip !== undefined && ip.family === cidr.family && ip.value >= cidr.network && ip.value < cidr.network + cidrSize(cidr);
};

describe("clusterDnsAddress and kubernetesServiceAddress", () => {
  it("match kubeadm for the default and common ranges", () => {
    expect(clusterDnsAddress("10.96.0.0/12")).toBe("10.96.0.10");
    expect(kubernetesServiceAddress("10.96.0.0/12")).toBe("10.96.0.1");
    expect(clusterDnsAddress("172.20.0.0/16")).toBe("172.20.0.10");
    expect(clusterDnsAddress("10.96.0.0/28")).toBe("10.96.0.10");
    expect(clusterDnsAddress("fd00:10:96::/108")).toBe("fd00:10:96::a");
    expect(kubernetesServiceAddress("fd00:10:96::/108")).toBe("fd00:10:96::1");
    expect(clusterDnsAddress("fd00::/124")).toBe("fd00::a");
  });

  it("lie inside the range, the DNS address 10 past the network address and apart from the kubernetes Service's (property)", () => {
    fc.assert(
      fc.property(roomy, (text) => {
        const cidr = parseCidr(text)!;
        const dns = clusterDnsAddress(text);
        const api = kubernetesServiceAddress(text);
        expect(inside(cidr, dns)).toBe(true);
        expect(inside(cidr, api)).toBe(true);
        expect(dns).not.toBe(api);
        expect(parseIP(dns)!.value).toBe(cidr.network + BigInt(CLUSTER_DNS_ADDRESS_INDEX));
        expect(parseIP(api)!.value).toBe(cidr.network + 1n);
        // Written as the kubelet and the Service's clusterIP expect it: canonical, no prefix.
        expect(parseCidr(`${dns}/${cidr.family === 4 ? 32 : 128}`)?.hostBitsSet).toBe(false);
        expect(formatCidr(parseCidr(`${dns}/${cidr.family === 4 ? 32 : 128}`)!)).toBe(`${dns}/${cidr.family === 4 ? 32 : 128}`);
      }),
      { numRuns: 500 },
    );
  });

  it("refuse a range of 10 addresses or fewer, and validation refuses it first (property)", () => {
    fc.assert(
      fc.property(tiny, (text) => {
        expect(() => clusterDnsAddress(text)).toThrow(RangeError);
        const problems = validateClusterSpec(standardSpec({ network: { serviceCIDR: text, podCIDR: "10.244.0.0/16" } }));
        expect(problems.map((p) => p.path)).toContain("spec.network.serviceCIDR");
      }),
      { numRuns: 200 },
    );
  });

  it("never throw for a range validation accepts (property)", () => {
    fc.assert(
      fc.property(fc.oneof(range(4, 12, 28), range(6, 108, 124)), (text) => {
        // Ranges overlapping the default pod range are another problem; use a pod range of the other family.
        const pod = text.includes(":") ? "10.244.0.0/16" : "fd00:244::/56";
        const problems = validateClusterSpec(standardSpec({ network: { serviceCIDR: text, podCIDR: pod } }));
        expect(problems).toEqual([]);
        expect(() => clusterDnsAddress(text)).not.toThrow();
      }),
      { numRuns: 300 },
    );
  });

  it("refuse text that is no CIDR", () => {
    expect(() => clusterDnsAddress("10.96.0.10")).toThrow(RangeError);
    expect(() => kubernetesServiceAddress("nope")).toThrow(RangeError);
  });
});
