/**
 * What a client accepts from a server's response. The response is authenticated, but the server (or a
 * holder of the shared key posing as one) is not trusted with the client's host: a /1 prefix would pull
 * foreign traffic into the tunnel, a network overlapping the LAN would pull the router and resolver in, a
 * public one (8.8.8.7/8) would capture all of 8.0.0.0/8, and an MTU above the client's packet slots cannot
 * be carried. Pure: the host's networks are passed in.
 */
import { type Cidr, cidrContains, cidrsOverlap, formatCidr, networkOf, parseCidr } from "../net/cidr.ts";
import { formatIp } from "../net/ip_address.ts";
import type { AssignedParams } from "./wire.ts";

/** Inclusive prefix-length bounds, e.g. `{ min: 8, max: 30 }`. */
export interface PrefixBounds {
  readonly min: number;
  readonly max: number;
}

/** The bounds a client checks a response against. */
export interface AssignedLimits {
  readonly prefix4: PrefixBounds;
  readonly prefix6: PrefixBounds;
  readonly maxMtu: number;
  /** Networks accepted as assigned even when public or overlapping the host's (`accept_network`). */
  readonly acceptNetwork: readonly Cidr[];
}

/** A network the host already uses: an interface's address (with its prefix) or a route, and its device. */
export interface HostNet {
  readonly net: Cidr;
  readonly dev: string;
}

/** What the host uses when the check runs (the tunnel's own device and default routes left out by the caller). */
export interface HostNetworks {
  readonly addresses: readonly HostNet[];
  readonly routes: readonly HostNet[];
}

/** No host networks (a check of the response alone). */
export const NO_HOST_NETWORKS: HostNetworks = { addresses: [], routes: [] };

/** Default IPv4 prefix bounds: /8 is the largest private network; /30 is the smallest subnet with a client. */
export const DEFAULT_PREFIX4: PrefixBounds = { min: 8, max: 30 };
/** Default IPv6 prefix bounds: a /64 at most; /126 as the server's own limit. */
export const DEFAULT_PREFIX6: PrefixBounds = { min: 64, max: 126 };

/** Private networks an assigned one must lie in: RFC 1918, shared address space (RFC 6598), ULA (RFC 4193). */
export const PRIVATE_NETWORKS: readonly Cidr[] = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "fc00::/7",
]
  .map((t) => parseCidr(t)!);

/** True when network `inner` lies wholly inside `outer`. */
function within(inner: Cidr, outer: Cidr): boolean {
  return inner.family === outer.family && outer.prefixLength <= inner.prefixLength &&
    cidrContains(outer, inner.address);
}

/** Why `p` cannot be used under `limits` and on a host using `host` (one line naming the field), or null. */
export function refuseAssigned(
  p: AssignedParams,
  limits: AssignedLimits,
  host: HostNetworks = NO_HOST_NETWORKS,
): string | null {
  if (p.mtu > limits.maxMtu) return `mtu ${p.mtu} is above this client's maximum ${limits.maxMtu}`;
  const v4 = p.ipv4, v6 = p.ipv6, b4 = limits.prefix4, b6 = limits.prefix6;
  if (v4 && (v4.prefix < b4.min || v4.prefix > b4.max)) {
    return `address ${v4.address}/${v4.prefix}: prefix outside the accepted /${b4.min} to /${b4.max} ` +
      `(set accept_prefix4 to widen it)`;
  }
  if (v6 && (v6.prefix < b6.min || v6.prefix > b6.max)) {
    return `address6 ${v6.address}/${v6.prefix}: prefix outside the accepted /${b6.min} to /${b6.max} ` +
      `(set accept_prefix6 to widen it)`;
  }
  for (const [field, a] of [["address", v4], ["address6", v6]] as const) {
    if (!a) continue;
    const given = parseCidr(`${a.address}/${a.prefix}`);
    if (given === null) return `${field} ${a.address}/${a.prefix}: not an address`;
    const why = refuseNetwork(networkOf(given), limits.acceptNetwork, host);
    if (why !== null) {
      return `${field} ${a.address}/${a.prefix}: ${why} (add it to accept_network to accept it)`;
    }
  }
  return null;
}

/** Why the assigned network `net` is not acceptable on this host, or null. */
function refuseNetwork(net: Cidr, accept: readonly Cidr[], host: HostNetworks): string | null {
  if (accept.some((a) => within(net, a))) return null;
  if (!PRIVATE_NETWORKS.some((p) => within(net, p))) {
    const allowed = PRIVATE_NETWORKS.filter((p) => p.family === net.family).map(formatCidr).join(", ");
    return `${formatCidr(net)} is not a private network (allowed: ${allowed})`;
  }
  for (const a of host.addresses) {
    if (cidrsOverlap(net, a.net)) {
      return `${formatCidr(net)} overlaps the local address ${
        formatIp(a.net.address)
      }/${a.net.prefixLength} on ${a.dev}`;
    }
  }
  for (const r of host.routes) {
    if (cidrsOverlap(net, r.net)) {
      return `${formatCidr(net)} overlaps the route ${formatCidr(r.net)} dev ${r.dev}`;
    }
  }
  return null;
}
