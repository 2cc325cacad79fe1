/**
 * Builds IPv4/IPv6 TCP and UDP packets for the segmentation and coalescing tests, with checksums from a
 * deliberately plain reference implementation (an explicit pseudo-header array, folded after every word)
 * that shares no code with src/net/checksum.ts.
 */

/** What a test packet carries. */
export interface PacketSpec {
  v: 4 | 6;
  proto: "tcp" | "udp";
  src?: number[];
  dst?: number[];
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  /** TCP flags byte (default ACK). */
  flags?: number;
  /** TCP option bytes (a multiple of 4). */
  options?: number[];
  payload: Uint8Array;
  /** IPv4 identification. */
  id?: number;
  /** IPv4 TOS or IPv6 traffic class. */
  tos?: number;
  /** IPv4 TTL or IPv6 hop limit. */
  ttl?: number;
  /** IPv4 option bytes (a multiple of 4). */
  ipOptions?: number[];
}

export const TCP_FIN = 0x01, TCP_SYN = 0x02, TCP_RST = 0x04, TCP_PSH = 0x08, TCP_ACK = 0x10, TCP_URG = 0x20;
export const TCP_CWR = 0x80;
/** TCP timestamps option, padded: 12 bytes. */
export const TS_OPTION = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];

const SRC4 = [10, 203, 0, 1], DST4 = [10, 203, 0, 2];
const SRC6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/** RFC 1071 over `bytes`, folding after every word; returns the value for the checksum field. */
export function refChecksum(bytes: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    s += (bytes[i] << 8) + (i + 1 < bytes.length ? bytes[i + 1] : 0);
    s = (s & 0xffff) + (s >>> 16);
  }
  return ~s & 0xffff;
}

/** Pseudo-header followed by the transport bytes of `pkt` (an IP packet), as a plain array. */
function withPseudo(pkt: Uint8Array): number[] {
  const v4 = pkt[0] >> 4 === 4;
  const ipLen = v4 ? (pkt[0] & 15) * 4 : 40;
  const addrs = v4 ? pkt.slice(12, 20) : pkt.slice(8, 40);
  const l4 = pkt.slice(ipLen);
  const proto = v4 ? pkt[9] : pkt[6];
  return [...addrs, 0, proto, l4.length >> 8, l4.length & 0xff, ...l4];
}

/** True when the IPv4 header checksum (if any) and the TCP/UDP checksum of `pkt` are valid. */
export function checksumsValid(pkt: Uint8Array): boolean {
  const v4 = pkt[0] >> 4 === 4;
  if (v4 && refChecksum(pkt.slice(0, (pkt[0] & 15) * 4)) !== 0) return false;
  return refChecksum(withPseudo(pkt)) === 0;
}

/** The packet, with correct lengths and checksums. */
export function buildPacket(s: PacketSpec): Uint8Array {
  const tcp = s.proto === "tcp";
  const opts = tcp ? (s.options ?? []) : [];
  const l4Head = tcp ? 20 + opts.length : 8;
  const l4 = new Uint8Array(l4Head + s.payload.length);
  const sport = s.sport ?? 40000, dport = s.dport ?? 5201;
  l4.set([sport >> 8, sport & 255, dport >> 8, dport & 255]);
  if (tcp) {
    new DataView(l4.buffer).setUint32(4, s.seq ?? 1000);
    new DataView(l4.buffer).setUint32(8, s.ack ?? 77);
    l4[12] = (l4Head / 4) << 4;
    l4[13] = s.flags ?? TCP_ACK;
    l4[14] = 0x01; // window 512
    l4.set(opts, 20);
  } else {
    l4[4] = l4.length >> 8;
    l4[5] = l4.length & 255;
  }
  l4.set(s.payload, l4Head);
  let ip: number[];
  const protoNum = tcp ? 6 : 17;
  if (s.v === 4) {
    const ipo = s.ipOptions ?? [];
    const ipLen = 20 + ipo.length;
    const total = ipLen + l4.length;
    const id = s.id ?? 0x1234;
    ip = [0x40 | (ipLen / 4), s.tos ?? 0, total >> 8, total & 255, id >> 8, id & 255, 0x40, 0, s.ttl ?? 64];
    ip.push(protoNum, 0, 0, ...(s.src ?? SRC4), ...(s.dst ?? DST4), ...ipo);
    const c = refChecksum(ip);
    ip[10] = c >> 8;
    ip[11] = c & 255;
  } else {
    const tc = s.tos ?? 0;
    ip = [0x60 | (tc >> 4), (tc & 15) << 4, 0, 0, l4.length >> 8, l4.length & 255, protoNum, s.ttl ?? 64];
    ip.push(...(s.src ?? SRC6), ...(s.dst ?? DST6));
  }
  const pkt = new Uint8Array(ip.length + l4.length);
  pkt.set(ip);
  pkt.set(l4, ip.length);
  const csumAt = ip.length + (tcp ? 16 : 6);
  let c = refChecksum(withPseudo(pkt));
  if (!tcp && c === 0) c = 0xffff;
  pkt[csumAt] = c >> 8;
  pkt[csumAt + 1] = c & 255;
  return pkt;
}

/** `n` bytes of a recognizable pattern starting at `from`. */
export function pattern(n: number, from = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (from + i * 7 + (i >> 8)) & 0xff;
  return b;
}
