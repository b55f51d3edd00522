/**
 * What kind of address a Machine's `ip` is. The operator opens SSH connections to it from inside
 * the platform: an address that points back at the operator itself (loopback), at the cloud's
 * metadata service (link-local 169.254.169.254), at nothing (0.0.0.0, which Linux routes to the
 * local host) or at many hosts at once (multicast, broadcast) lets a tenant aim the operator at
 * the platform. Loopback has legitimate uses (the dev and test hosts are 127.0.x.y), so it is left
 * to the admin policy; the others are refused always.
 */
import { parseCidr, parseIP, type Cidr } from "./cidr";

export type AddressClass = "unicast" | "loopback" | "unspecified" | "link-local" | "multicast" | "broadcast" | "ipv4-mapped";

const RANGES: readonly [AddressClass, string][] = [
  ["unspecified", "0.0.0.0/8"],
  ["loopback", "127.0.0.0/8"],
  ["link-local", "169.254.0.0/16"],
  ["multicast", "224.0.0.0/4"],
  ["broadcast", "255.255.255.255/32"],
  ["unspecified", "::/128"],
  ["loopback", "::1/128"],
  ["ipv4-mapped", "::ffff:0:0/96"],
  ["link-local", "fe80::/10"],
  ["multicast", "ff00::/8"],
];
const PARSED = RANGES.map(([kind, text]) => [kind, parseCidr(text) as Cidr] as const);

/** Whether `ip` lies in `cidr` (same family, same network bits). */
export function cidrContains(cidr: Cidr, ip: string): boolean {
  const parsed = parseIP(ip);
  if (!parsed || parsed.family !== cidr.family) return false;
  const bits = cidr.family === 4 ? 32 : 128;
  const hostMask = (1n << BigInt(bits - cidr.prefix)) - 1n;
  return (parsed.value & ~hostMask) === cidr.network;
}

/** The class of a valid IP address; undefined when `ip` is not one. */
export function addressClass(ip: string): AddressClass | undefined {
  if (!parseIP(ip)) return undefined;
  return PARSED.find(([, cidr]) => cidrContains(cidr, ip))?.[0] ?? "unicast";
}

/** Classes no policy can allow as an SSH target. */
export const ALWAYS_REFUSED_ADDRESSES: readonly AddressClass[] = ["unspecified", "link-local", "multicast", "broadcast", "ipv4-mapped"];

/** Why `ip` can never be an SSH target, or undefined. */
export function refusedAddressProblem(ip: string): string | undefined {
  const kind = addressClass(ip);
  if (!kind || !ALWAYS_REFUSED_ADDRESSES.includes(kind)) return undefined;
  const why: Record<string, string> = {
    unspecified: "an unspecified address (it reaches the operator's own host)",
    "link-local": "a link-local address (169.254.0.0/16 holds the cloud metadata service)",
    multicast: "a multicast address",
    broadcast: "the broadcast address",
    "ipv4-mapped": "an IPv4-mapped IPv6 address (write the IPv4 address itself)",
  };
  return `"${ip}" is ${why[kind]}; worker hosts need a unicast address`;
}
