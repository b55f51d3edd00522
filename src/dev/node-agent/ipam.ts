/**
 * Pod addresses from the dev node's pod range. An address stays with its Pod's uid across agent
 * restarts (a Pod's IP must not change while the Pod exists), persisted in one JSON file.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cidrSize, formatIP, parseCidr, type Cidr } from "../../api/v1alpha1/cidr";

export class PodAddressAllocator {
  private readonly cidr: Cidr;
  private readonly byUid: Map<string, string>;

  constructor(
    cidrText: string,
    private readonly file: string,
  ) {
    const cidr = parseCidr(cidrText);
    if (!cidr || cidr.family !== 4) throw new Error(`pod CIDR "${cidrText}" is not an IPv4 CIDR`);
    this.cidr = cidr;
    this.byUid = new Map(existsSync(file) ? Object.entries(JSON.parse(readFileSync(file, "utf8")) as Record<string, string>) : []);
  }

  get prefix(): number {
    return this.cidr.prefix;
  }

  /** The bridge's address: the range's first host address. */
  get gateway(): string {
    return formatIP(4, this.cidr.network + 1n);
  }

  allocate(uid: string): string {
    const known = this.byUid.get(uid);
    if (known) return known;
    const used = new Set(this.byUid.values());
    // Skip the network address, the gateway and the broadcast address.
    const last = cidrSize(this.cidr) - 1n;
    for (let n = 2n; n < last; n++) {
      const candidate = formatIP(4, this.cidr.network + n);
      if (!used.has(candidate)) {
        this.byUid.set(uid, candidate);
        this.save();
        return candidate;
      }
    }
    throw new Error(`pod range ${formatIP(4, this.cidr.network)}/${this.cidr.prefix} is exhausted`);
  }

  release(uid: string): void {
    if (this.byUid.delete(uid)) this.save();
  }

  /** Forgets every uid not in `alive` (Pods deleted while the agent was down). */
  retain(alive: ReadonlySet<string>): void {
    for (const uid of [...this.byUid.keys()]) if (!alive.has(uid)) this.byUid.delete(uid);
    this.save();
  }

  private save(): void {
    writeFileSync(this.file, JSON.stringify(Object.fromEntries(this.byUid), null, 1));
  }
}
