/**
 * The few fields of an inner IP packet the tunnel reads: version, source and destination.
 * Addresses come back as numbers (IPv4, or the low 32 bits of IPv6) so lookups allocate nothing.
 */
import { readU32 } from "./bytes.ts";

/** IP version of the packet at `buf[off..off+len)`: 4, 6, or 0 when it is too short or neither. */
export function ipVersion(buf: Uint8Array, off: number, len: number): 0 | 4 | 6 {
  if (len < 20) return 0;
  const v = buf[off] >> 4;
  if (v === 4) return 4;
  if (v === 6 && len >= 40) return 6;
  return 0;
}

/** IPv4 destination as an unsigned 32-bit number. */
export function ipv4Destination(buf: Uint8Array, off: number): number {
  return readU32(buf, off + 16);
}

/** IPv4 source as an unsigned 32-bit number. */
export function ipv4Source(buf: Uint8Array, off: number): number {
  return readU32(buf, off + 12);
}

/** True when the 16 bytes at `buf[off + at]` equal `addr`. */
export function ipv6Equals(buf: Uint8Array, at: number, addr: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (buf[at + i] !== addr[i]) return false;
  return true;
}

/** Offset of the IPv6 source address in the header. */
export const IPV6_SOURCE = 8;
/** Offset of the IPv6 destination address in the header. */
export const IPV6_DESTINATION = 24;

/** An IPv4 address (4 bytes) as an unsigned 32-bit number. */
export function ipv4ToNumber(a: Uint8Array): number {
  return readU32(a, 0);
}

/** An unsigned 32-bit number as IPv4 bytes. */
export function numberToIpv4(n: number): Uint8Array {
  return new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

/** Low 32 bits of the IPv6 address at `buf[at..at+16)` (an address, or a field of a packet) as a number. */
export function ipv6Low32(buf: Uint8Array, at: number): number {
  return readU32(buf, at + 12);
}
