/** IPv4 and IPv6 addresses as bytes: parsing and formatting without any network call. */

/** An IP address: 4 bytes (IPv4) or 16 bytes (IPv6). */
export type IpBytes = Uint8Array;

/** An address or prefix given as text that does not parse; the message names the text. */
export class AddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AddressError";
  }
}

/** Parse a dotted-quad IPv4 address; null when it is not one. Leading zeros are refused (some read them as octal). */
export function parseIpv4(text: string): IpBytes | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === "0")) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

/**
 * Parse an IPv6 address (with `::` compression and an optional dotted IPv4 tail); null when it is not one.
 * A `%zone` is refused: strip it first with `withoutZone` where a scope id may be ignored.
 */
export function parseIpv6(text: string): IpBytes | null {
  if (text.length < 2 || text.length > 45) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0].split(":");
  const tail = halves.length === 2 ? (halves[1] === "" ? [] : halves[1].split(":")) : [];
  const words: number[] = [];
  const pushGroups = (groups: string[], isLast: boolean): boolean => {
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (isLast && i === groups.length - 1 && g.includes(".")) {
        const v4 = parseIpv4(g);
        if (!v4) return false;
        words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
        words.push(parseInt(g, 16));
      }
    }
    return true;
  };
  if (!pushGroups(head, halves.length === 1)) return null;
  const headLen = words.length;
  if (!pushGroups(tail, true)) return null;
  const tailWords = words.splice(headLen);
  if (halves.length === 1) {
    if (words.length !== 8) return null;
  } else {
    const fill = 8 - words.length - tailWords.length;
    if (fill < 1) return null;
    for (let i = 0; i < fill; i++) words.push(0);
  }
  words.push(...tailWords);
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i] >> 8;
    out[2 * i + 1] = words[i] & 0xff;
  }
  return out;
}

/** Parse an IPv4 or IPv6 address; null when it is neither. */
export function parseIp(text: string): IpBytes | null {
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

/** The message for text that `parseIp` refuses: the family it looks like, and the text. */
export function badIpMessage(text: string): string {
  return `not an ${text.includes(":") ? "IPv6" : "IPv4"} address: ${JSON.stringify(text)}`;
}

/** Parse an IPv4 or IPv6 address, or throw `AddressError` (see `badIpMessage`). */
export function requireIp(text: string): IpBytes {
  const ip = parseIp(text);
  if (!ip) throw new AddressError(badIpMessage(text));
  return ip;
}

/** `text` without a trailing `%zone` (an IPv6 scope id such as `fe80::1%eth0`), which bytes cannot hold. */
export function withoutZone(text: string): string {
  const pct = text.indexOf("%");
  return pct < 0 ? text : text.slice(0, pct);
}

/** Format address bytes as text: IPv6 in RFC 5952 form, v4-mapped ones as `::ffff:1.2.3.4` (its section 5). */
export function formatIp(bytes: IpBytes): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i] << 8) | bytes[i + 1]);
  if (words[5] === 0xffff && words.every((w, i) => i >= 5 || w === 0)) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  // Longest run of two or more zero words becomes "::", the first one on a tie.
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLen).join(":");
  return `${left}::${right}`;
}
