/** `HOST:PORT` text as given by users: `1.2.3.4:51820`, `[::1]:51820`, `vpn.example.com:51820`. */

/** A host (name or literal, brackets removed) and a port. */
export interface HostPort {
  readonly hostname: string;
  readonly port: number;
}

/** Parse `HOST:PORT`; returns the reason as a string when it is not one. Port 0 is refused unless allowed. */
export function parseHostPort(text: string, allowPortZero = false): HostPort | string {
  let host: string, portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") return "no port after the brackets";
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!host.includes(":")) return "brackets are only for IPv6 addresses";
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return "no port given";
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) return "write an IPv6 address in brackets: [ADDRESS]:PORT";
  }
  if (host === "") return "the host is empty";
  if (!/^[A-Za-z0-9._:%-]+$/.test(host)) return `"${host}" is not a host name or address`;
  const port = parsePort(portText, allowPortZero);
  if (typeof port === "string") return port;
  return { hostname: host, port };
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
