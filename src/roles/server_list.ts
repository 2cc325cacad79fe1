/**
 * The servers a client may use, tried in order (failover): which one is current, its resolved endpoint,
 * and looking a host name up again (at each retry, so a server that moved or a changed network is found).
 */
import { type Endpoint, endpointEquals, resolveEndpoint } from "../net/endpoint.ts";
import { formatHostPort, type HostPort } from "../net/host_port.ts";
import { parseIp } from "../net/ip_address.ts";
import { log } from "../ops/log.ts";

/** How a name becomes an endpoint (tests substitute a fake). */
export type Resolver = (text: string) => Promise<Endpoint>;

/** The configured servers and the one in use. */
export class ServerList {
  readonly #servers: readonly HostPort[];
  readonly #endpoints: Endpoint[];
  readonly #resolve: Resolver;
  #index = 0;

  private constructor(servers: readonly HostPort[], endpoints: Endpoint[], resolve: Resolver) {
    this.#servers = servers;
    this.#endpoints = endpoints;
    this.#resolve = resolve;
  }

  /** Resolve every server once (a name that cannot be resolved now fails the start: it is a typo or no network). */
  static async create(
    servers: readonly HostPort[],
    resolve: Resolver = resolveEndpoint,
  ): Promise<ServerList> {
    const endpoints = await Promise.all(servers.map((s) => resolve(formatHostPort(s))));
    return new ServerList(servers, endpoints, resolve);
  }

  /** How many servers there are. */
  get length(): number {
    return this.#servers.length;
  }

  /** The current server's endpoint. */
  get endpoint(): Endpoint {
    return this.#endpoints[this.#index];
  }

  /** The current server as configured ("vpn.example:51820"). */
  get name(): string {
    return formatHostPort(this.#servers[this.#index]);
  }

  /** Every endpoint known so far (for the kill switch). */
  get endpoints(): readonly Endpoint[] {
    return this.#endpoints;
  }

  /** Move to the next server (wrapping round to the first); returns its endpoint. */
  next(): Endpoint {
    this.#index = (this.#index + 1) % this.#servers.length;
    return this.endpoint;
  }

  /**
   * Look the current server's name up again; resolves to its new endpoint when it changed, else null.
   * A failed lookup keeps the last known endpoint (logged).
   */
  async refresh(): Promise<Endpoint | null> {
    const hp = this.#servers[this.#index];
    if (parseIp(hp.hostname.replace(/^\[|\]$/g, "")) !== null) return null; // a literal never changes
    let ep: Endpoint;
    try {
      ep = await this.#resolve(formatHostPort(hp));
    } catch (e) {
      log.warn("cannot resolve the server again; keeping its last address", {
        server: this.name,
        error: (e as Error).message,
      });
      return null;
    }
    if (endpointEquals(ep, this.#endpoints[this.#index])) return null;
    this.#endpoints[this.#index] = ep;
    return ep;
  }
}
