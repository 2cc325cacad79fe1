/** `HOST:PORT` text as given by users: `1.2.3.4:51820`, `[::1]:51820`, `vpn.example.com:51820`. */
import { parseIpv4, parseIpv6, withoutZone } from "./ip_address.ts";

/** A host (name or literal, brackets removed) and a port. */
export interface HostPort {
  readonly hostname: string;
  readonly port: number;
}

/**
 * Parse `HOST:PORT`; returns the reason as a string when it is not one. HOST is an IPv4 address, an IPv6
 * address in brackets (a `%zone` is kept in `hostname`) or an RFC 1123 host name. Port 0 is refused unless
 * allowed.
 */
export function parseHostPort(text: string, allowPortZero = false): HostPort | string {
  let host: string, portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return "missing ']' after the IPv6 address";
    if (text[close + 1] !== ":") return "no port after the brackets";
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (host === "") return "missing host";
    if (!parseIpv6(withoutZone(host))) {
      return `${JSON.stringify(host)} is not an IPv6 address (brackets are only for IPv6)`;
    }
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return "no port given";
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) return "write an IPv6 address in brackets: [ADDRESS]:PORT";
    if (host === "") return "missing host";
    const problem = hostProblem(host);
    if (problem) return problem;
  }
  const port = parsePort(portText, allowPortZero);
  if (typeof port === "string") return port;
  return { hostname: host, port };
}

/** Why `host` (not bracketed) is neither an IPv4 address nor a host name, or null when it is one. */
function hostProblem(host: string): string | null {
  // All digits and dots is meant as IPv4: "10.0.0.01" must not go to DNS as a name.
  if (/^[0-9.]+$/.test(host)) {
    if (parseIpv4(host)) return null;
    return `${JSON.stringify(host)} is not an IPv4 address (four numbers 0 to 255, no leading zeros)`;
  }
  const labels = host.endsWith(".") ? host.slice(0, -1).split(".") : host.split(".");
  // RFC 1123 labels of letters, digits, '-' (and '_', seen in practice), not starting or ending with '-'.
  if (host.length <= 253 && labels.every((l) => /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(l))) {
    return null;
  }
  return `${JSON.stringify(host)} is neither an IP address nor a valid host name`;
}

/** Parse a UDP port; returns the reason as a string when out of range. */
export function parsePort(text: string, allowZero = false): number | string {
  if (!/^\d{1,5}$/.test(text)) return `port "${text}" is not a number from ${allowZero ? 0 : 1} to 65535`;
  const port = Number(text);
  if (port > 65535 || (!allowZero && port === 0)) {
    return `port ${port} is out of range ${allowZero ? 0 : 1}..65535`;
  }
  return port;
}

/** Format for logs: brackets around IPv6 literals. */
export function formatHostPort(hp: HostPort): string {
  return hp.hostname.includes(":") ? `[${hp.hostname}]:${hp.port}` : `${hp.hostname}:${hp.port}`;
}
