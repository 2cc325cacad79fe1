/**
 * Everything a client changes on its host beyond the TUN device, in one place: the kill switch (from the
 * start), the full-tunnel routes (once the tunnel is up), the routes it was asked for, and the pushed DNS;
 * and keeping them right when the server or the underlay network changes. Each change registers its undo.
 */
import type { Cleanup } from "./cleanup.ts";
import { type Cidr, networkOf } from "../net/cidr.ts";
import { DnsSettings, restoreStaleResolvConf } from "./dns.ts";
import { type Endpoint, endpointIsV4 } from "../net/endpoint.ts";
import { FullTunnelRoutes } from "./full_tunnel_routes.ts";
import { addTunnelRoute } from "./host_setup.ts";
import { DEFAULT_FWMARK, KillSwitch, thisOwner } from "./kill_switch.ts";
import type { PushedConfig } from "../protocol/wire.ts";

/** What the client asked for. */
export interface ClientHostOptions {
  readonly routes: readonly Cidr[];
  readonly defaultRoute: boolean;
  readonly killSwitch: boolean;
  readonly dns: boolean;
  /** Firewall mark of the tunnel's UDP socket (default 51820). */
  readonly fwmark?: number;
}

function serverAddress(ep: Endpoint): Uint8Array {
  return endpointIsV4(ep) ? ep.slice(12, 16) : ep.slice(0, 16);
}

/** A client's host changes. */
export class ClientHostChanges {
  readonly #o: ClientHostOptions;
  readonly #cleanup: Cleanup;
  readonly #tun: string;
  #full: FullTunnelRoutes | null = null;
  #dns: DnsSettings | null = null;
  #routed = false;

  constructor(o: ClientHostOptions, cleanup: Cleanup, tun: string) {
    this.#o = o;
    this.#cleanup = cleanup;
    this.#tun = tun;
  }

  /**
   * Before the first handshake: the kill switch, and putting back a resolv.conf a killed client left.
   * `markPort` is the tunnel socket's local port when the socket itself carries no mark (null when it does).
   */
  async start(markPort: number | null): Promise<void> {
    if (this.#o.killSwitch) {
      await KillSwitch.install(this.#cleanup, this.#tun, {
        mark: this.#o.fwmark ?? DEFAULT_FWMARK,
        markPort,
        owner: thisOwner(),
      });
    }
    if (this.#o.dns) {
      this.#dns = new DnsSettings(this.#cleanup, this.#tun, this.#o.defaultRoute);
      this.#dns.recover();
    } else {
      restoreStaleResolvConf(); // a killed client's pushed resolvers must not outlive it, --no-dns or not
    }
  }

  /** The tunnel is configured (first handshake): add the routes; `ipv6Inside` when it carries IPv6. */
  tunnelUp(server: Endpoint, ipv6Inside: boolean): void {
    if (this.#routed) return;
    this.#routed = true;
    for (const net of this.#o.routes) addTunnelRoute(this.#cleanup, networkOf(net), this.#tun);
    if (this.#o.defaultRoute) {
      this.#full = new FullTunnelRoutes(this.#cleanup, this.#tun);
      this.#full.setServer(serverAddress(server)); // first, so the server never routes into the tunnel
      this.#full.install(ipv6Inside);
    }
  }

  /** The client now talks to `server` (failover, a re-resolved name, or the server roamed). */
  serverChanged(server: Endpoint): Promise<void> {
    // The kill switch names no address, so only the routes follow.
    this.#full?.setServer(serverAddress(server));
    return Promise.resolve();
  }

  /** Once a tick: follow a changed underlay default route. */
  tick(): void {
    this.#full?.follow();
  }

  /** The server pushed its DNS settings. */
  async pushedConfig(c: PushedConfig): Promise<void> {
    await this.#dns?.apply(c);
  }

  /** True when pushed DNS settings are wanted (so the client asks the server for them). */
  get wantsConfig(): boolean {
    return this.#o.dns;
  }
}
