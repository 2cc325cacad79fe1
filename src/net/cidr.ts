/** Networks written as CIDR (`10.0.0.1/24`, `fd00::1/64`): an address plus a prefix length. */
import { AddressError, badIpMessage, formatIp, type IpBytes, parseIp } from "./ip_address.ts";

/** A parsed CIDR: the address as given (host bits kept) and its prefix length. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly address: IpBytes;
  readonly prefixLength: number;
}

/** Why `prefixLength` is not one for `family`, or null when it is. */
function prefixLengthProblem(prefixLength: number, family: 4 | 6): string | null {
  const max = family === 4 ? 32 : 128;
  if (Number.isInteger(prefixLength) && prefixLength >= 0 && prefixLength <= max) return null;
  return `prefix length ${prefixLength} is out of range for IPv${family} (0..${max})`;
}

/** Check a prefix length for a family, or throw `AddressError` naming the allowed range. */
export function checkPrefixLength(prefixLength: number, family: 4 | 6): void {
  const problem = prefixLengthProblem(prefixLength, family);
  if (problem) throw new AddressError(problem);
}

/** `parseCidr`, but returns the reason as a string when `text` is not a CIDR. */
function cidrOrReason(text: string, defaultPrefix?: "host"): Cidr | string {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const address = parseIp(addrText);
  if (!address) return badIpMessage(addrText);
  const family = address.length === 4 ? 4 : 6;
  let prefixLength = family === 4 ? 32 : 128;
  if (slash < 0) {
    if (defaultPrefix !== "host") {
      return `no prefix length in ${JSON.stringify(text)} (expected ADDRESS/PREFIX)`;
    }
  } else {
    const p = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return `bad prefix length in ${JSON.stringify(text)}`;
    prefixLength = Number(p);
    const problem = prefixLengthProblem(prefixLength, family);
    if (problem) return problem;
  }
  return { family, address, prefixLength };
}

/** Parse `ADDRESS/PREFIX`, or a bare address (host prefix) when `defaultPrefix` is "host"; null when malformed. */
export function parseCidr(text: string, defaultPrefix?: "host"): Cidr | null {
  const c = cidrOrReason(text, defaultPrefix);
  return typeof c === "string" ? null : c;
}

/** Parse `ADDRESS[/PREFIX]` (a bare address is a host prefix), or throw `AddressError` saying what is wrong. */
export function requireCidr(text: string): Cidr {
  const c = cidrOrReason(text, "host");
  if (typeof c === "string") throw new AddressError(c);
  return c;
}

/** `ADDRESS/PREFIX` as text. */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c.address)}/${c.prefixLength}`;
}

/** The mask byte at byte `i` of a `prefixLength`-bit prefix. */
function maskByte(prefixLength: number, i: number): number {
  const bits = prefixLength - 8 * i;
  return bits >= 8 ? 0xff : bits <= 0 ? 0 : (0xff00 >> bits) & 0xff;
}

/** Network-order netmask bytes for a prefix length (4 bytes for IPv4, 16 for IPv6). */
export function prefixMask(prefixLength: number, size: 4 | 16): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = maskByte(prefixLength, i);
  return out;
}

/** True when `address` lies inside the network of `net`. */
export function cidrContains(net: Cidr, address: IpBytes): boolean {
  if (address.length !== net.address.length) return false;
  for (let i = 0; i < address.length && 8 * i < net.prefixLength; i++) {
    const mask = maskByte(net.prefixLength, i);
    if ((address[i] & mask) !== (net.address[i] & mask)) return false;
  }
  return true;
}

/** The network address of `c` (host bits cleared). */
export function networkOf(c: Cidr): Cidr {
  const a = new Uint8Array(c.address);
  for (let i = 0; i < a.length; i++) a[i] &= maskByte(c.prefixLength, i);
  return { family: c.family, address: a, prefixLength: c.prefixLength };
}

/** True when two addresses are byte-equal. */
export function ipEquals(a: IpBytes, b: IpBytes): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when two networks share an address (one contains the other's network). */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && (cidrContains(a, b.address) || cidrContains(b, a.address));
}
