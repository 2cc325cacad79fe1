/** A `HostNetwork` that changes nothing on the host and remembers what it was asked, for in-process roles. */
import type { HostNetwork } from "../../src/host/host_network.ts";
import { type Cidr, formatCidr } from "../../src/net/cidr.ts";
import { type HostNetworks, NO_HOST_NETWORKS } from "../../src/protocol/assigned_limits.ts";

/** Records interface configurations. */
export class RecordingNetwork implements HostNetwork {
  /** The last configuration per interface. */
  readonly interfaces = new Map<string, { address: string | null; address6: string | null; mtu: number }>();

  /** What `networksInUse` reports (a test sets a LAN that a server's assignment must not overlap). */
  hostNetworks: HostNetworks = NO_HOST_NETWORKS;

  networksInUse(): HostNetworks {
    return this.hostNetworks;
  }

  configureInterface(ifname: string, address: Cidr | null, address6: Cidr | null, mtu: number): void {
    this.interfaces.set(ifname, {
      address: address && formatCidr(address),
      address6: address6 && formatCidr(address6),
      mtu,
    });
  }
}
