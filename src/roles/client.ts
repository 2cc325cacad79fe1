/**
 * `vpn client`: handshakes with the server, configures the TUN device with the address it is given,
 * keeps the session fresh (rekey, keepalives, retries with backoff). The server's address comes from the
 * configuration only (as written or as its name resolves): a datagram from anywhere else, even one that
 * authenticates, is dropped as `wrong_source` and never moves the endpoint, a route or a kill-switch exception.
 */
import { type Cidr, formatCidr, parseCidr } from "../net/cidr.ts";
import type { ClientOptions } from "../config/config.ts";
import {
  COOKIE_MAX_AGE_MS,
  CTRL_CONFIG,
  CTRL_CONFIG_REQUEST,
  MAX_MTU,
  MSG_COOKIE_REPLY,
  MSG_RESPONSE,
  REKEY_TIMEOUT_MS,
} from "../protocol/constants.ts";
import {
  type Endpoint,
  ENDPOINT_BYTES,
  endpointEquals,
  endpointIsV4,
  endpointToString,
} from "../net/endpoint.ts";
import { ipv4Source, IPV6_SOURCE, ipVersion } from "../net/ip_packet.ts";
import { RouteTable } from "../dataplane/route_table.ts";
import {
  createInitiation,
  InitiationClock,
  type PendingInitiation,
  randomIndex,
} from "../protocol/handshake.ts";
import { ClientHostChanges } from "../host/client_host_changes.ts";
import { ServerList } from "./server_list.ts";
import { formatHostPort } from "../net/host_port.ts";
import { formatIp } from "../net/ip_address.ts";
import { loadKey } from "../config/key_file.ts";
import { deriveHandshakeKey, type HandshakeKey } from "../protocol/keys.ts";
import { debugEnabled, log } from "../ops/log.ts";
import { clientSettingsNeedingRestart } from "../config/settings_diff.ts";
import { applyLogSettings, reportNotApplied } from "./reload_report.ts";
import { Peer, peerStatus } from "../dataplane/peer.ts";
import { startRuntime } from "./runtime.ts";
import { type Role, type RolePieces, roleStatus } from "./role.ts";
import { Session } from "../protocol/session.ts";
import { dropCategory, type DropCounts, type StatusReport } from "../ops/status_report.ts";
import { Tunnel, type TunnelHost } from "../dataplane/tunnel.ts";
import { failoverDue, initiatorAction, nextRetryMs } from "../protocol/timers.ts";
import { type AssignedParams, decodeConfigMessage } from "../protocol/wire.ts";
import { setIpv4Forwarding } from "../host/routing.ts";
import { hookEnv, runHooks } from "../host/hooks.ts";
import { type AssignedLimits, refuseAssigned } from "../protocol/assigned_limits.ts";
import type { SipKey } from "../protocol/siphash.ts";

/** Config requests sent (one a second) before giving up on a server that does not answer them. */
const MAX_CONFIG_REQUESTS = 30;
/** The config request control message (one byte). */
const CONFIG_REQUEST = new Uint8Array([CTRL_CONFIG_REQUEST]);

/** The client's control side: one peer (the server); it owns the packet loops. */
export class Client implements TunnelHost, Role {
  readonly #o: ClientOptions;
  readonly #pieces: RolePieces;
  readonly #tunnel: Tunnel;
  readonly #key: HandshakeKey;
  readonly #limits: AssignedLimits;
  readonly #server: Peer;
  readonly #clock = new InitiationClock();
  readonly #byIndex = new Map<number, Peer>();
  #pending: PendingInitiation | null = null;
  /** Where the pending initiation went: its response (or cookie reply) must come from there. */
  readonly #pendingTo = new Uint8Array(ENDPOINT_BYTES);
  /**
   * Sources an inner packet from the server may have without `--default-route`: the assigned networks and
   * the configured `routes` (the server is not trusted to inject packets from elsewhere).
   */
  #sources = new RouteTable<true>();
  /** The pending initiation whose response was refused: its copies are dropped without a log line each. */
  #refused: PendingInitiation | null = null;
  /** An initiation is being built (async); no second one may start meanwhile, or the two race. */
  #initiating = false;
  #pendingSentAt = 0;
  #attempts = 0;
  #retryMs = REKEY_TIMEOUT_MS;
  /** What the server assigned; asked for again on every handshake so the address survives restarts. */
  #assigned: AssignedParams | null = null;
  #keepaliveMs = 0;
  readonly #servers: ServerList;
  readonly #hostChanges: ClientHostChanges;
  /** When the first unanswered initiation to the current server went out (the failover clock). */
  #tryingSince = 0;
  /** The current server answered the config request (or none is wanted). */
  #configured = false;
  #hooked = false;
  #configRequests = 0;
  /** The server's last cookie (it asked for one under load) and when it came; MAC2 of later initiations. */
  #cookie: SipKey | null = null;
  #cookieAt = 0;
  /** The pending initiation was already resent with a cookie (at most once, so a replayed reply cannot loop). */
  #resentWithCookie = false;

  constructor(
    o: ClientOptions,
    pieces: RolePieces,
    key: HandshakeKey,
    servers: ServerList,
    changes: ClientHostChanges,
  ) {
    this.#o = o;
    this.#pieces = pieces;
    this.#tunnel = new Tunnel(pieces.tun, pieces.udp, this, MAX_MTU, pieces.now);
    this.#key = key;
    this.#servers = servers;
    this.#hostChanges = changes;
    this.#configured = !changes.wantsConfig;
    this.#limits = {
      prefix4: o.acceptPrefix4,
      prefix6: o.acceptPrefix6,
      maxMtu: MAX_MTU,
      acceptNetwork: o.acceptNetwork,
    };
    this.#server = new Peer("server");
    this.#server.endpoint.set(servers.endpoint);
    this.#server.hasEndpoint = true;
    this.#server.fixedEndpoint = true;
    this.#keepaliveMs = (o.keepalive ?? 0) * 1000;
  }

  // ---------------------------------------------------------------- TunnelHost

  peerForPacket(): Peer {
    return this.#server;
  }

  peerForIndex(index: number): Peer | undefined {
    return this.#byIndex.get(index);
  }

  readonly sourceDrop: keyof DropCounts = "source";

  sourceAllowed(_peer: Peer, pkt: Uint8Array, len: number): boolean {
    if (this.#o.defaultRoute) return true; // everything is routed through the server: any source
    const v = ipVersion(pkt, 0, len);
    if (v === 4) return this.#sources.size4 > 0 && this.#sources.lookup4(ipv4Source(pkt, 0)) === true;
    if (v === 6) return this.#sources.size6 > 0 && this.#sources.lookup6(pkt, IPV6_SOURCE) === true;
    return false;
  }

  noSession(): void {
    if (this.#pending === null) this.#initiate("no session");
  }

  handshake(datagram: Uint8Array, from: Uint8Array): void {
    const pending = this.#pending;
    if (pending !== null && !endpointEquals(from, this.#pendingTo)) {
      // Only the address the initiation went to may answer it (an on-path relay must not complete it).
      this.#tunnel.countDrop("wrong_source");
      this.#pieces.handshakes.refuse("wrong_source");
      return;
    }
    if (datagram[0] === MSG_COOKIE_REPLY && pending !== null && pending !== this.#refused) {
      this.#cookieReply(pending, datagram);
      return;
    }
    if (datagram[0] !== MSG_RESPONSE || pending === null || pending === this.#refused) {
      this.#tunnel.countDrop("malformed");
      this.#pieces.handshakes.refuse(pending === null ? "unexpected" : "malformed");
      return;
    }
    // consumeResponse copies the datagram before its first await; the endpoint is copied here.
    this.#tunnel.asyncWork++;
    this.#complete(pending, datagram, from.slice())
      .catch((e) => log.error("handshake failed", { error: (e as Error).message }))
      .finally(() => this.#tunnel.asyncWork--);
  }

  authenticated(): void {}

  /** Never called: the server's endpoint is fixed (`Peer.fixedEndpoint`), the client does not follow moves. */
  roamed(): void {}

  control(_peer: Peer, pkt: Uint8Array, len: number): void {
    if (pkt[0] !== CTRL_CONFIG || this.#configured) return;
    const c = decodeConfigMessage(pkt, len);
    if (typeof c === "string") {
      this.#tunnel.countDrop("malformed");
      return;
    }
    this.#configured = true;
    this.#hostChanges.pushedConfig(c).catch((e) =>
      log.error("cannot apply the pushed DNS settings", { error: (e as Error).message })
    );
  }

  // ---------------------------------------------------------------- handshakes

  /** The server is under load: take its cookie and resend the pending initiation with MAC2 at once. */
  #cookieReply(pending: PendingInitiation, datagram: Uint8Array): void {
    const r = pending.consumeCookieReply(datagram);
    if (!r.ok) {
      this.#tunnel.countDrop(dropCategory(r.reason));
      this.#pieces.handshakes.refuse(r.reason);
      return;
    }
    this.#cookie = r.value;
    this.#cookieAt = this.#pieces.now();
    if (this.#resentWithCookie) return;
    this.#resentWithCookie = true;
    if (debugEnabled) log.debug("cookie reply; resending the initiation", {});
    const sent = this.#pieces.udp.sendOne(pending.message, pending.message.length, this.#pendingTo);
    if (sent instanceof Promise) sent.catch((e) => log.error("cannot send handshake", { error: e.message }));
  }

  #initiate(why: string): void {
    if (this.#initiating) return;
    this.#initiating = true;
    const index = this.#freshIndex();
    const requested = this.#assigned?.ipv4?.address ??
      (this.#o.address ? formatIp(this.#o.address.address) : null);
    const now = this.#pieces.now();
    if (this.#attempts++ === 0) this.#tryingSince = now;
    this.#pendingSentAt = now;
    if (debugEnabled) log.debug("handshake initiated", { reason: why, attempt: this.#attempts });
    const cookie = this.#cookie !== null && this.#pieces.now() - this.#cookieAt < COOKIE_MAX_AGE_MS
      ? this.#cookie
      : null;
    this.#tunnel.asyncWork++;
    createInitiation(this.#key, {
      senderIndex: index,
      requestedAddress: requested,
      timestamp: this.#clock.next(),
      cookie,
    })
      .then(async (p) => {
        if (this.#pending) this.#byIndex.delete(this.#pending.senderIndex);
        this.#pending = p;
        this.#resentWithCookie = false;
        this.#byIndex.set(index, this.#server);
        this.#pendingTo.set(this.#server.endpoint);
        await this.#pieces.udp.sendOne(p.message, p.message.length, this.#pendingTo);
      })
      .catch((e) => log.error("cannot send handshake", { error: (e as Error).message }))
      .finally(() => {
        this.#initiating = false;
        this.#tunnel.asyncWork--;
      });
  }

  #freshIndex(): number {
    let index = randomIndex();
    while (this.#byIndex.has(index)) index = randomIndex();
    return index;
  }

  async #complete(pending: PendingInitiation, datagram: Uint8Array, from: Uint8Array): Promise<void> {
    const r = await pending.consumeResponse(datagram);
    if (!r.ok) {
      this.#tunnel.countDrop(dropCategory(r.reason));
      this.#pieces.handshakes.refuse(r.reason);
      if (debugEnabled) log.debug("response dropped", { reason: r.reason, from: endpointToString(from) });
      return;
    }
    if (this.#pending !== pending) return; // a newer initiation replaced it while we worked
    const hs = r.value;
    // The host's networks as they are now (a LAN joined since the start counts too).
    const host = this.#pieces.network.networksInUse(this.#pieces.tun.name);
    const refused = refuseAssigned(hs.params, this.#limits, host);
    if (refused !== null) {
      this.#refused = pending;
      // Authenticated but unusable: keep the initiation pending, so tick() retries with backoff.
      log.error("server response refused; retrying handshake", {
        server: endpointToString(from),
        reason: refused,
      });
      return;
    }
    this.#pending = null;
    const now = this.#pieces.now();
    const session = await Session.create(this.#pieces.aead, { ...hs, isInitiator: true, now });
    const server = this.#server;
    for (const s of server.sessions.installInitiated(session, now)) this.#byIndex.delete(s.localIndex);
    this.#byIndex.set(session.localIndex, server);
    server.endpoint.set(from);
    server.lastHandshakeWallMs = Date.now();
    this.#pieces.handshakes.completed++;
    server.unansweredSince = -1;
    const first = !server.up;
    server.up = true;
    this.#attempts = 0;
    this.#retryMs = REKEY_TIMEOUT_MS;
    this.#apply(hs.params);
    // Confirms the new session to the server, which holds it back until a packet arrives on it; the config
    // request does the same and asks for the server's DNS settings.
    if (this.#configured) await this.#tunnel.sendKeepalive(server);
    else await this.#tunnel.sendControl(server, CONFIG_REQUEST);
    if (first) {
      log.info("handshake complete", {
        server: endpointToString(from),
        address: hs.params.ipv4 ? `${hs.params.ipv4.address}/${hs.params.ipv4.prefix}` : undefined,
        address6: hs.params.ipv6 ? `${hs.params.ipv6.address}/${hs.params.ipv6.prefix}` : undefined,
        mtu: hs.params.mtu,
      });
    } else {
      log.debug("rekeyed", { server: endpointToString(from) });
    }
  }

  /** Configure the TUN device the first time (or again when the server assigns something else). */
  #apply(p: AssignedParams): void {
    const old = this.#assigned;
    if (old && JSON.stringify(old) === JSON.stringify(p)) return;
    if (old) log.warn("server assigned a different address; reconfiguring", {});
    this.#assigned = p;
    const cidr = (a: { address: string; prefix: number } | null): Cidr | null =>
      a ? parseCidr(`${a.address}/${a.prefix}`) : null;
    const sources = new RouteTable<true>();
    for (const net of [cidr(p.ipv4), cidr(p.ipv6), ...this.#o.routes]) {
      if (net !== null) sources.insert(net, true);
    }
    this.#sources = sources;
    this.#configureInterface(cidr(p.ipv4), cidr(p.ipv6), p.mtu);
    if (this.#o.keepalive === undefined) this.#keepaliveMs = p.keepaliveSeconds * 1000;
    this.#hostChanges.tunnelUp(this.#server.endpoint, p.ipv6 !== null);
    if (this.#hooked) return;
    this.#hooked = true;
    this.#hooks(cidr(p.ipv4), cidr(p.ipv6));
  }

  /**
   * post_up once the tunnel has its address (the first handshake); pre_down is registered first, so it runs
   * on every stop after that, also when post_up failed half-way. A failing post_up stops the client the way
   * a fatal error does: everything is undone and the exit code is 1.
   */
  #hooks(address: Cidr | null, address6: Cidr | null): void {
    const o = this.#o;
    if (o.postUp.length === 0 && o.preDown.length === 0) return;
    const env = { ...hookEnv("client", this.#pieces.tun.name, address, address6) };
    env.VPN_SERVER = endpointToString(this.#server.endpoint);
    this.#pieces.cleanup.add("run pre_down", () => runHooks("pre_down", o.preDown, env));
    runHooks("post_up", o.postUp, env).catch((e) => globalThis.reportError(e));
  }

  /** Move on to the next server (failover): a fresh handshake there, routes and kill switch following. */
  #failover(why: string): void {
    const from = this.#servers.name;
    const ep = this.#servers.next();
    log.warn("server not answering; moving to the next server", {
      from,
      to: this.#servers.name,
      reason: why,
    });
    this.#useEndpoint(ep);
    this.#server.up = false; // a new server: its handshake is logged as a first one, with what it assigns
    this.#configured = !this.#hostChanges.wantsConfig;
    this.#configRequests = 0;
    this.#attempts = 0;
    this.#retryMs = REKEY_TIMEOUT_MS;
    this.#initiate("failover");
  }

  #useEndpoint(ep: Endpoint): void {
    this.#server.endpoint.set(ep);
    this.#hostChanges.serverChanged(ep).catch((e) =>
      log.error("cannot follow the server change", { error: (e as Error).message })
    );
  }

  /** Retry the handshake, looking the server's name up again first (it may have moved). */
  #retry(): void {
    this.#servers.refresh().then((ep) => {
      if (ep === null) return;
      log.info("server name resolves to a new address", {
        server: this.#servers.name,
        endpoint: endpointToString(ep),
      });
      this.#useEndpoint(ep);
    }).finally(() => this.#initiate("retry"));
  }

  #configureInterface(address: Cidr | null, address6: Cidr | null, mtu: number): void {
    this.#pieces.network.configureInterface(this.#pieces.tun.name, address, address6, mtu);
    this.#tunnel.setMtu(mtu);
  }

  // ---------------------------------------------------------------- running, timers and status

  configure(): void {
    this.#configureInterface(null, null, MAX_MTU);
  }

  started(): void {
    const o = this.#o;
    log.info("client started", {
      server: endpointToString(this.#server.endpoint),
      servers: this.#servers.length > 1 ? o.servers.map(formatHostPort).join(",") : undefined,
      tun: this.#pieces.tun.name,
      kill_switch: o.killSwitch || undefined,
      routes: o.routes.map(formatCidr).join(",") || undefined,
      default_route: o.defaultRoute || undefined,
    });
    this.noSession();
  }

  run(): Promise<void> {
    return this.#tunnel.run();
  }

  stop(): void {
    this.#tunnel.stop();
  }

  /** Once a second: retries, rekeys, keepalives, and noticing a server that stopped answering. */
  tick(): void {
    const now = this.#pieces.now();
    const server = this.#server;
    for (const s of server.sessions.expire(now)) this.#byIndex.delete(s.localIndex);
    const session = server.sessions.sendSession(now);
    this.#hostChanges.tick();
    if (session !== null && !this.#configured) {
      if (++this.#configRequests <= MAX_CONFIG_REQUESTS) {
        this.#tunnel.sendControl(server, CONFIG_REQUEST).catch(() => {});
      } else {
        this.#configured = true;
        log.warn("the server did not send its DNS settings; keeping the host's", {
          server: this.#servers.name,
        });
      }
    }
    const timers = {
      pending: this.#pending !== null,
      pendingSentAt: this.#pendingSentAt,
      retryMs: this.#retryMs,
      keepaliveMs: this.#keepaliveMs,
    };
    switch (initiatorAction(timers, server, session, now)) {
      case "retry":
        if (this.#servers.length > 1 && failoverDue(this.#tryingSince, now)) {
          this.#failover("no handshake response");
          return;
        }
        log.info("server not answering; retrying handshake", {
          server: endpointToString(server.endpoint),
          attempt: this.#attempts + 1,
          waited_s: this.#retryMs / 1000,
        });
        this.#retryMs = nextRetryMs(this.#retryMs);
        this.#retry();
        return;
      case "no-session":
        if (server.up) {
          server.up = false;
          log.info("session expired", { server: endpointToString(server.endpoint) });
        }
        this.#initiate("no session");
        return;
      case "rekey":
        this.#initiate("rekey");
        return;
      case "unanswered":
        server.unansweredSince = -1;
        if (this.#servers.length > 1) {
          this.#failover("data unanswered");
          return;
        }
        log.warn("server stopped answering; handshaking again", {
          server: endpointToString(server.endpoint),
        });
        this.#retry();
        return;
      case "keepalive":
        this.#tunnel.sendKeepalive(server).catch(() => {});
        return;
      case "none":
        return;
    }
  }

  /** The snapshot `vpn status` shows. */
  status(): StatusReport {
    const p = this.#server;
    const a = this.#assigned?.ipv4;
    return roleStatus(this.#pieces, "client", a ? `${a.address}/${a.prefix}` : null, null, [
      peerStatus(p, null),
    ], this.#tunnel.counters);
  }
}

/** Run the client until SIGINT/SIGTERM; `reload` re-reads the settings on SIGHUP. */
export async function runClient(o: ClientOptions, reload?: () => ClientOptions): Promise<number> {
  const { key } = loadKey(o.key, false);
  const handshakeKey = await deriveHandshakeKey(key);
  const servers = await ServerList.create(o.servers);
  let changes: ClientHostChanges | null = null;
  /** The settings in effect, which a SIGHUP compares the re-read config with. */
  let running = o;
  return await startRuntime({
    tun: o.tun,
    crypto: o.crypto,
    udp: o.udp,
    offload: o.offload,
    bind: { hostname: servers.endpoints.every(endpointIsV4) ? "0.0.0.0" : "::", port: 0 },
    logLevel: o.logLevel,
    logFormat: o.logFormat,
    metrics: o.metrics,
    role: (pieces) => {
      changes = new ClientHostChanges(o, pieces.cleanup, pieces.tun.name);
      return new Client(o, pieces, handshakeKey, servers, changes);
    },
    hostChanges: async (pieces) => {
      // A client with a LAN behind it (site-to-site) forwards between the LAN and the tunnel.
      if (o.forward) {
        const old = setIpv4Forwarding(true);
        pieces.cleanup.add("restore IPv4 forwarding", () => void setIpv4Forwarding(old));
      }
      // The tunnel socket carries no mark of its own yet: the kill switch marks its local port.
      await changes!.start(pieces.udp.localPort);
    },
    reload: () => {
      if (!reload) {
        log.info("SIGHUP: a client has nothing to reload; restart it to apply new settings", {});
        return Promise.resolve();
      }
      const next = reload();
      const changed = clientSettingsNeedingRestart(running, next);
      log.info("re-read settings", {
        config: next.configFile ?? "none (flags only)",
        not_applied: changed.length,
      });
      applyLogSettings(running, next);
      reportNotApplied(changed);
      running = { ...running, logLevel: next.logLevel, logFormat: next.logFormat };
      return Promise.resolve();
    },
  });
}
