/**
 * The change a role makes on its own TUN device (addresses, MTU, up), as a contract so an in-process role in
 * a test changes nothing on the host. `host_setup.ts` holds the real one. (The client's routes, kill switch
 * and DNS go through `ClientHostChanges`, which the client is given too.)
 */
import type { Cidr } from "../net/cidr.ts";
import type { HostNetworks } from "../protocol/assigned_limits.ts";

/** Interface changes; they live and die with the device, so they register no undo. */
export interface HostNetwork {
  /** Give `ifname` its addresses and MTU and bring it up. */
  configureInterface(ifname: string, address: Cidr | null, address6: Cidr | null, mtu: number): void;
  /** The networks the host uses now (addresses and routes), except default routes and those of `ifname`. */
  networksInUse(ifname: string): HostNetworks;
}
