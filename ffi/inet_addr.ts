/**
 * IPv4/IPv6 text <-> network-order bytes, as the kernel structs in `ffi/` need them.
 * Strict parsers: anything ambiguous (zone ids, leading zeros, out-of-range parts) is refused.
 */

/** A text address or prefix that does not parse. */
export class AddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AddressError";
  }
}

/** A parsed prefix: `bytes` has its host bits cleared. */
export interface Cidr {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
  prefixLength: number;
}

/** Parse dotted-quad IPv4 into 4 bytes, or throw `AddressError`. */
export function parseIpv4(text: string): Uint8Array {
  const parts = text.split(".");
  if (parts.length !== 4) throw new AddressError(`not an IPv4 address: "${text}"`);
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) {
      throw new AddressError(`not an IPv4 address: "${text}"`);
    }
    out[i] = Number(p);
  }
  return out;
}

/** Parse an IPv6 address (with `::` and an optional trailing dotted quad) into 16 bytes. */
export function parseIpv6(text: string): Uint8Array {
  const bad = () => new AddressError(`not an IPv6 address: "${text}"`);
  if (!text.includes(":") || text.includes("%")) throw bad();
  const halves = text.split("::");
  if (halves.length > 2) throw bad();
  const groups = (s: string): number[] => {
    if (s === "") return [];
    const out: number[] = [];
    const items = s.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (i === items.length - 1 && item.includes(".")) {
        const v4 = parseIpv4(item);
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(item)) {
        out.push(parseInt(item, 16));
      } else {
        throw bad();
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const total = head.length + tail.length;
  if (halves.length === 2 ? total > 7 : total !== 8) throw bad();
  const all = [...head, ...new Array(8 - total).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Parse either family; `family` tells which. */
export function parseIp(text: string): { family: 4 | 6; bytes: Uint8Array } {
  return text.includes(":") ? { family: 6, bytes: parseIpv6(text) } : { family: 4, bytes: parseIpv4(text) };
}

/** Format 4 network-order bytes as dotted quad. */
export function formatIpv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** Network-order mask bytes for a prefix length (4 or 16 bytes). */
export function prefixMask(prefixLength: number, size: 4 | 16): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    const bits = Math.max(0, Math.min(8, prefixLength - 8 * i));
    out[i] = (0xff00 >> bits) & 0xff;
  }
  return out;
}

/** Check a prefix length for a family, or throw `AddressError`. */
export function checkPrefixLength(prefixLength: number, family: 4 | 6): void {
  const max = family === 4 ? 32 : 128;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > max) {
    throw new AddressError(`prefix length ${prefixLength} is out of range for IPv${family} (0..${max})`);
  }
}

/**
 * Parse `addr/len` (or a bare address = host prefix). Host bits are cleared so that
 * "10.0.0.5/24" means 10.0.0.0/24, as routes need.
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const { family, bytes } = parseIp(addr);
  const max = family === 4 ? 32 : 128;
  let prefixLength = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(lenText)) throw new AddressError(`bad prefix length in "${text}"`);
    prefixLength = Number(lenText);
  }
  checkPrefixLength(prefixLength, family);
  const mask = prefixMask(prefixLength, family === 4 ? 4 : 16);
  for (let i = 0; i < bytes.length; i++) bytes[i] &= mask[i];
  return { family, bytes, prefixLength };
}
