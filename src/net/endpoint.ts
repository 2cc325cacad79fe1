/**
 * UDP endpoints as 18 bytes: the 16-byte IPv6 address (IPv4 as v4-mapped `::ffff:a.b.c.d`) followed by
 * the port big-endian. The data path compares and copies these bytes; text is made only for logs/status.
 */
import { readU16 } from "./bytes.ts";
import { formatHostPort, parseHostPort } from "./host_port.ts";
import { formatIp, type IpBytes, parseIpv4, parseIpv6, withoutZone } from "./ip_address.ts";

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

/** The bytes of an IP literal (IPv4, IPv6, IPv6 with a `%zone`, which is dropped), or null. */
function literalBytes(address: string): IpBytes | null {
  return parseIpv4(address) ?? parseIpv6(withoutZone(address));
}

/** Writes `ip` (IPv4 as v4-mapped) and `port` into `out`. */
function fillEndpoint(out: Uint8Array, ip: IpBytes, port: number): Endpoint {
  if (ip.length === 4) {
    out.fill(0, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    out.set(ip, 12);
  } else {
    out.set(ip, 0);
  }
  out[16] = port >> 8;
  out[17] = port & 0xff;
  return out;
}

/**
 * Builds an endpoint from an IP literal (IPv4 or IPv6; a `%zone` is dropped) and a port 0..65535.
 * Writes into `into` when given, else into a new array. Throws `EndpointError`.
 */
export function endpointFromParts(address: string, port: number, into?: Uint8Array): Endpoint {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new EndpointError(`${address}:${port}`, "port must be an integer from 0 to 65535");
  }
  const ip = literalBytes(address);
  if (!ip) throw new EndpointError(address, "not an IPv4 or IPv6 address");
  return fillEndpoint(into ?? new Uint8Array(ENDPOINT_BYTES), ip, port);
}

/** True when the endpoint holds a v4-mapped (IPv4) address. */
export function endpointIsV4(e: Endpoint): boolean {
  for (let i = 0; i < 10; i++) if (e[i] !== 0) return false;
  return e[10] === 0xff && e[11] === 0xff;
}

/** The endpoint's port. */
export function endpointPort(e: Endpoint): number {
  return readU16(e, 16);
}

/** The address as text without brackets: "1.2.3.4" for IPv4, RFC 5952 form ("::1") for IPv6. */
export function endpointAddress(e: Endpoint): string {
  return endpointIsV4(e) ? formatIp(e.subarray(12, 16)) : formatIp(e.subarray(0, 16));
}

/** "1.2.3.4:51820" or "[::1]:51820", for logs and status only. */
export function endpointToString(e: Endpoint): string {
  return formatHostPort({ hostname: endpointAddress(e), port: endpointPort(e) });
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
    if (parseIpv4(fields[0])) return fields[0];
    if (v6 === null && literalBytes(fields[0])) v6 = fields[0];
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
  const hp = parseHostPort(text.trim());
  if (typeof hp === "string") throw new EndpointError(text, hp);
  const { hostname: host, port } = hp;
  const literal = literalBytes(host);
  if (literal) return fillEndpoint(new Uint8Array(ENDPOINT_BYTES), literal, port);
  if (host.toLowerCase() === "localhost") return endpointFromParts("127.0.0.1", port);
  const fromHosts = await lookupHostsFile(host, opts.hostsFile ?? "/etc/hosts");
  if (fromHosts !== null) return endpointFromParts(fromHosts, port);
  const problems: string[] = [];
  for (const type of ["A", "AAAA"] as const) {
    try {
      const found = await Deno.resolveDns(host, type);
      if (found.length > 0) return endpointFromParts(found[0], port);
      problems.push(`no ${type} record`);
    } catch (e) {
      problems.push(`${type}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new EndpointError(text, `cannot resolve ${JSON.stringify(host)} (${problems.join("; ")})`);
}
