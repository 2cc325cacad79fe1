/**
 * With IPv6 inside the tunnel, a client's IPv6 address mirrors its IPv4 host part: host h of the IPv4
 * subnet gets the IPv6 prefix's network address with h in its low bits. The map is one-to-one only when
 * the IPv6 prefix has at least as many host bits as the IPv4 subnet; config loading enforces that.
 */
import { type Cidr, networkOf, prefixMask } from "./cidr.ts";

/** Host bits of a prefix (32 - prefix for IPv4, 128 - prefix for IPv6). */
export function hostBits(c: Cidr): number {
  return (c.family === 4 ? 32 : 128) - c.prefixLength;
}

/** The IPv6 address host `host` (the IPv4 host part, a number) gets in `net6`, written into `into`. */
export function mirrorAddress6(net6: Cidr, host: number, into: Uint8Array = new Uint8Array(16)): Uint8Array {
  into.set(networkOf(net6).address);
  for (let i = 0; i < 4; i++) into[15 - i] |= (host >>> (8 * i)) & 0xff;
  return into;
}

/**
 * The IPv4 host part whose mirror in `net6` is `address6`, or -1 when no host of a subnet with
 * `hostBits4` host bits maps there (outside the prefix, or a host part of more than `hostBits4` bits).
 */
export function mirroredHost(net6: Cidr, address6: Uint8Array, hostBits4: number): number {
  const net = networkOf(net6).address;
  const mask = prefixMask(net6.prefixLength, 16);
  for (let i = 0; i < 16; i++) if ((address6[i] & mask[i]) !== net[i]) return -1;
  for (let i = 0; i < 12; i++) if ((address6[i] & ~mask[i] & 0xff) !== 0) return -1;
  let host = 0;
  for (let i = 12; i < 16; i++) host = host * 256 + (address6[i] & ~mask[i] & 0xff);
  return host < 2 ** hostBits4 ? host : -1;
}
