/**
 * What a client accepts from a server's response. The response is authenticated, but the server (or a
 * holder of the shared key posing as one) is not trusted with the client's host: a /1 prefix would pull
 * foreign traffic into the tunnel, and an MTU above the client's packet slots cannot be carried.
 */
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
}

/** Default IPv4 prefix bounds: /8 is the largest private network; /30 is the smallest subnet with a client. */
export const DEFAULT_PREFIX4: PrefixBounds = { min: 8, max: 30 };
/** Default IPv6 prefix bounds: a /64 at most; /126 as the server's own limit. */
export const DEFAULT_PREFIX6: PrefixBounds = { min: 64, max: 126 };

/** Why `p` cannot be used under `limits` (one line naming the field and what is allowed), or null. */
export function refuseAssigned(p: AssignedParams, limits: AssignedLimits): string | null {
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
  return null;
}
