/**
 * The routes of a full tunnel (`--default-route`): both halves of IPv4, and of IPv6 when the tunnel carries
 * it, through the TUN; IPv6 made unreachable when it does not (no leak around the tunnel); and a host route
 * to the server over the underlay default gateway, moved when that gateway or the server changes.
 * Each route registers its undo; routes left by a killed client are taken over (EEXIST) instead of failing.
 */
import {
  addRoute,
  defaultRouteV4,
  defaultRouteV6,
  deleteRoute,
  InterfaceError,
  setRejectRoute6,
} from "../../ffi/interface.ts";
import type { Cleanup } from "./cleanup.ts";
import { routeTo } from "./host_setup.ts";
import { requireCidr } from "../net/cidr.ts";
import { formatIp, requireIp } from "../net/ip_address.ts";
import { log } from "../ops/log.ts";

/** The two halves of each address space: more specific than a /0 default, so the old default stays. */
const HALVES_V4 = ["0.0.0.0/1", "128.0.0.0/1"];
const HALVES_V6 = ["::/1", "8000::/1"];

/** A default route of the underlay: where the host route to the server goes. */
export interface Gateway {
  gateway: string;
  ifname: string;
}

/** Where the host learns its default routes (tests substitute their own). */
export interface DefaultRoutes {
  v4(): Gateway | null;
  v6(): Gateway | null;
}

/** A kernel default route with its gateway as text (for logs and comparison). */
function asText(r: { gateway: Uint8Array; ifname: string } | null): Gateway | null {
  return r && { gateway: formatIp(r.gateway), ifname: r.ifname };
}

const KERNEL_ROUTES: DefaultRoutes = {
  v4: () => asText(defaultRouteV4()),
  v6: () => asText(defaultRouteV6()),
};

/** The route `ffi/interface.ts` takes for a network and optional gateway given as text. */
function spec(net: string, gateway?: string) {
  return routeTo(requireCidr(net), gateway === undefined ? undefined : requireIp(gateway));
}

/** An IPv6 unreachable route to `net` (text), added or deleted. */
function rejectRoute6(op: "add" | "delete", net: string): void {
  const c = requireCidr(net);
  setRejectRoute6(op, c.address, c.prefixLength);
}

function addTakingOver(add: () => void, what: string): void {
  try {
    add();
  } catch (e) {
    // A killed client left this very route behind: it is ours now (and the undo below removes it).
    if (!(e instanceof InterfaceError && e.code === "EEXIST")) throw e;
    log.info("route already present; taking it over", { route: what });
  }
}

function sameGateway(a: Gateway | null, b: Gateway | null): boolean {
  return a?.gateway === b?.gateway && a?.ifname === b?.ifname;
}

/** The full-tunnel routes of one client. */
export class FullTunnelRoutes {
  readonly #cleanup: Cleanup;
  readonly #tun: string;
  readonly #routes: DefaultRoutes;
  /** The server's underlay address (4 or 16 bytes) and the host route to it, if one is installed. */
  #server: Uint8Array | null = null;
  #hostRoute: { dst: string; via: Gateway } | null = null;
  #undoRegistered = false;

  constructor(cleanup: Cleanup, tun: string, routes: DefaultRoutes = KERNEL_ROUTES) {
    this.#cleanup = cleanup;
    this.#tun = tun;
    this.#routes = routes;
  }

  /**
   * Route everything through the TUN: IPv4 halves always; IPv6 halves through the TUN when `ipv6Inside`,
   * else as unreachable routes so IPv6 cannot leave outside the tunnel. Call once, after the TUN is up.
   */
  install(ipv6Inside: boolean): void {
    for (const half of HALVES_V4) this.#viaTun(half);
    // A killed client's unreachable halves would shadow the TUN routes: this client owns them now.
    if (ipv6Inside) removeStaleRejectRoutes();
    for (const half of HALVES_V6) {
      if (ipv6Inside) this.#viaTun(half);
      else this.#unreachable(half);
    }
  }

  /** Keep the server reachable over the underlay: (re)place the host route to `server` (4 or 16 bytes). */
  setServer(server: Uint8Array): void {
    this.#server = server;
    this.#placeHostRoute();
  }

  /** Once a tick: when the underlay default route changed (another network), move the host route onto it. */
  follow(): void {
    if (this.#server === null) return;
    const now = this.#gatewayFor(this.#server);
    if (sameGateway(now, this.#hostRoute?.via ?? null)) return;
    log.info("underlay default route changed; moving the route to the server", {
      from: this.#hostRoute ? `${this.#hostRoute.via.gateway} dev ${this.#hostRoute.via.ifname}` : undefined,
      to: now ? `${now.gateway} dev ${now.ifname}` : undefined,
    });
    this.#placeHostRoute();
  }

  #gatewayFor(server: Uint8Array): Gateway | null {
    return server.length === 4 ? this.#routes.v4() : this.#routes.v6();
  }

  #placeHostRoute(): void {
    const server = this.#server!;
    const dst = `${formatIp(server)}/${server.length === 4 ? 32 : 128}`;
    const via = this.#gatewayFor(server);
    const old = this.#hostRoute;
    if (old && old.dst === dst && sameGateway(old.via, via)) return;
    if (old) this.#removeHostRoute();
    if (!via) {
      log.warn("no default route towards the server; it must be reachable without one", { server: dst });
      return;
    }
    addTakingOver(() => addRoute(spec(dst, via.gateway), via.ifname), dst);
    this.#hostRoute = { dst, via };
    log.info("route added", { route: dst, dev: via.ifname, via: via.gateway });
    if (!this.#undoRegistered) {
      this.#undoRegistered = true;
      this.#cleanup.add("delete the route to the server", () => this.#removeHostRoute());
    }
  }

  #removeHostRoute(): void {
    const r = this.#hostRoute;
    if (!r) return;
    this.#hostRoute = null;
    try {
      deleteRoute(spec(r.dst, r.via.gateway), r.via.ifname);
    } catch (e) {
      // Gone with its interface (the network went away): nothing left to undo.
      if (!(e instanceof InterfaceError && (e.code === "ESRCH" || e.code === "ENODEV"))) throw e;
    }
  }

  #viaTun(net: string): void {
    addTakingOver(() => addRoute(spec(net), this.#tun), net);
    this.#cleanup.add(`delete route ${net} dev ${this.#tun}`, () => deleteRoute(spec(net), this.#tun));
    log.info("route added", { route: net, dev: this.#tun });
  }

  #unreachable(net: string): void {
    try {
      addTakingOver(() => rejectRoute6("add", net), net);
    } catch (e) {
      // IPv6 off on this host (no IPv6 routing table): there is nothing that could leak.
      if (e instanceof InterfaceError && (e.code === "EAFNOSUPPORT" || e.code === "EACCES")) {
        log.info("IPv6 unavailable on this host; nothing to block", { error: e.message });
        return;
      }
      throw e;
    }
    this.#cleanup.add(`delete unreachable route ${net}`, () => rejectRoute6("delete", net));
    log.info("IPv6 blocked outside the tunnel (the tunnel has no IPv6)", { route: net, type: "unreachable" });
  }
}

/** `vpn client --unblock`: delete the unreachable IPv6 routes a killed client left (absent ones are fine). */
export function removeStaleRejectRoutes(): string[] {
  const removed: string[] = [];
  for (const net of HALVES_V6) {
    try {
      rejectRoute6("delete", net);
      removed.push(`unreachable route ${net}`);
    } catch {
      // not there
    }
  }
  return removed;
}
