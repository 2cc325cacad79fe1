/**
 * The networks this host already uses, read when a client checks what its server assigns: interface
 * addresses (with their prefixes) and the main table's routes, IPv4 from /proc/net/route and IPv6 from
 * /proc/net/ipv6_route. Default routes, reject/unreachable routes and everything on the tunnel's own device
 * are left out: they are not a network an assignment could steal.
 */
import type { Cidr } from "../net/cidr.ts";
import { parseCidr } from "../net/cidr.ts";
import type { HostNet, HostNetworks } from "../protocol/assigned_limits.ts";

/** RTF_REJECT (route flags): an unreachable/prohibit route, which carries no traffic to a network. */
const RTF_REJECT = 0x0200;

/** The host's addresses and routes, except the default routes and those of `tun`. */
export function readHostNetworks(tun: string): HostNetworks {
  return { addresses: interfaceAddresses(tun), routes: [...routes4(tun), ...routes6(tun)] };
}

function interfaceAddresses(tun: string): HostNet[] {
  const out: HostNet[] = [];
  let list: Deno.NetworkInterfaceInfo[];
  try {
    list = Deno.networkInterfaces();
  } catch {
    return out; // no permission to list them: the routes still cover every connected network
  }
  for (const i of list) {
    if (i.name === tun) continue;
    const net = parseCidr(i.cidr.replace(/%[^/]*/, ""));
    if (net !== null) out.push({ net, dev: i.name });
  }
  return out;
}

function readLines(path: string): string[] {
  try {
    return Deno.readTextFileSync(path).split("\n");
  } catch {
    return [];
  }
}

/** /proc/net/route: Iface, Destination, Gateway, Flags, RefCnt, Use, Metric, Mask, ... (hex, host order). */
function routes4(tun: string): HostNet[] {
  const out: HostNet[] = [];
  for (const line of readLines("/proc/net/route").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[0] === tun) continue;
    const flags = parseInt(f[3], 16), mask = parseInt(f[7], 16);
    if (!(mask > 0) || (flags & RTF_REJECT) !== 0) continue;
    const net = fromLittleEndian(f[1], mask);
    if (net !== null) out.push({ net, dev: f[0] });
  }
  return out;
}

function fromLittleEndian(destHex: string, mask: number): Cidr | null {
  const d = parseInt(destHex, 16);
  if (!Number.isFinite(d)) return null;
  let prefix = 0;
  for (let m = mask >>> 0; m !== 0; m >>>= 1) prefix += m & 1;
  return parseCidr(`${d & 0xff}.${(d >>> 8) & 0xff}.${(d >>> 16) & 0xff}.${d >>> 24}/${prefix}`);
}

/** /proc/net/ipv6_route: dest, dest prefix, src, src prefix, next hop, metric, refcnt, use, flags, device. */
function routes6(tun: string): HostNet[] {
  const out: HostNet[] = [];
  for (const line of readLines("/proc/net/ipv6_route")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[9] === tun) continue;
    const prefix = parseInt(f[1], 16), flags = parseInt(f[8], 16);
    if (!(prefix > 0) || (flags & RTF_REJECT) !== 0 || !/^[0-9a-f]{32}$/.test(f[0])) continue;
    const net = parseCidr(`${f[0].match(/.{4}/g)!.join(":")}/${prefix}`);
    if (net !== null) out.push({ net, dev: f[9] });
  }
  return out;
}
