/**
 * The packet loops, shared by server and client: TUN -> seal -> UDP, and UDP -> open -> TUN.
 * Each wake-up drains a capped batch into preallocated slots, seals or opens it, and moves it with one
 * send (or one write per packet to the TUN). Handshake messages leave the fast path as copies.
 */
import { copyEndpoint, endpointEquals, endpointToString } from "./endpoint.ts";
import { DATA_HEADER_LENGTH, DATA_OVERHEAD, MSG_DATA } from "./constants.ts";
import { DatagramBatch, type DatagramSocket } from "./datagram.ts";
import type { TunDevice } from "../ffi/tun_device.ts";
import { debugEnabled, log } from "./log.ts";
import type { Peer } from "./peer.ts";
import type { Session } from "./session.ts";
import { type DropCounts, zeroDrops } from "./status_report.ts";
import { classify, readReceiverIndex } from "./wire.ts";

/** Packets taken from the TUN per wake-up; the event loop runs between batches. */
const TUN_BATCH = 128;
/** Datagrams taken from the socket per wake-up. */
const UDP_BATCH = 128;
/** Slack beyond the MTU in a slot, so an oversized packet shows up as too long instead of truncated. */
const SLOT_SLACK = 64;

/** What the loops ask of the server or client that owns them. */
export interface TunnelHost {
  /** The peer an outbound packet (read from the TUN) goes to, or null when no peer holds its destination. */
  peerForPacket(pkt: Uint8Array, len: number): Peer | null;
  /** The peer that owns a local session index. */
  peerForIndex(index: number): Peer | undefined;
  /** True when `peer` may send a packet with this source address (no spoofing another peer's address). */
  sourceAllowed(peer: Peer, pkt: Uint8Array, len: number): boolean;
  /** A packet for `peer` found no session to send on (the client starts a handshake). */
  noSession(peer: Peer): void;
  /** A handshake message arrived; `datagram` is a private copy, `from` too. */
  handshake(datagram: Uint8Array, from: Uint8Array): void;
  /** A packet authenticated on a session of `peer` (confirms a pending session, may retire old ones). */
  authenticated(peer: Peer, session: Session, now: number): void;
  /** `peer` was first heard from a new endpoint (roaming). */
  roamed(peer: Peer, from: string): void;
}

/** Counters of the whole tunnel (drops not charged to a known peer). */
export interface TunnelCounters {
  readonly drops: DropCounts;
  tunWriteErrors: number;
  sendDropped: number;
}

/** The two packet loops over one TUN device and one UDP socket. */
export class Tunnel {
  readonly counters: TunnelCounters = { drops: zeroDrops(), tunWriteErrors: 0, sendDropped: 0 };
  readonly #tun: TunDevice;
  readonly #udp: DatagramSocket;
  readonly #host: TunnelHost;
  /** Largest inner packet carried; larger ones are dropped as oversize. */
  mtu: number;
  #running = true;
  // TUN -> UDP
  readonly #out: DatagramBatch;
  readonly #outPlain: Uint8Array[];
  readonly #outSession: (Session | null)[];
  readonly #outPeer: (Peer | null)[];
  // UDP -> TUN
  readonly #in: DatagramBatch;
  readonly #inPlain: Uint8Array[];
  readonly #inSession: (Session | null)[];
  readonly #inPeer: (Peer | null)[];
  readonly #inCounter: Float64Array;
  // Client-to-client packets the server relays without the kernel.
  readonly #relay: DatagramBatch;
  readonly #relaySession: (Session | null)[] = new Array(UDP_BATCH).fill(null);
  readonly #relayPeer: (Peer | null)[] = new Array(UDP_BATCH).fill(null);
  // Promises of an asynchronous AEAD (WebCrypto), one list per loop; empty with OpenSSL.
  readonly #tunPending: Promise<unknown>[] = [];
  readonly #udpPending: Promise<unknown>[] = [];

  /** `maxMtu` sizes the packet slots; `mtu` starts there and may be lowered (the client learns it late). */
  constructor(tun: TunDevice, udp: DatagramSocket, host: TunnelHost, maxMtu: number) {
    this.#tun = tun;
    this.#udp = udp;
    this.#host = host;
    this.mtu = maxMtu;
    const slot = maxMtu + DATA_OVERHEAD + SLOT_SLACK;
    this.#out = new DatagramBatch(TUN_BATCH, slot);
    this.#outPlain = this.#out.bufs.map((b) => b.subarray(DATA_HEADER_LENGTH, slot - 16));
    this.#outSession = new Array(TUN_BATCH).fill(null);
    this.#outPeer = new Array(TUN_BATCH).fill(null);
    this.#in = new DatagramBatch(UDP_BATCH, slot);
    this.#inPlain = this.#in.bufs.map((b) => b.subarray(DATA_HEADER_LENGTH));
    this.#inSession = new Array(UDP_BATCH).fill(null);
    this.#inPeer = new Array(UDP_BATCH).fill(null);
    this.#inCounter = new Float64Array(UDP_BATCH);
    this.#relay = new DatagramBatch(UDP_BATCH, slot);
  }

  /** Run both loops until `stop()`; rejects if either fails. */
  run(): Promise<void> {
    return Promise.all([this.#tunLoop(), this.#udpLoop()]).then(() => {});
  }

  /** Ends both loops at their next wake-up (closing the devices wakes them at once). */
  stop(): void {
    this.#running = false;
  }

  /** Send one keepalive (an empty data packet) to `peer`; false when there is no session. */
  async sendKeepalive(peer: Peer): Promise<boolean> {
    const now = performance.now();
    const s = peer.sessions.sendSession(now);
    if (s === null || !peer.hasEndpoint) return false;
    const buf = new Uint8Array(DATA_OVERHEAD);
    const len = await s.seal(buf, 0, now);
    if (len < 0) return false;
    peer.lastSentAt = now;
    await this.#udp.sendOne(buf, len, peer.endpoint);
    return true;
  }

  async #tunLoop(): Promise<void> {
    const tun = this.#tun, out = this.#out, plain = this.#outPlain, host = this.#host;
    const drops = this.counters.drops;
    while (this.#running && await tun.waitReadable()) {
      const now = performance.now();
      let n = 0;
      while (n < TUN_BATCH) {
        const len = tun.read(plain[n]);
        if (len <= 0) break;
        if (len > this.mtu) {
          drops.oversize++;
          continue;
        }
        const peer = host.peerForPacket(plain[n], len);
        if (peer === null) {
          drops.no_route++;
          continue;
        }
        const s = peer.sessions.sendSession(now);
        if (s === null || !peer.hasEndpoint || s.prepareSeal(out.bufs[n], now) < 0) {
          peer.drops.no_route++;
          host.noSession(peer);
          continue;
        }
        out.lens[n] = len;
        this.#outSession[n] = s;
        this.#outPeer[n] = peer;
        copyEndpoint(out.endpoints[n], peer.endpoint);
        n++;
      }
      if (n === 0) continue;
      await this.#sealAndSend(out, this.#outSession, this.#outPeer, n, now, this.#tunPending);
    }
  }

  /** Seal slots [0, n) (headers already written) and send them; counts per peer. */
  async #sealAndSend(
    batch: DatagramBatch,
    sessions: (Session | null)[],
    peers: (Peer | null)[],
    n: number,
    now: number,
    pending: Promise<unknown>[],
  ): Promise<void> {
    for (let i = 0; i < n; i++) {
      const len = batch.lens[i];
      const peer = peers[i]!;
      peer.txPackets++;
      peer.txBytes += len;
      peer.lastSentAt = now;
      if (len > 0 && peer.unansweredSince < 0) peer.unansweredSince = now;
      const r = sessions[i]!.sendKey.sealOne(batch.bufs[i], len);
      if (r instanceof Promise) pending.push(r);
      batch.lens[i] = len + DATA_OVERHEAD;
      sessions[i] = null;
      peers[i] = null;
    }
    if (pending.length > 0) {
      await Promise.all(pending);
      pending.length = 0;
    }
    let sent = this.#udp.send(batch, n);
    if (sent instanceof Promise) sent = await sent;
    if (sent < n) this.counters.sendDropped += n - sent;
  }

  async #udpLoop(): Promise<void> {
    const udp = this.#udp, batch = this.#in, host = this.#host, drops = this.counters.drops;
    const sessions = this.#inSession, peers = this.#inPeer, counters = this.#inCounter;
    while (this.#running) {
      const n = await udp.receive(batch);
      if (n === 0) {
        if (!this.#running) break;
        continue;
      }
      const now = performance.now();
      let opening = 0;
      for (let i = 0; i < n; i++) {
        const buf = batch.bufs[i], len = batch.lens[i];
        sessions[i] = null;
        const type = classify(buf, len);
        if (type !== MSG_DATA) {
          if (typeof type === "number") host.handshake(buf.slice(0, len), batch.endpoints[i].slice());
          else {
            drops.malformed++;
            if (debugEnabled) this.#debugDrop(type, batch.endpoints[i]);
          }
          continue;
        }
        if (len > this.mtu + DATA_OVERHEAD) {
          drops.oversize++;
          continue;
        }
        const index = readReceiverIndex(buf);
        const peer = host.peerForIndex(index);
        const s = peer?.sessions.find(index, now) ?? null;
        if (peer === undefined || s === null) {
          drops.auth++;
          if (debugEnabled) this.#debugDrop("unknown index", batch.endpoints[i]);
          continue;
        }
        const c = s.checkReceive(buf, now);
        if (c < 0) {
          peer.drops.replay++;
          if (debugEnabled) this.#debugDrop("replay", batch.endpoints[i]);
          continue;
        }
        counters[i] = c;
        sessions[i] = s;
        peers[i] = peer;
        const r = s.recvKey.openOne(buf, len);
        if (typeof r === "number") batch.lens[i] = r;
        else {
          const slot = i;
          this.#udpPending.push(r.then((m) => batch.lens[slot] = m));
        }
        opening++;
      }
      if (opening === 0) continue;
      if (this.#udpPending.length > 0) {
        await Promise.all(this.#udpPending);
        this.#udpPending.length = 0;
      }
      let relayed = 0;
      for (let i = 0; i < n; i++) {
        const s = sessions[i];
        if (s === null) continue;
        sessions[i] = null;
        const peer = peers[i]!;
        peers[i] = null;
        const len = batch.lens[i];
        if (len < 0) {
          peer.drops.auth++;
          if (debugEnabled) this.#debugDrop("auth", batch.endpoints[i]);
          continue;
        }
        if (!s.acceptCounter(counters[i], now)) {
          peer.drops.replay++;
          continue;
        }
        host.authenticated(peer, s, now);
        peer.lastReceivedAt = now;
        peer.unansweredSince = -1;
        if (!peer.hasEndpoint || !endpointEquals(peer.endpoint, batch.endpoints[i])) {
          const first = !peer.hasEndpoint;
          copyEndpoint(peer.endpoint, batch.endpoints[i]);
          peer.hasEndpoint = true;
          if (!first) host.roamed(peer, endpointToString(peer.endpoint));
        }
        peer.rxPackets++;
        peer.rxBytes += len;
        if (len === 0) continue; // keepalive
        const pkt = this.#inPlain[i];
        if (!host.sourceAllowed(peer, pkt, len)) {
          peer.drops.no_route++;
          continue;
        }
        const dest = host.peerForPacket(pkt, len);
        if (dest !== null && dest !== peer) {
          relayed = this.#queueRelay(dest, pkt, len, relayed, now);
          continue;
        }
        if (!this.#tun.write(pkt, len)) this.counters.tunWriteErrors++;
      }
      if (relayed > 0) {
        await this.#sealAndSend(
          this.#relay,
          this.#relaySession,
          this.#relayPeer,
          relayed,
          now,
          this.#udpPending,
        );
      }
    }
  }

  #debugDrop(reason: string, from: Uint8Array): void {
    log.debug("datagram dropped", { reason, from: endpointToString(from) });
  }

  /** Copy a packet from one client into the relay batch, addressed to another client. */
  #queueRelay(dest: Peer, pkt: Uint8Array, len: number, n: number, now: number): number {
    const s = dest.sessions.sendSession(now);
    const slot = this.#relay.bufs[n];
    if (s === null || !dest.hasEndpoint || s.prepareSeal(slot, now) < 0) {
      dest.drops.no_route++;
      this.#host.noSession(dest);
      return n;
    }
    slot.set(pkt.subarray(0, len), DATA_HEADER_LENGTH);
    this.#relay.lens[n] = len;
    this.#relaySession[n] = s;
    this.#relayPeer[n] = dest;
    copyEndpoint(this.#relay.endpoints[n], dest.endpoint);
    return n + 1;
  }
}
