/**
 * Kernel routes through the server's TUN for the networks behind clients (`routes` of [[server.peers]]).
 * Kept in step with the peer list on every reload; whatever is installed is removed on stop.
 */
import { addRoute, deleteRoute } from "../../ffi/interface.ts";
import { type Cidr, formatCidr } from "../net/cidr.ts";
import type { Cleanup } from "./cleanup.ts";
import { routeTo } from "./host_setup.ts";
import { log } from "../ops/log.ts";

/** The peer routes installed on one TUN device. */
export class PeerRoutes {
  readonly #ifname: string;
  /** Installed routes by their text. */
  readonly #installed = new Map<string, Cidr>();

  /** One undo step removes whatever is installed when the process stops. */
  constructor(ifname: string, cleanup: Cleanup) {
    this.#ifname = ifname;
    cleanup.add(`delete peer routes dev ${ifname}`, () => this.sync([]));
  }

  /** Add the routes in `wanted` that are missing and delete the installed ones no longer wanted. */
  sync(wanted: readonly Cidr[]): void {
    const next = new Map(wanted.map((c) => [formatCidr(c), c]));
    for (const [r, c] of this.#installed) {
      if (next.has(r)) continue;
      try {
        deleteRoute(routeTo(c), this.#ifname);
        log.info("route deleted", { route: r, dev: this.#ifname });
      } catch (e) {
        log.warn("cannot delete route", { route: r, dev: this.#ifname, error: (e as Error).message });
      }
      this.#installed.delete(r);
    }
    for (const [r, c] of next) {
      if (this.#installed.has(r)) continue;
      addRoute(routeTo(c), this.#ifname);
      this.#installed.set(r, c);
      log.info("route added", { route: r, dev: this.#ifname });
    }
  }
}
