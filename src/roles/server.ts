/**
 * `vpn server`: answers handshakes, assigns overlay addresses, and routes packets from its TUN device to
 * the session that holds their destination. The packet loops live in tunnel.ts; this file is the control side.
 */
import { type Cidr, cidrContains, formatCidr, ipEquals, networkOf } from "../net/cidr.ts";
import type { PeerOptions, ServerOptions } from "../config/config.ts";
import {
  COOKIE_REPLY_LENGTH,
  CTRL_CONFIG_REQUEST,
  MSG_INITIATION,
  SOURCE_BUCKET_SLOTS,
  SOURCE_INITIATION_BURST,
  SOURCE_INITIATIONS_PER_SECOND,
  UNDER_LOAD_AFTER_MS,
  UNDER_LOAD_HANDSHAKES,
} from "../protocol/constants.ts";
import { CookieChecker } from "../protocol/cookie.ts";
import { SourceRateLimiter } from "../protocol/rate_limiter.ts";
import { encodeConfigMessage } from "../protocol/wire.ts";
import { copyEndpoint, endpointToString } from "../net/endpoint.ts";
import { formatHostPort } from "../net/host_port.ts";
import { deriveHandshakeKey, type HandshakeKey } from "../protocol/keys.ts";
import { Responder, type ServerHandshake } from "../protocol/handshake.ts";
import { formatIp, parseIp } from "../net/ip_address.ts";
import {
  ipv4Destination,
  ipv4Source,
  ipv4ToNumber,
  IPV6_DESTINATION,
  IPV6_SOURCE,
  ipVersion,
  numberToIpv4,
} from "../net/ip_packet.ts";
import { mirrorAddress6 } from "../net/ipv6_mirror.ts";
import { loadKey } from "../config/key_file.ts";
import { debugEnabled, log } from "../ops/log.ts";
import { settingsNeedingRestart } from "../config/settings_diff.ts";
import { applyLogSettings, reportNotApplied } from "./reload_report.ts";
import { Peer, peerStatus } from "../dataplane/peer.ts";
import { IndexTable } from "../dataplane/index_table.ts";
import { AddressTable } from "../dataplane/address_table.ts";
import { AddressPool } from "../dataplane/address_pool.ts";
import { LogBudget } from "../ops/log_budget.ts";
import { Session } from "../protocol/session.ts";
import { dropCategory, type DropCounts, type PeerStatus, type StatusReport } from "../ops/status_report.ts";
import { startRuntime } from "./runtime.ts";
import { type Role, type RolePieces, roleStatus } from "./role.ts";
import { Tunnel, type TunnelHost } from "../dataplane/tunnel.ts";
import { responderAction } from "../protocol/timers.ts";
import { addMasquerade, setIpv4Forwarding, setIpv6Forwarding } from "../host/routing.ts";
import { RouteTable } from "../dataplane/route_table.ts";
import { PeerRoutes } from "../host/peer_routes.ts";
import { hookEnv, runHooks } from "../host/hooks.ts";
import { writePidFile } from "../ops/pid_file.ts";

/** A peer gets the config message at most this often, however often it asks. */
const CONFIG_REPLY_INTERVAL_MS = 1000;
/** Handshakes processed at once; more are dropped as busy (each costs an AES-GCM open and X25519 work). */
const MAX_HANDSHAKES_IN_FLIGHT = 64;
/** Info lines a key holder can trigger (peer up, roamed, down on expiry): per second, burst. Warnings have
 * log.ts's own per-message limit. */
const PEER_LOG_PER_SECOND = 10;
const PEER_LOG_BURST = 100;

interface PinnedKey {
  readonly peer: Peer;
}

interface ConfiguredPeer {
  readonly peer: Peer;
  readonly options: PeerOptions;
  readonly keyId: bigint | null;
}

function samePeer(c: ConfiguredPeer, p: PeerOptions, key: HandshakeKey | null): boolean {
  const a6 = (x?: Cidr) => (x ? formatCidr(x) : "");
  return formatCidr(c.options.address) === formatCidr(p.address) &&
    a6(c.options.address6) === a6(p.address6) &&
    c.options.routes.map(formatCidr).join() === p.routes.map(formatCidr).join() &&
    c.keyId === (key?.keyIdValue ?? null);
}

/** The server's control side: peers, addresses, handshakes; it owns the packet loops. */
export class Server implements TunnelHost, Role {
  readonly #o: ServerOptions;
  readonly #pieces: RolePieces;
  readonly #tunnel: Tunnel;
  readonly #responder: Responder;
  readonly #keys = new Map<bigint, HandshakeKey>();
  readonly #configMessage: Uint8Array;
  readonly #configSentAt = new WeakMap<Peer, number>();
  readonly #pinnedByKey = new Map<bigint, PinnedKey>();
  /** Who owns each overlay address (IPv4 and IPv6): the packet path's destination and source lookups. */
  readonly #addresses = new AddressTable<Peer>();
  /** Local session indexes, including those reserved by handshakes being answered. */
  readonly #indexes = new IndexTable<Peer>();
  /** Free dynamic IPv4 addresses, lowest first. */
  readonly #pool: AddressPool;
  /** Every peer that holds its addresses: the configured ones and the dynamic clients. */
  readonly #peers = new Set<Peer>();
  /** Handshakes being answered, per peer: tick() leaves such a peer its addresses. */
  readonly #answering = new Map<Peer, number>();
  /** Where the initiation of a responded, unconfirmed session came from: the endpoint once data confirms it. */
  readonly #pendingEndpoint = new WeakMap<Session, Uint8Array>();
  /** Peers from the config (pinned) by name; never removed when idle. */
  readonly #configured = new Map<string, ConfiguredPeer>();
  /** Null when only listed peers are admitted (`shared_key = false`). */
  readonly #sharedKey: HandshakeKey | null;
  /** Networks behind clients (`routes` of [[server.peers]]), to their peers. */
  #routes = new RouteTable<Peer>();
  /** Peers that own their address through their own key; nobody else may take it. */
  readonly #ownKey = new Set<Peer>();
  readonly #network: Cidr;
  readonly #serverAddr4: number;
  /** Scratch for the IPv6 address a candidate IPv4 address mirrors to. */
  readonly #mirror = new Uint8Array(16);
  /** Lines that handshakes and roaming can trigger. */
  readonly #peerLog = new LogBudget(PEER_LOG_PER_SECOND, PEER_LOG_BURST);
  #inFlight = 0;
  /** Under load (asking for cookies) until this monotonic time. */
  #underLoadUntil = -1;
  readonly #cookies: CookieChecker;
  readonly #sources = new SourceRateLimiter(
    SOURCE_BUCKET_SLOTS,
    SOURCE_INITIATIONS_PER_SECOND,
    SOURCE_INITIATION_BURST,
  );

  constructor(
    o: ServerOptions,
    pieces: RolePieces,
    sharedKey: HandshakeKey | null,
    peerKeys: (HandshakeKey | null)[],
  ) {
    this.#o = o;
    this.#pieces = pieces;
    this.#tunnel = new Tunnel(pieces.tun, pieces.udp, this, o.mtu, pieces.now);
    this.#tunnel.relayClients = o.clientToClient;
    this.#network = networkOf(o.address);
    this.#serverAddr4 = ipv4ToNumber(o.address.address);
    const net = ipv4ToNumber(this.#network.address);
    this.#pool = new AddressPool(net + 1, net + 2 ** (32 - this.#network.prefixLength) - 2);
    this.#sharedKey = sharedKey;
    this.#configMessage = encodeConfigMessage({ dns: [...o.dns], search: [...o.dnsSearch] });
    this.#responder = new Responder();
    this.#cookies = new CookieChecker(pieces.now());
    this.setPeers(o.peers, peerKeys);
  }

  /**
   * Install the `[[server.peers]]` list (at start and on SIGHUP). Peers that stay the same keep their
   * sessions; removed or changed ones are disconnected; a dynamic client holding a newly pinned address
   * is disconnected too.
   */
  setPeers(peers: readonly PeerOptions[], peerKeys: (HandshakeKey | null)[]): void {
    const wanted = new Map<string, { p: PeerOptions; key: HandshakeKey | null }>();
    peers.forEach((p, i) => wanted.set(p.name, { p, key: peerKeys[i] }));
    for (const [name, entry] of this.#configured) {
      const w = wanted.get(name);
      if (w && samePeer(entry, w.p, w.key)) {
        wanted.delete(name);
        continue;
      }
      this.#configured.delete(name);
      this.#disconnect(entry.peer, "removed from the config");
    }
    for (const { p, key } of wanted.values()) {
      const peer = new Peer(p.name);
      peer.address4 = ipv4ToNumber(p.address.address);
      peer.address6 = p.address6?.address ?? this.#derivedAddress6(peer.address4);
      for (
        const holder of [
          this.#addresses.owner4(peer.address4),
          peer.address6 && this.#addresses.owner6(peer.address6),
        ]
      ) {
        if (holder) {
          this.#disconnect(holder, `address ${formatIp(p.address.address)} is now pinned to ${p.name}`);
        }
      }
      this.#configured.set(p.name, { peer, options: p, keyId: key?.keyIdValue ?? null });
      if (!this.#hold(peer)) log.error("pinned address already taken", { peer: p.name });
    }
    this.#keys.clear();
    this.#pinnedByKey.clear();
    this.#ownKey.clear();
    if (this.#sharedKey) this.#keys.set(this.#sharedKey.keyIdValue, this.#sharedKey);
    const routes = new RouteTable<Peer>();
    peers.forEach((p, i) => {
      const key = peerKeys[i];
      const peer = this.#configured.get(p.name)!.peer;
      for (const r of p.routes) routes.insert(r, peer);
      if (key) {
        this.#keys.set(key.keyIdValue, key);
        this.#pinnedByKey.set(key.keyIdValue, { peer });
        this.#ownKey.add(peer);
      }
    });
    this.#routes = routes;
    this.#responder.setKeys([...this.#keys.values()]);
  }

  /** The `routes` of every configured peer, for the kernel routes through the TUN. */
  peerRoutes(): Cidr[] {
    return [...this.#configured.values()].flatMap((c) => c.options.routes);
  }

  /** Give `peer` its addresses; false when another peer holds either. */
  #hold(peer: Peer): boolean {
    if (!this.#addresses.claim(peer, peer.address4, peer.address6)) return false;
    this.#peers.add(peer);
    return true;
  }

  /** Free `peer`'s addresses (only those it owns). */
  #release(peer: Peer): void {
    this.#addresses.release(peer, peer.address4, peer.address6);
    this.#peers.delete(peer);
    this.#pool.free(peer.address4);
  }

  /** Drop every session of `peer` and forget its addresses (a reload's doing: logged without a budget). */
  #disconnect(peer: Peer, reason: string): void {
    this.#unmap(peer.sessions.clear());
    this.#release(peer);
    if (peer.up) {
      peer.up = false;
      log.info("peer down", { peer: peer.name, reason });
    }
  }

  // ---------------------------------------------------------------- TunnelHost (hot path)

  peerForPacket(pkt: Uint8Array, len: number): Peer | null {
    const v = ipVersion(pkt, 0, len);
    if (v === 4) {
      const dst = ipv4Destination(pkt, 0);
      return this.#addresses.owner4(dst) ??
        (this.#routes.size4 > 0 ? this.#routes.lookup4(dst) ?? null : null);
    }
    if (v === 6) {
      return this.#addresses.owner6(pkt, IPV6_DESTINATION) ??
        (this.#routes.size6 > 0 ? this.#routes.lookup6(pkt, IPV6_DESTINATION) ?? null : null);
    }
    return null;
  }

  peerForIndex(index: number): Peer | undefined {
    return this.#indexes.get(index);
  }

  readonly sourceDrop: keyof DropCounts = "no_route";

  sourceAllowed(peer: Peer, pkt: Uint8Array, len: number): boolean {
    const v = ipVersion(pkt, 0, len);
    // A source in a network behind a client is accepted from that client only (longest prefix wins).
    if (v === 4) {
      const src = ipv4Source(pkt, 0);
      return this.#addresses.owner4(src) === peer ||
        (this.#routes.size4 > 0 && this.#routes.lookup4(src) === peer);
    }
    if (v === 6) {
      return this.#addresses.owner6(pkt, IPV6_SOURCE) === peer ||
        (this.#routes.size6 > 0 && this.#routes.lookup6(pkt, IPV6_SOURCE) === peer);
    }
    return false;
  }

  noSession(peer: Peer): void {
    if (debugEnabled) log.debug("no session for packet", { peer: peer.name });
  }

  /**
   * Everything before the queue is synchronous and allocation-free, so junk costs a Map get (unknown key
   * id) or a SipHash (bad MAC1) and never delays a real initiation. Under load an initiation also needs a
   * token of its source's bucket and a MAC2 for its source; without one it gets a cookie reply.
   */
  handshake(datagram: Uint8Array, from: Uint8Array): void {
    if (datagram[0] !== MSG_INITIATION) {
      this.#tunnel.countDrop("malformed");
      this.#pieces.handshakes.refuse("malformed");
      return;
    }
    const key = this.#responder.checkInitiation(datagram);
    if (typeof key === "string") {
      this.#tunnel.countDrop(dropCategory(key));
      this.#pieces.handshakes.refuse(key);
      if (debugEnabled) log.debug("initiation dropped", { reason: key, from: endpointToString(from) });
      return;
    }
    const now = this.#pieces.now();
    if (this.#inFlight >= UNDER_LOAD_HANDSHAKES) this.#underLoadUntil = now + UNDER_LOAD_AFTER_MS;
    if (now < this.#underLoadUntil) {
      if (!this.#sources.allow(from, now)) {
        this.#busy("source rate");
        return;
      }
      if (!this.#cookies.mac2Valid(datagram, from, now)) {
        this.#busy("cookie");
        // A fresh buffer and endpoint: an asynchronous socket may read them after the next reply is written.
        const reply = new Uint8Array(COOKIE_REPLY_LENGTH);
        const n = this.#cookies.writeReply(key, datagram, from, now, reply);
        const sent = this.#pieces.udp.sendOne(reply, n, from.slice());
        if (sent instanceof Promise) sent.catch(() => {});
        return;
      }
    }
    if (this.#inFlight >= MAX_HANDSHAKES_IN_FLIGHT) {
      this.#busy("in flight");
      if (debugEnabled) log.debug("handshake dropped: too many in flight", { from: endpointToString(from) });
      return;
    }
    this.#inFlight++;
    this.#tunnel.asyncWork++;
    // openInitiation copies the datagram before its first await; the endpoint is copied here.
    this.#answer(datagram, key, from.slice())
      .catch((e) => log.error("handshake failed", { error: (e as Error).message }))
      .finally(() => {
        this.#inFlight--;
        this.#tunnel.asyncWork--;
      });
  }

  /** Work refused under load: counted as `busy`, and by why in the handshake metrics. */
  #busy(why: string): void {
    this.#tunnel.countDrop("busy");
    this.#pieces.handshakes.refuse(`busy: ${why}`);
  }

  authenticated(peer: Peer, session: Session, now: number): void {
    if (session !== peer.sessions.next) return;
    this.#unmap(peer.sessions.confirm(session, now));
    // Data authenticated on the new session: only now does the peer's endpoint move (the tunnel then
    // follows this datagram's own source if it differs from the initiation's).
    const from = this.#pendingEndpoint.get(session);
    if (from !== undefined) {
      copyEndpoint(peer.endpoint, from);
      peer.hasEndpoint = true;
    }
    peer.lastHandshakeWallMs = Date.now();
    if (!peer.up) {
      peer.up = true;
      this.#peerLog.write("info", "peer up", {
        peer: peer.name,
        address: formatIp(numberToIpv4(peer.address4)),
        endpoint: endpointToString(peer.endpoint),
      }, now);
    } else {
      log.debug("rekeyed", { peer: peer.name });
    }
  }

  roamed(peer: Peer, from: string): void {
    this.#peerLog.write("info", "peer roamed", { peer: peer.name, endpoint: from });
  }

  /** A config request gets the pushed settings, at most once a second per peer (the client retries each tick). */
  control(peer: Peer, pkt: Uint8Array, len: number): void {
    if (pkt[0] !== CTRL_CONFIG_REQUEST || len !== 1) {
      peer.drops.malformed++;
      return;
    }
    const now = this.#pieces.now();
    if (now - (this.#configSentAt.get(peer) ?? -Infinity) < CONFIG_REPLY_INTERVAL_MS) return;
    this.#configSentAt.set(peer, now);
    this.#tunnel.sendControl(peer, this.#configMessage).catch(() => {});
  }

  // ---------------------------------------------------------------- handshakes

  async #answer(datagram: Uint8Array, key: HandshakeKey, from: Uint8Array): Promise<void> {
    const opened = await this.#responder.openInitiation(datagram, Date.now(), key);
    if (!opened.ok) {
      this.#tunnel.countDrop(dropCategory(opened.reason));
      this.#pieces.handshakes.refuse(opened.reason);
      if (debugEnabled) {
        log.debug("initiation dropped", { reason: opened.reason, from: endpointToString(from) });
      }
      return;
    }
    const init = opened.value;
    const keyId = init.key.keyIdValue;
    // Which peer the key stands for is decided now, after the await: a per-peer key removed meanwhile
    // never falls back to the shared key's dynamic addresses.
    const pinned = this.#pinnedByKey.get(keyId);
    if (pinned === undefined && keyId !== this.#sharedKey?.keyIdValue) {
      this.#revoked(from);
      return;
    }
    const peer = pinned?.peer ?? this.#assign(init.requestedAddress);
    if (peer === null) {
      this.#pieces.handshakes.refuse("no_address");
      log.warn("no free address for a new client", {
        subnet: formatCidr(this.#o.address),
        from: endpointToString(from),
      });
      return;
    }
    const index = this.#indexes.allocate(peer);
    this.#answering.set(peer, (this.#answering.get(peer) ?? 0) + 1);
    let hs: ServerHandshake | null = null;
    try {
      const answered = await this.#responder.respond(init, {
        senderIndex: index,
        params: {
          ipv4: { address: formatIp(numberToIpv4(peer.address4)), prefix: this.#o.address.prefixLength },
          ipv6: peer.address6 && this.#o.address6
            ? { address: formatIp(peer.address6), prefix: this.#o.address6.prefixLength }
            : null,
          mtu: this.#o.mtu,
          keepaliveSeconds: this.#o.keepalive,
        },
      });
      if (!answered.ok) {
        this.#tunnel.countDrop(dropCategory(answered.reason));
        this.#pieces.handshakes.refuse(answered.reason);
        return;
      }
      const session = await Session.create(this.#pieces.aead, {
        ...answered.value,
        isInitiator: false,
        now: this.#pieces.now(),
      });
      // A reload or an expiry may have run during the awaits: answer only if the key still stands for
      // this peer and the peer still holds its addresses (a disconnected peer is not brought back).
      if (!this.#admits(keyId, peer)) {
        session.dispose();
        this.#revoked(from);
        return;
      }
      this.#unmap(peer.sessions.installResponded(session));
      // The response goes to the initiation's source, but the peer's endpoint stays until data
      // authenticates on this session: a replayed or spoofed-source initiation moves nothing.
      this.#pendingEndpoint.set(session, from);
      hs = answered.value;
      this.#pieces.handshakes.completed++;
    } finally {
      if (hs === null) this.#indexes.release(index, peer);
      const n = this.#answering.get(peer)! - 1;
      if (n === 0) this.#answering.delete(peer);
      else this.#answering.set(peer, n);
    }
    await this.#pieces.udp.sendOne(hs.message, hs.message.length, from);
    if (debugEnabled) log.debug("handshake answered", { peer: peer.name, from: endpointToString(from) });
  }

  /** True while `keyId` still stands for `peer` and `peer` still holds its addresses. */
  #admits(keyId: bigint, peer: Peer): boolean {
    if (!this.#peers.has(peer)) return false;
    const pinned = this.#pinnedByKey.get(keyId);
    if (pinned !== undefined) return pinned.peer === peer;
    return keyId === this.#sharedKey?.keyIdValue && !this.#ownKey.has(peer);
  }

  /** An initiation under a key that is no longer configured (removed by a reload while it was checked). */
  #revoked(from: Uint8Array): void {
    this.#tunnel.countDrop(dropCategory("unknown-key"));
    this.#pieces.handshakes.refuse("revoked");
    if (debugEnabled) log.debug("initiation dropped", { reason: "revoked", from: endpointToString(from) });
  }

  /** The peer a shared-key handshake gets, with its address; null when the subnet is full. */
  #assign(requested: string | null): Peer | null {
    let addr = -1;
    const want = requested === null ? null : parseIp(requested);
    if (want !== null && want.length === 4 && cidrContains(this.#network, want)) {
      const n = ipv4ToNumber(want);
      const holder = this.#addresses.owner4(n);
      // A client with the shared key asking for an address held by another shared-key client takes it
      // over: it is that client restarted (or one with the same key, which is equally trusted). Never an
      // address whose IPv6 mirror someone else owns.
      if (holder !== undefined) {
        if (!this.#ownKey.has(holder)) return holder;
      } else if (this.#usableHost(n) && !this.#taken(n)) addr = n;
    }
    if (addr < 0) addr = this.#pool.lowest((n) => this.#taken(n));
    if (addr < 0) return null;
    const peer = new Peer(formatIp(numberToIpv4(addr)));
    peer.address4 = addr;
    peer.address6 = this.#derivedAddress6(addr);
    // Held at once: a concurrent handshake (another client, or a retry) must not get the same address
    // as a second Peer while this one awaits its crypto. tick() frees it if the handshake fails.
    return this.#hold(peer) ? peer : null;
  }

  /** True when a dynamic client may not get `n`: the server's, held, or its IPv6 mirror is taken. */
  #taken(n: number): boolean {
    if (n === this.#serverAddr4 || this.#addresses.owner4(n) !== undefined) return true;
    const a6 = this.#o.address6;
    if (!a6) return false;
    const m = mirrorAddress6(a6, n - ipv4ToNumber(this.#network.address), this.#mirror);
    return this.#addresses.owner6(m) !== undefined || ipEquals(m, a6.address);
  }

  #usableHost(n: number): boolean {
    const net = ipv4ToNumber(this.#network.address);
    const size = 2 ** (32 - this.#network.prefixLength);
    return n > net && n < net + size - 1 && n !== this.#serverAddr4;
  }

  /** With IPv6 inside the tunnel, a client's IPv6 address mirrors its IPv4 host part. */
  #derivedAddress6(addr4: number): Uint8Array | null {
    const a6 = this.#o.address6;
    return a6 ? mirrorAddress6(a6, addr4 - ipv4ToNumber(this.#network.address)) : null;
  }

  #unmap(retired: Session[]): void {
    for (const s of retired) {
      const peer = this.#indexes.get(s.localIndex);
      if (peer !== undefined) this.#indexes.release(s.localIndex, peer);
    }
  }

  // ---------------------------------------------------------------- running, timers and status

  configure(): void {
    const o = this.#o;
    this.#pieces.network.configureInterface(this.#pieces.tun.name, o.address, o.address6 ?? null, o.mtu);
    this.#tunnel.setMtu(o.mtu);
  }

  started(): void {
    const o = this.#o;
    log.info("server started", {
      listen: this.#pieces.udp.localAddress,
      requested: formatHostPort(o.listen),
      tun: this.#pieces.tun.name,
      address: formatCidr(o.address),
      address6: o.address6 ? formatCidr(o.address6) : undefined,
      mtu: o.mtu,
      peers: o.peers.length,
      shared_key: o.sharedKey,
      client_to_client: o.clientToClient,
      dns: o.dns.join(",") || undefined,
      dns_search: o.dnsSearch.join(",") || undefined,
    });
  }

  run(): Promise<void> {
    return this.#tunnel.run();
  }

  stop(): void {
    this.#tunnel.stop();
  }

  /** Once a second: expire sessions, announce peers that went down, send passive keepalives. */
  tick(): void {
    const now = this.#pieces.now();
    for (const peer of this.#peers) {
      this.#unmap(peer.sessions.expire(now));
      const live = peer.sessions.current !== null || peer.sessions.next !== null;
      if (peer.up && !live) {
        peer.up = false;
        this.#peerLog.write("info", "peer down", { peer: peer.name, reason: "session expired" }, now);
      }
      if (!live && this.#configured.get(peer.name)?.peer !== peer && !this.#answering.has(peer)) {
        this.#release(peer);
        continue;
      }
      if (responderAction(live, peer, now) === "keepalive") this.#tunnel.sendKeepalive(peer).catch(() => {});
    }
  }

  /** The snapshot `vpn status` shows. */
  status(): StatusReport {
    const peers: PeerStatus[] = [];
    for (const p of this.#peers) peers.push(peerStatus(p, formatIp(numberToIpv4(p.address4))));
    const p = this.#pieces;
    return roleStatus(
      p,
      "server",
      formatCidr(this.#o.address),
      p.udp.localAddress,
      peers,
      this.#tunnel.counters,
    );
  }
}

/** Run the server until SIGINT/SIGTERM; resolves to the exit code only on a failure to start. */
export async function runServer(o: ServerOptions, reload?: () => ServerOptions): Promise<number> {
  let shared: HandshakeKey | null = null;
  if (o.sharedKey) {
    const { key, created } = loadKey(o.key, true);
    if (created && o.key.kind === "file") {
      log.info("created a new key file", {
        path: o.key.path,
        next:
          `copy it to each client and run: vpn client --peer THIS_HOST:${o.listen.port} --key-file ${o.key.path}`,
      });
    }
    shared = await deriveHandshakeKey(key);
  } else if (o.peers.every((p) => !p.key)) {
    log.warn("no shared key and no peer with its own key: no client can connect", {});
  }
  const peerKeys = await Promise.all(o.peers.map((p) => p.key ? deriveHandshakeKey(p.key) : null));
  let server: Server | null = null;
  let kernelRoutes: PeerRoutes | null = null;
  /** The settings in effect, which a SIGHUP compares the re-read config with. */
  let running = o;
  return await startRuntime({
    tun: o.tun,
    crypto: o.crypto,
    udp: o.udp,
    offload: o.offload,
    bind: o.listen,
    logLevel: o.logLevel,
    logFormat: o.logFormat,
    metrics: o.metrics,
    role: (pieces) => (server = new Server(o, pieces, shared, peerKeys)),
    hostChanges: async (pieces) => {
      if (o.forward) {
        const old = setIpv4Forwarding(true);
        pieces.cleanup.add("restore IPv4 forwarding", () => void setIpv4Forwarding(old));
        if (o.address6) {
          const old6 = setIpv6Forwarding(true);
          pieces.cleanup.add("restore IPv6 forwarding", () => void setIpv6Forwarding(old6));
        }
      }
      if (o.nat) {
        for (const net of o.address6 ? [o.address, o.address6] : [o.address]) {
          const m = await addMasquerade(o.nat, formatCidr(networkOf(net)));
          pieces.cleanup.add(`remove ${m.rule}`, () => m.remove());
          log.info("masquerading", { rule: m.rule, tool: m.tool });
        }
      }
      kernelRoutes = new PeerRoutes(pieces.tun.name, pieces.cleanup);
      kernelRoutes.sync(server!.peerRoutes());
      writePidFile(pieces.cleanup, pieces.tun.name, o.configFile ?? null);
      const env = hookEnv("server", pieces.tun.name, o.address, o.address6 ?? null);
      // pre_down is registered first so it also runs after a post_up that failed half-way.
      pieces.cleanup.add("run pre_down", () => runHooks("pre_down", o.preDown, env));
      await runHooks("post_up", o.postUp, env);
    },
    reload: reload && (async () => {
      const next = reload();
      const keys = await Promise.all(next.peers.map((p) => p.key ? deriveHandshakeKey(p.key) : null));
      server!.setPeers(next.peers, keys);
      kernelRoutes?.sync(server!.peerRoutes());
      log.info("reloaded peers", { config: next.configFile, peers: next.peers.length });
      applyLogSettings(running, next);
      reportNotApplied(settingsNeedingRestart(running, next));
      running = { ...running, logLevel: next.logLevel, logFormat: next.logFormat, peers: next.peers };
    }),
  });
}
