/** Networks written as CIDR (`10.0.0.1/24`, `fd00::1/64`): an address plus a prefix length. */
import { formatIp, type IpBytes, parseIp } from "./ip_address.ts";

/** A parsed CIDR: the address as given (host bits kept) and its prefix length. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly address: IpBytes;
  readonly prefixLength: number;
}

/** Parse `ADDRESS/PREFIX`, or a bare address when `defaultPrefix` is given; null when malformed. */
export function parseCidr(text: string, defaultPrefix?: "host"): Cidr | null {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const address = parseIp(addrText);
  if (!address) return null;
  const family = address.length === 4 ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  let prefixLength: number;
  if (slash < 0) {
    if (defaultPrefix !== "host") return null;
    prefixLength = max;
  } else {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefixLength = Number(p);
    if (prefixLength > max) return null;
  }
  return { family, address, prefixLength };
}

/** `ADDRESS/PREFIX` as text. */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c.address)}/${c.prefixLength}`;
}

/** True when `address` lies inside the network of `net`. */
export function cidrContains(net: Cidr, address: IpBytes): boolean {
  if (address.length !== net.address.length) return false;
  let bits = net.prefixLength;
  for (let i = 0; i < address.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((address[i] & mask) !== (net.address[i] & mask)) return false;
  }
  return true;
}

/** The network address of `c` (host bits cleared). */
export function networkOf(c: Cidr): Cidr {
  const a = new Uint8Array(c.address);
  let bits = c.prefixLength;
  for (let i = 0; i < a.length; i++, bits -= 8) {
    if (bits >= 8) continue;
    a[i] &= bits <= 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
  return { family: c.family, address: a, prefixLength: c.prefixLength };
}

/** True when two addresses are byte-equal. */
export function ipEquals(a: IpBytes, b: IpBytes): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
