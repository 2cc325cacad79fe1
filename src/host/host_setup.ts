/** Bringing the TUN device up with its addresses, and the routes a client adds; each step registers its undo. */
import {
  addRoute,
  deleteRoute,
  type RouteSpec,
  setInterfaceAddress,
  setInterfaceMtu,
  setInterfaceUp,
} from "../../ffi/interface.ts";
import { type Cidr, formatCidr } from "../net/cidr.ts";
import type { Cleanup } from "./cleanup.ts";
import type { HostNetwork } from "./host_network.ts";
import { readHostNetworks } from "./host_networks.ts";
import { formatIp } from "../net/ip_address.ts";
import { log } from "../ops/log.ts";

/** Address, MTU and up: what every TUN device needs before it carries packets. */
export function configureInterface(
  ifname: string,
  address: Cidr | null,
  address6: Cidr | null,
  mtu: number,
): void {
  setIpv6Enabled(ifname, address6 !== null);
  setInterfaceMtu(ifname, mtu);
  if (address) setInterfaceAddress(ifname, address.address, address.prefixLength);
  setInterfaceUp(ifname);
  // IPv6 addresses can only be added once the device is up (the kernel has no IPv6 state before).
  if (address6) setInterfaceAddress(ifname, address6.address, address6.prefixLength);
}

/** The route `ffi/interface.ts` takes for `net`, optionally via `gateway`. */
export function routeTo(net: Cidr, gateway?: Uint8Array): RouteSpec {
  return { destination: net.address, prefixLength: net.prefixLength, gateway };
}

/** Route `net` through `ifname`, undone by `cleanup`. */
export function addTunnelRoute(cleanup: Cleanup, net: Cidr, ifname: string, gateway?: Uint8Array): void {
  const text = formatCidr(net);
  const spec = routeTo(net, gateway);
  addRoute(spec, ifname);
  cleanup.add(`delete route ${text} dev ${ifname}`, () => deleteRoute(spec, ifname));
  log.info("route added", { route: text, dev: ifname, via: gateway && formatIp(gateway) });
}

/**
 * Without an IPv6 address in the tunnel, turn IPv6 off on the device so the kernel does not send
 * router solicitations and MLD reports into the tunnel (the other side would drop them as unroutable).
 * The setting lives and dies with the device. Hosts without IPv6 have no such file: nothing to do.
 */
function setIpv6Enabled(ifname: string, on: boolean): void {
  try {
    Deno.writeTextFileSync(`/proc/sys/net/ipv6/conf/${ifname}/disable_ipv6`, on ? "0" : "1");
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      log.warn("cannot set disable_ipv6", { dev: ifname, error: (e as Error).message });
    }
  }
}

/** The real host: the kernel's interfaces. */
export const systemNetwork: HostNetwork = { configureInterface, networksInUse: readHostNetworks };
