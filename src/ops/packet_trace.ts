/**
 * `--log-level trace`: one line per packet sealed or opened and per dropped datagram. The packet loops
 * call these only behind `if (traceEnabled)`, so with tracing off they cost one flag check per packet.
 * Lines name the inner protocol, addresses and ports, length and counter, never packet contents.
 */
import { formatIp } from "../net/ip_address.ts";
import { endpointToString } from "../net/endpoint.ts";
import { CONTROL_MAX_TYPE, DATA_HEADER_LENGTH } from "../protocol/constants.ts";
import { readCounter } from "../protocol/wire.ts";
import { log, type LogFields } from "./log.ts";

const PROTOCOLS: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6" };

/** Protocol, source and destination (with ports for TCP and UDP) of the inner packet at `pkt[0..len)`. */
export function describePacket(pkt: Uint8Array, len: number): LogFields {
  if (len === 0) return { proto: "keepalive" };
  if (pkt[0] <= CONTROL_MAX_TYPE) return { proto: "control", type: pkt[0] }; // in-tunnel control message
  const version = pkt[0] >> 4;
  let proto: number, src: string, dst: string, l4: number;
  if (version === 4 && len >= 20) {
    proto = pkt[9];
    src = formatIp(pkt.subarray(12, 16));
    dst = formatIp(pkt.subarray(16, 20));
    // Ports only in the first fragment (fragment offset 0).
    const fragOffset = ((pkt[6] & 0x1f) << 8) | pkt[7];
    l4 = fragOffset === 0 ? (pkt[0] & 0x0f) * 4 : -1;
  } else if (version === 6 && len >= 40) {
    proto = pkt[6]; // extension headers are shown as their own number
    src = formatIp(pkt.subarray(8, 24));
    dst = formatIp(pkt.subarray(24, 40));
    l4 = 40;
  } else {
    return { proto: "unknown", version };
  }
  const name = PROTOCOLS[proto] ?? String(proto);
  const fields: LogFields = { proto: name };
  if ((proto === 6 || proto === 17) && l4 >= 0 && len >= l4 + 4) {
    const sport = (pkt[l4] << 8) | pkt[l4 + 1], dport = (pkt[l4 + 2] << 8) | pkt[l4 + 3];
    fields.src = version === 6 ? `[${src}]:${sport}` : `${src}:${sport}`;
    fields.dst = version === 6 ? `[${dst}]:${dport}` : `${dst}:${dport}`;
  } else {
    fields.src = src;
    fields.dst = dst;
    if ((proto === 1 || proto === 58) && l4 >= 0 && len >= l4 + 1) fields.icmp_type = pkt[l4];
  }
  return fields;
}

/** A packet about to be sealed: `datagram` holds the data header, then `len` bytes of inner packet. */
export function traceSealed(peer: string, datagram: Uint8Array, len: number): void {
  const fields = describePacket(datagram.subarray(DATA_HEADER_LENGTH), len);
  log.trace("packet sealed", { dir: "out", peer, ...fields, len, counter: readCounter(datagram) });
}

/** A packet opened and accepted: `pkt` holds `len` bytes of inner packet. */
export function traceOpened(peer: string, pkt: Uint8Array, len: number, counter: number): void {
  log.trace("packet opened", { dir: "in", peer, ...describePacket(pkt, len), len, counter });
}

/** A datagram dropped on the way in. */
export function traceDropped(reason: string, from: Uint8Array, peer?: string): void {
  log.trace("datagram dropped", { reason, from: endpointToString(from), peer });
}
