import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cidrsOverlap, formatCidr, formatIP, nthAddress, parseCidr, parseIP } from "../../src/api/v1alpha1";

describe("CIDR arithmetic", () => {
  it("finds the kubernetes Service IP (first address) of v4 and v6 ranges", () => {
    expect(nthAddress(parseCidr("10.96.0.0/12")!, 1)).toBe("10.96.0.1");
    expect(nthAddress(parseCidr("fd00:10:96::/108")!, 1)).toBe("fd00:10:96::1");
    expect(() => nthAddress(parseCidr("10.0.0.0/31")!, 2)).toThrow(RangeError);
  });

  it("formats IPv6 per RFC 5952", () => {
    expect(formatIP(6, parseIP("2001:db8:0:0:1:0:0:1")!.value)).toBe("2001:db8::1:0:0:1");
    expect(formatIP(6, parseIP("::")!.value)).toBe("::");
    expect(formatIP(6, parseIP("fe80::")!.value)).toBe("fe80::");
    expect(parseIP("1::2::3")).toBeUndefined();
    expect(parseIP("256.1.1.1")).toBeUndefined();
  });

  it("round-trips any IPv4 and IPv6 address (property)", () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        expect(formatIP(4, parseIP(ip)!.value)).toBe(ip);
      }),
    );
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (value) => {
        expect(parseIP(formatIP(6, value))?.value).toBe(value);
      }),
    );
  });

  it("detects overlap exactly when the ranges share an address (property)", () => {
    const cidr = fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 8, max: 32 })).map(([n, p]) => {
      const text = `${formatIP(4, BigInt(n))}/${p}`;
      return parseCidr(formatCidr(parseCidr(text)!))!;
    });
    fc.assert(
      fc.property(cidr, cidr, (a, b) => {
        const aEnd = a.network + (1n << BigInt(32 - a.prefix)) - 1n;
        const bEnd = b.network + (1n << BigInt(32 - b.prefix)) - 1n;
        const shared = a.network <= bEnd && b.network <= aEnd;
        expect(cidrsOverlap(a, b)).toBe(shared);
        // Two CIDRs either nest or are disjoint: overlap means one contains the other's network.
        if (shared) expect(a.network === b.network || (a.network < b.network ? b.network <= aEnd : a.network <= bEnd)).toBe(true);
      }),
    );
  });
});
