/** Text to the bytes `ffi/interface.ts` takes, and its byte answers back to text, for the tests. */
import type { InterfaceInfo, RouteSpec } from "../ffi/interface.ts";
import { requireCidr } from "../src/net/cidr.ts";
import { formatIp, requireIp } from "../src/net/ip_address.ts";

/** The bytes of an IP address literal. */
export const ip = requireIp;

/** A route to "ADDRESS[/PREFIX]" (a bare address is a host route), optionally via `gateway`. */
export function route(cidr: string, gateway?: string): RouteSpec {
  const c = requireCidr(cidr);
  return {
    destination: c.address,
    prefixLength: c.prefixLength,
    gateway: gateway ? requireIp(gateway) : undefined,
  };
}

/** `getInterfaceInfo` with its IPv4 address and netmask as text. */
export function infoText(
  info: InterfaceInfo,
): { index: number; mtu: number; up: boolean; ipv4?: { address: string; netmask: string } } {
  const { ipv4, ...rest } = info;
  return ipv4
    ? { ...rest, ipv4: { address: formatIp(ipv4.address), netmask: formatIp(ipv4.netmask) } }
    : rest;
}
