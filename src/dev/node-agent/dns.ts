/**
 * A minimal authoritative DNS server for the dev node's Pods: A records for Services and
 * StatefulSet pod names, answered from a lookup function. Names it does not know get NXDOMAIN at
 * once (Pods have no route to the outside anyway); AAAA and other types for known names get an
 * empty NOERROR answer, so resolvers that ask for both families move on without waiting.
 */
import { createSocket, type Socket } from "node:dgram";

const TYPE_A = 1;
const CLASS_IN = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_FORMERR = 1;
const RCODE_SERVFAIL = 2;

export interface DnsQuestion {
  readonly id: number;
  readonly flags: number;
  readonly name: string;
  readonly type: number;
  /** Bytes of the question section, echoed in the answer. */
  readonly questionBytes: Buffer;
}

/** Parses the first question of a query; undefined when the packet is malformed. */
export function parseQuery(packet: Buffer): DnsQuestion | undefined {
  if (packet.length < 12 || packet.readUInt16BE(4) < 1) return undefined;
  const labels: string[] = [];
  let offset = 12;
  for (;;) {
    if (offset >= packet.length) return undefined;
    const length = packet[offset];
    if (length === 0) break;
    if (length > 63 || offset + 1 + length > packet.length) return undefined;
    labels.push(packet.toString("ascii", offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  offset += 1;
  if (offset + 4 > packet.length) return undefined;
  return {
    id: packet.readUInt16BE(0),
    flags: packet.readUInt16BE(2),
    name: labels.join(".").toLowerCase(),
    type: packet.readUInt16BE(offset),
    questionBytes: packet.subarray(12, offset + 4),
  };
}

/** An answer: `addresses` undefined means the name does not exist. */
export function buildResponse(q: DnsQuestion, addresses: readonly string[] | undefined, ttlSeconds = 5): Buffer {
  const answers = addresses && q.type === TYPE_A ? addresses : [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  const recursionDesired = q.flags & 0x0100;
  // QR (response) + AA (authoritative) + RD echoed + RA, and the rcode.
  header.writeUInt16BE(0x8000 | 0x0400 | recursionDesired | 0x0080 | (addresses === undefined ? RCODE_NXDOMAIN : 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  const records = answers.map((address) => {
    const record = Buffer.alloc(16);
    record.writeUInt16BE(0xc00c, 0); // pointer to the question's name
    record.writeUInt16BE(TYPE_A, 2);
    record.writeUInt16BE(CLASS_IN, 4);
    record.writeUInt32BE(ttlSeconds, 6);
    record.writeUInt16BE(4, 10);
    address.split(".").forEach((octet, i) => record.writeUInt8(Number(octet), 12 + i));
    return record;
  });
  return Buffer.concat([header, q.questionBytes, ...records]);
}

function errorReply(packet: Buffer, rcode: number): Buffer | undefined {
  if (packet.length < 12) return undefined;
  const header = Buffer.from(packet.subarray(0, 12));
  header.writeUInt16BE(0x8000 | rcode, 2);
  header.writeUInt32BE(0, 4);
  header.writeUInt32BE(0, 8);
  return header;
}

export type Lookup = (name: string) => readonly string[] | undefined;

/** Serves UDP DNS on `host:port` until the returned socket is closed. */
export function startDnsServer(host: string, port: number, lookup: Lookup, onError: (e: Error) => void): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.on("message", (packet, peer) => {
      const question = parseQuery(packet);
      let reply: Buffer | undefined;
      try {
        reply = question ? buildResponse(question, lookup(question.name)) : errorReply(packet, RCODE_FORMERR);
      } catch (error) {
        // A bad object in the informer cache must cost one answer, not the agent.
        onError(error as Error);
        reply = errorReply(packet, RCODE_SERVFAIL);
      }
      if (reply) socket.send(reply, peer.port, peer.address);
    });
    socket.once("error", reject);
    socket.bind(port, host, () => {
      socket.off("error", reject);
      socket.on("error", onError);
      resolve(socket);
    });
  });
}
