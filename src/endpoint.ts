/**
 * UDP endpoints as 18 bytes: the 16-byte IPv6 address (IPv4 as v4-mapped `::ffff:a.b.c.d`) followed by
 * the port big-endian. The data path compares and copies these bytes; text is made only for logs/status.
 */

/** Size of an endpoint in bytes: 16 address bytes + 2 port bytes (big-endian). */
export const ENDPOINT_BYTES = 18;

/** An endpoint: `ENDPOINT_BYTES` bytes, see the module comment. */
export type Endpoint = Uint8Array;

/** An address or `host:port` text that cannot be used as an endpoint; the message names the input. */
export class EndpointError extends Error {
  /** The text that was given. */
  readonly input: string;
  constructor(input: string, reason: string) {
    super(`invalid endpoint ${JSON.stringify(input)}: ${reason}`);
    this.name = "EndpointError";
    this.input = input;
  }
}

/** Parses dotted-quad IPv4 text into `out[at..at+4)`; false when it is not one. */
function parseIPv4Into(text: string, out: Uint8Array, at: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    // Leading zeros are refused: some resolvers read them as octal.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return false;
    const v = Number(p);
    if (v > 255) return false;
    out[at + i] = v;
  }
  return true;
}

/** Parses IPv6 text (optionally with a `%zone`, which is dropped) into 16 bytes; false when invalid. */
function parseIPv6Into(text: string, out: Uint8Array): boolean {
  const pct = text.indexOf("%");
  if (pct >= 0) text = text.slice(0, pct);
  if (text.length < 2 || !/^[0-9a-fA-F:.]+$/.test(text)) return false;
  const dbl = text.indexOf("::");
  if (dbl >= 0 && text.indexOf("::", dbl + 1) >= 0) return false;
  const words: number[] = [];
  const tail: number[] = [];
  const parseSide = (side: string, into: number[], last: boolean): boolean => {
    if (side === "") return true;
    const groups = side.split(":");
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (last && i === groups.length - 1 && g.includes(".")) {
        const v4 = new Uint8Array(4);
        if (!parseIPv4Into(g, v4, 0)) return false;
        into.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      into.push(parseInt(g, 16));
    }
    return true;
  };
  if (dbl >= 0) {
    if (!parseSide(text.slice(0, dbl), words, false)) return false;
    if (!parseSide(text.slice(dbl + 2), tail, true)) return false;
    if (words.length + tail.length > 7) return false;
    while (words.length + tail.length < 8) words.push(0);
    words.push(...tail);
  } else {
    if (!parseSide(text, words, true) || words.length !== 8) return false;
  }
  for (let i = 0; i < 8; i++) {
    out[i * 2] = words[i] >> 8;
    out[i * 2 + 1] = words[i] & 0xff;
  }
  return true;
}

/** Writes the v4-mapped prefix `::ffff:` into the first 12 bytes. */
function writeMappedPrefix(out: Uint8Array): void {
  for (let i = 0; i < 10; i++) out[i] = 0;
  out[10] = 0xff;
  out[11] = 0xff;
}

/** Parses an IP literal (IPv4, IPv6, IPv6 with `%zone`) into 16 bytes, or returns false. */
function parseAddressInto(address: string, out: Uint8Array): boolean {
  if (parseIPv4Into(address, out, 12)) {
    writeMappedPrefix(out);
    return true;
  }
  return parseIPv6Into(address, out);
}

/** True when `address` is an IPv4 or IPv6 literal. */
export function isIpLiteral(address: string): boolean {
  return parseAddressInto(address, new Uint8Array(16));
}

/**
 * Builds an endpoint from an IP literal (IPv4 or IPv6; a `%zone` is dropped) and a port 0..65535.
 * Writes into `into` when given (no allocation), else into a new array. Throws `EndpointError`.
 */
export function endpointFromParts(address: string, port: number, into?: Uint8Array): Endpoint {
  const out = into ?? new Uint8Array(ENDPOINT_BYTES);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new EndpointError(`${address}:${port}`, "port must be an integer from 0 to 65535");
  }
  if (!parseAddressInto(address, out)) {
    throw new EndpointError(address, "not an IPv4 or IPv6 address");
  }
  out[16] = port >> 8;
  out[17] = port & 0xff;
  return out;
}

/** True when the endpoint holds a v4-mapped (IPv4) address. */
export function endpointIsV4(e: Endpoint): boolean {
  for (let i = 0; i < 10; i++) if (e[i] !== 0) return false;
  return e[10] === 0xff && e[11] === 0xff;
}

/** The endpoint's port. */
export function endpointPort(e: Endpoint): number {
  return (e[16] << 8) | e[17];
}

/** The address as text without brackets: "1.2.3.4" for IPv4, RFC 5952 form ("::1") for IPv6. */
export function endpointAddress(e: Endpoint): string {
  if (endpointIsV4(e)) return `${e[12]}.${e[13]}.${e[14]}.${e[15]}`;
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((e[i * 2] << 8) | e[i * 2 + 1]);
  // Compress the longest run (>= 2) of zero groups, the first one on a tie (RFC 5952).
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [bestAt, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (bestAt < 0) return hex(w);
  return `${hex(w.slice(0, bestAt))}::${hex(w.slice(bestAt + bestLen))}`;
}

/** "1.2.3.4:51820" or "[::1]:51820", for logs and status only. */
export function endpointToString(e: Endpoint): string {
  const a = endpointAddress(e);
  return endpointIsV4(e) ? `${a}:${endpointPort(e)}` : `[${a}]:${endpointPort(e)}`;
}

/** Byte comparison of two endpoints (no allocation). */
export function endpointEquals(a: Endpoint, b: Endpoint): boolean {
  for (let i = 0; i < ENDPOINT_BYTES; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Copies `src` into `dst` (both at least `ENDPOINT_BYTES` long; no allocation). */
export function copyEndpoint(dst: Endpoint, src: Endpoint): void {
  for (let i = 0; i < ENDPOINT_BYTES; i++) dst[i] = src[i];
}

/** Splits "host:port" / "[v6]:port" into its parts; throws `EndpointError` naming what is wrong. */
function splitHostPort(text: string): { host: string; port: number } {
  let host: string, portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw new EndpointError(text, "missing ']' after the IPv6 address");
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest === "") throw new EndpointError(text, 'missing port (expected "[address]:port")');
    if (!rest.startsWith(":")) throw new EndpointError(text, "expected ':port' after ']'");
    portText = rest.slice(1);
    if (!parseIPv6Into(host, new Uint8Array(16))) {
      throw new EndpointError(text, `${JSON.stringify(host)} is not an IPv6 address`);
    }
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw new EndpointError(text, 'missing port (expected "host:port")');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) {
      throw new EndpointError(text, 'an IPv6 address needs brackets, e.g. "[::1]:51820"');
    }
  }
  if (host === "") throw new EndpointError(text, "missing host before ':port'");
  if (!/^[0-9]{1,5}$/.test(portText)) {
    throw new EndpointError(text, `port ${JSON.stringify(portText)} is not a number from 1 to 65535`);
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new EndpointError(text, `port ${port} is not from 1 to 65535`);
  return { host, port };
}

/** RFC 1123 host name: dot-separated labels of letters, digits, '-' (and '_'), not starting/ending with '-'. */
function isHostName(name: string): boolean {
  if (name.length > 253) return false;
  const labels = name.endsWith(".") ? name.slice(0, -1).split(".") : name.split(".");
  return labels.every((l) => /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(l));
}

/** Looks `name` up in /etc/hosts (IPv4 entries first); null when absent or the file is unreadable. */
async function lookupHostsFile(name: string, path: string): Promise<string | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return null;
  }
  const lower = name.toLowerCase().replace(/\.$/, "");
  let v6: string | null = null;
  for (const line of text.split("\n")) {
    const fields = line.replace(/#.*/, "").trim().split(/\s+/);
    if (fields.length < 2 || !fields.slice(1).some((f) => f.toLowerCase() === lower)) continue;
    if (parseIPv4Into(fields[0], new Uint8Array(4), 0)) return fields[0];
    if (v6 === null && parseIPv6Into(fields[0], new Uint8Array(16))) v6 = fields[0];
  }
  return v6;
}

/** Options for `resolveEndpoint` (tests substitute the hosts file). */
export interface ResolveOptions {
  /** Hosts file consulted before DNS; default "/etc/hosts". */
  hostsFile?: string;
}

/**
 * Parses "1.2.3.4:51820", "[2001:db8::1]:51820" or "name:51820" into an endpoint. IP literals and
 * "localhost" (127.0.0.1) need no lookup; other names are looked up in /etc/hosts, then with
 * `Deno.resolveDns` (A, then AAAA). Throws `EndpointError` naming the input and the reason.
 */
export async function resolveEndpoint(text: string, opts: ResolveOptions = {}): Promise<Endpoint> {
  const { host, port } = splitHostPort(text.trim());
  const out = new Uint8Array(ENDPOINT_BYTES);
  if (parseAddressInto(host, out)) return endpointFromParts(host, port, out);
  if (!isHostName(host)) {
    throw new EndpointError(text, `${JSON.stringify(host)} is neither an IP address nor a valid host name`);
  }
  if (host.toLowerCase() === "localhost") return endpointFromParts("127.0.0.1", port, out);
  const fromHosts = await lookupHostsFile(host, opts.hostsFile ?? "/etc/hosts");
  if (fromHosts !== null) return endpointFromParts(fromHosts, port, out);
  const problems: string[] = [];
  for (const type of ["A", "AAAA"] as const) {
    try {
      const found = await Deno.resolveDns(host, type);
      if (found.length > 0) return endpointFromParts(found[0], port, out);
      problems.push(`no ${type} record`);
    } catch (e) {
      problems.push(`${type}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new EndpointError(text, `cannot resolve ${JSON.stringify(host)} (${problems.join("; ")})`);
}
