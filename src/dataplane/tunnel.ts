/**
 * The packet loops, shared by server and client: TUN -> seal -> UDP, and UDP -> open -> TUN.
 * Each wake-up drains a capped batch into preallocated slots, seals or opens it, and moves it with one
 * send (or one write per packet to the TUN). Handshake messages leave the fast path as copies.
 * With the batched (FFI) socket one loop serves both directions from one poll of both descriptors, waiting
 * synchronously while traffic flows; with Deno's socket each direction has its own loop.
 * The server and client own a `Tunnel` and act on it only through its few public methods.
 * Over a TUN with offloads (`vnetHdr`), a read may be a GSO super-packet, split into segments before
 * sealing, and opened TCP segments of one flow are coalesced into super-packets before the TUN write.
 */
import { copyEndpoint, endpointEquals, endpointToString } from "../net/endpoint.ts";
import { CONTROL_MAX_TYPE, DATA_HEADER_LENGTH, DATA_OVERHEAD, MSG_DATA } from "../protocol/constants.ts";
import { DatagramBatch, type DatagramSocket } from "./datagram.ts";
import { isPollable, type PollableTun, READY_OTHER, READY_TUN, type Tun } from "./tun.ts";
import { traceEnabled } from "../ops/log.ts";
import { traceDropped, traceOpened, traceSealed } from "../ops/packet_trace.ts";
import type { Peer } from "./peer.ts";
import type { Session } from "../protocol/session.ts";
import { type DropCounts, zeroDrops } from "../ops/status_report.ts";
import { classify, readReceiverIndex } from "../protocol/wire.ts";
import { authenticatedReceived, dataReceived, dataSent } from "../protocol/timers.ts";
import { completeChecksum, gsoSplit } from "./gso_split.ts";
import { groCoalesce, GroTable } from "./gro_coalesce.ts";
import {
  newVirtioNetHdr,
  readVirtioNetHdr,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_LENGTH,
  type VirtioNetHdr,
} from "./virtio_net_hdr.ts";

/** Packets taken from the TUN per wake-up; the event loop runs between batches. */
const TUN_BATCH = 128;
/** Datagrams taken from the socket per wake-up. */
const UDP_BATCH = 128;
/** Longest one synchronous wait blocks the event loop, ms; when it finds nothing the loop parks. */
const SYNC_WAIT_MS = 1;
/** While traffic flows, the event loop (timers, signals, control socket, handshakes) runs this often, ms. */
const YIELD_EVERY_MS = 2;
/** A parked wait re-checks `stop()` this often, ms. */
const PARK_MS = 250;
/** Slack beyond the MTU in a slot, so an oversized packet shows up as too long instead of truncated. */
const SLOT_SLACK = 64;

/** Largest TUN read with offloads: a 64 KiB super-packet behind its virtio_net_hdr. */
const SUPER_READ = 65535 + VIRTIO_NET_HDR_LENGTH;
/**
 * Receive slot size with offloads: opened segments are appended in place to the head of their flow's
 * super-packet. Pages beyond a datagram are only touched when segments are merged there.
 */
const GRO_SLOT = 65535;

/** The plaintext of a keepalive. */
const EMPTY = new Uint8Array(0);

/** What the loops ask of the server or client that owns them. */
export interface TunnelHost {
  /** The peer an outbound packet (read from the TUN) goes to, or null when no peer holds its destination. */
  peerForPacket(pkt: Uint8Array, len: number): Peer | null;
  /** The peer that owns a local session index. */
  peerForIndex(index: number): Peer | undefined;
  /** True when `peer` may send a packet with this source address (no spoofing another peer's address). */
  sourceAllowed(peer: Peer, pkt: Uint8Array, len: number): boolean;
  /** The drop reason a packet refused by `sourceAllowed` is counted under. */
  readonly sourceDrop: keyof DropCounts;
  /** A packet for `peer` found no session to send on (the client starts a handshake). */
  noSession(peer: Peer): void;
  /** A handshake message arrived; `datagram` and `from` are views into reused buffers: copy what you keep. */
  handshake(datagram: Uint8Array, from: Uint8Array): void;
  /** A packet authenticated on a session of `peer` (confirms a pending session, may retire old ones). */
  authenticated(peer: Peer, session: Session, now: number): void;
  /** `peer` was first heard from a new endpoint (roaming; never a peer with a `fixedEndpoint`). */
  roamed(peer: Peer, from: string): void;
  /** An authenticated control message (`pkt[0] <= CONTROL_MAX_TYPE`, `len` bytes) arrived from `peer`. */
  control(peer: Peer, pkt: Uint8Array, len: number): void;
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
  readonly #tun: Tun;
  readonly #udp: DatagramSocket;
  readonly #host: TunnelHost;
  /** Monotonic ms for the session timers (a fake clock in tests). */
  readonly #now: () => number;
  /** Largest inner packet carried; larger ones are dropped as oversize. */
  #mtu: number;
  /**
   * Async work (handshakes) the owner has waiting on WebCrypto: while above 0 every turn of the event loop
   * is a timer turn, since MessageChannel turns left finished async ops unpolled for 0.3-1.3 s under load.
   */
  asyncWork = 0;
  /** Server: relay packets from one client to another; false drops them (counted as `relay`). */
  relayClients = true;
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
  // Offloads (TUN with virtio_net_hdr); null without.
  readonly #offload: Offload | null;

  /**
   * `maxMtu` sizes the packet slots; the MTU starts there and may be lowered (the client learns it late).
   * `now` gives monotonic ms for the session timers.
   */
  constructor(tun: Tun, udp: DatagramSocket, host: TunnelHost, maxMtu: number, now: () => number) {
    this.#tun = tun;
    this.#udp = udp;
    this.#host = host;
    this.#now = now;
    this.#mtu = maxMtu;
    const slot = maxMtu + DATA_OVERHEAD + SLOT_SLACK;
    this.#out = new DatagramBatch(TUN_BATCH, slot);
    this.#outPlain = this.#out.bufs.map((b) => b.subarray(DATA_HEADER_LENGTH, slot - 16));
    this.#outSession = new Array(TUN_BATCH).fill(null);
    this.#outPeer = new Array(TUN_BATCH).fill(null);
    this.#offload = tun.vnetHdr === true ? new Offload() : null;
    this.#in = new DatagramBatch(UDP_BATCH, this.#offload !== null || udp.gro === true ? GRO_SLOT : slot);
    this.#offload?.init(this.#in);
    this.#inPlain = this.#in.bufs.map((b) => b.subarray(DATA_HEADER_LENGTH));
    this.#inSession = new Array(UDP_BATCH).fill(null);
    this.#inPeer = new Array(UDP_BATCH).fill(null);
    this.#inCounter = new Float64Array(UDP_BATCH);
    this.#relay = new DatagramBatch(UDP_BATCH, slot);
  }

  /**
   * Run the data path until `stop()`; rejects if it fails. With a pollable socket (batched UDP) one loop
   * serves both directions; with Deno's socket, one loop per direction.
   */
  run(): Promise<void> {
    if (this.#udp.pollFd >= 0 && isPollable(this.#tun)) return this.#pumpLoop(this.#tun);
    return Promise.all([this.#tunLoop(), this.#udpLoop()]).then(() => {});
  }

  /** Ends the loops at their next wake-up (closing the devices wakes them at once). */
  stop(): void {
    this.#running = false;
  }

  /** Set the largest inner packet carried (at most the `maxMtu` the slots were sized for). */
  setMtu(mtu: number): void {
    this.#mtu = mtu;
  }

  /** Count a drop the roles saw (handshakes), beside the loops' own. */
  countDrop(reason: keyof DropCounts): void {
    this.counters.drops[reason]++;
  }

  /** Send one keepalive (an empty data packet) to `peer`; false when there is no session. */
  sendKeepalive(peer: Peer): Promise<boolean> {
    return this.sendControl(peer, EMPTY);
  }

  /** Send a control message (the plaintext `body`) to `peer`; false when there is no session. */
  async sendControl(peer: Peer, body: Uint8Array): Promise<boolean> {
    const now = this.#now();
    const s = peer.sessions.sendSession(now);
    if (s === null || !peer.hasEndpoint) return false;
    const buf = new Uint8Array(DATA_OVERHEAD + body.length);
    buf.set(body, DATA_HEADER_LENGTH);
    const len = await s.seal(buf, body.length, now);
    if (len < 0) return false;
    if (traceEnabled) traceSealed(peer.name, buf, 0);
    dataSent(peer, 0, now);
    peer.txPackets++;
    await this.#udp.sendOne(buf, len, peer.endpoint);
    return true;
  }

  /**
   * Both directions in one loop over one poll of the TUN and the UDP socket. While traffic flows it polls
   * synchronously (~0.4 µs; it blocks the event loop for at most SYNC_WAIT_MS when nothing is there) and
   * gives the event loop a turn every YIELD_EVERY_MS; only when idle does it park in a worker-thread poll,
   * whose thread hop (~18 µs of CPU) would otherwise be paid per wake-up.
   */
  async #pumpLoop(tun: PollableTun): Promise<void> {
    const udp = this.#udp, fd = udp.pollFd, batch = this.#in;
    const turn = new EventLoopTurn();
    let turns = 0;
    try {
      let lastTurn = performance.now();
      while (this.#running) {
        let ready: number;
        // A super-packet held for free slots, or datagrams of a train in the socket, wait without the
        // descriptors polling readable: look without waiting and take them.
        const waiting = (udp.pending === true ? READY_OTHER : 0) | (this.#offload?.held ? READY_TUN : 0);
        if (waiting !== 0) {
          ready = tun.pollWith(fd, 0);
          if (ready >= 0) ready |= waiting;
        } else ready = tun.pollWith(fd, SYNC_WAIT_MS);
        if (ready === 0) {
          ready = await tun.pollWithAsync(fd, PARK_MS);
          lastTurn = performance.now();
        }
        if (ready < 0) break;
        if ((ready & READY_TUN) !== 0) {
          const r = this.#fromTun();
          if (r !== undefined) await r;
        }
        if ((ready & READY_OTHER) !== 0) {
          const n = udp.receiveNow(batch);
          if (n < 0) break;
          if (n > 0) {
            const r = this.#fromUdp(n);
            if (r !== undefined) await r;
          }
        }
        if (performance.now() - lastTurn >= YIELD_EVERY_MS) {
          // A timer turn while async work waits, and every 64th turn anyway (about 1 % of the time).
          await turn.next(this.asyncWork > 0 || (++turns & 63) === 0);
          lastTurn = performance.now();
        }
      }
    } finally {
      turn.close();
    }
  }

  async #tunLoop(): Promise<void> {
    const tun = this.#tun;
    while (this.#running && (this.#offload?.held || await tun.waitReadable())) {
      const r = this.#fromTun();
      if (r !== undefined) await r;
    }
  }

  async #udpLoop(): Promise<void> {
    const udp = this.#udp, batch = this.#in;
    while (this.#running) {
      const n = await udp.receive(batch);
      if (n === 0) {
        if (!this.#running) break;
        continue;
      }
      const r = this.#fromUdp(n);
      if (r !== undefined) await r;
    }
  }

  /** Drain up to TUN_BATCH packets from the TUN, seal and send them. A Promise only with an async AEAD or socket. */
  #fromTun(): void | Promise<void> {
    if (this.#offload !== null) return this.#fromTunOffload(this.#offload);
    const tun = this.#tun, out = this.#out, plain = this.#outPlain, host = this.#host;
    const drops = this.counters.drops;
    const now = this.#now();
    let n = 0;
    while (n < TUN_BATCH) {
      const len = tun.read(plain[n]);
      if (len <= 0) break;
      if (len > this.#mtu) {
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
    if (n === 0) return;
    return this.#sealAndSend(out, this.#outSession, this.#outPeer, n, now, this.#tunPending);
  }

  /**
   * `#fromTun` over a TUN with virtio_net_hdr: each read is a packet or a GSO super-packet, split into
   * segments in consecutive slots. A super-packet that does not fit the slots left waits for the next batch.
   */
  #fromTunOffload(o: Offload): void | Promise<void> {
    const tun = this.#tun, now = this.#now();
    let n = 0;
    if (o.held > 0) {
      const len = o.held;
      o.held = 0;
      n = this.#takeSuper(o, len, 0, now);
    }
    while (n < TUN_BATCH && o.held === 0) {
      const len = tun.read(o.read);
      if (len <= 0) break;
      n = this.#takeSuper(o, len, n, now);
    }
    if (n === 0) return;
    return this.#sealAndSend(this.#out, this.#outSession, this.#outPeer, n, now, this.#tunPending);
  }

  /** Puts the read `o.read[0, total)` into slots from `n` on; returns the next free slot. */
  #takeSuper(o: Offload, total: number, n: number, now: number): number {
    const big = o.read, hdr = o.hdr, out = this.#out, drops = this.counters.drops;
    const len = total - VIRTIO_NET_HDR_LENGTH;
    if (len <= 0) {
      drops.malformed++;
      return n;
    }
    readVirtioNetHdr(big, 0, hdr);
    let k: number;
    if (hdr.gsoType === VIRTIO_NET_HDR_GSO_NONE) {
      if (len > this.#mtu) {
        drops.oversize++;
        return n;
      }
      // Locally sent packets come with a partial checksum: the far side's kernel needs it complete.
      if (
        (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0 &&
        !completeChecksum(big, VIRTIO_NET_HDR_LENGTH, len, hdr)
      ) {
        drops.malformed++;
        return n;
      }
      out.data.set(big.subarray(VIRTIO_NET_HDR_LENGTH, total), n * out.slotSize + DATA_HEADER_LENGTH);
      out.lens[n] = len;
      k = 1;
    } else {
      const r = gsoSplit(big, VIRTIO_NET_HDR_LENGTH, len, hdr, out.bufs, DATA_HEADER_LENGTH, out.lens, n);
      if (r === "no-room" && n > 0) {
        o.held = total;
        return n;
      }
      if (typeof r === "string") {
        if (r === "no-room") drops.oversize++;
        else drops.malformed++;
        return n;
      }
      k = r;
      if (out.lens[n] > this.#mtu) {
        drops.oversize += k;
        return n;
      }
    }
    // Segments of one super-packet share their addresses: one route lookup and one session for all.
    const host = this.#host, peer = host.peerForPacket(this.#outPlain[n], out.lens[n]);
    if (peer === null) {
      drops.no_route += k;
      return n;
    }
    const s = peer.sessions.sendSession(now);
    for (let j = n; j < n + k; j++) {
      if (s === null || !peer.hasEndpoint || s.prepareSeal(out.bufs[j], now) < 0) {
        peer.drops.no_route += n + k - j;
        host.noSession(peer);
        return j;
      }
      this.#outSession[j] = s;
      this.#outPeer[j] = peer;
      copyEndpoint(out.endpoints[j], peer.endpoint);
    }
    return n + k;
  }

  /** Seal slots [0, n) (headers already written) and send them; counts per peer. */
  #sealAndSend(
    batch: DatagramBatch,
    sessions: (Session | null)[],
    peers: (Peer | null)[],
    n: number,
    now: number,
    pending: Promise<unknown>[],
  ): void | Promise<void> {
    for (let i = 0; i < n; i++) {
      const len = batch.lens[i];
      const peer = peers[i]!;
      peer.txPackets++;
      peer.txBytes += len;
      dataSent(peer, len, now);
      if (traceEnabled) traceSealed(peer.name, batch.bufs[i], len);
      const r = sessions[i]!.sendKey.sealOne(batch.bufs[i], len);
      if (r instanceof Promise) pending.push(r);
      batch.lens[i] = len + DATA_OVERHEAD;
      sessions[i] = null;
      peers[i] = null;
    }
    if (pending.length > 0) return this.#sendWhenSealed(batch, n, pending);
    const sent = this.#udp.send(batch, n);
    if (sent instanceof Promise) return sent.then((k) => this.#countSent(n, k));
    this.#countSent(n, sent);
  }

  async #sendWhenSealed(batch: DatagramBatch, n: number, pending: Promise<unknown>[]): Promise<void> {
    await Promise.all(pending);
    pending.length = 0;
    let sent = this.#udp.send(batch, n);
    if (sent instanceof Promise) sent = await sent;
    this.#countSent(n, sent);
  }

  #countSent(n: number, sent: number): void {
    if (sent < n) this.counters.sendDropped += n - sent;
  }

  /** Check and open the `n` datagrams in `#in`, then deliver them. A Promise only with an async AEAD or socket. */
  #fromUdp(n: number): void | Promise<void> {
    const batch = this.#in, host = this.#host, drops = this.counters.drops;
    const sessions = this.#inSession, peers = this.#inPeer, counters = this.#inCounter;
    const now = this.#now();
    let opening = 0;
    for (let i = 0; i < n; i++) {
      const buf = batch.bufs[i], len = batch.lens[i];
      sessions[i] = null;
      const type = classify(buf, len);
      if (type !== MSG_DATA) {
        // Views, not copies: a copy (a new ArrayBuffer) cost 5-10 µs, which capped a junk flood's drain rate.
        if (typeof type === "number") host.handshake(buf.subarray(0, len), batch.endpoints[i]);
        else {
          drops.malformed++;
          if (traceEnabled) traceDropped(type, batch.endpoints[i]);
        }
        continue;
      }
      if (len > this.#mtu + DATA_OVERHEAD) {
        drops.oversize++;
        if (traceEnabled) traceDropped("oversize", batch.endpoints[i]);
        continue;
      }
      const index = readReceiverIndex(buf);
      const peer = host.peerForIndex(index);
      const s = peer?.sessions.find(index, now) ?? null;
      if (peer === undefined || s === null) {
        drops.auth++;
        if (traceEnabled) traceDropped("unknown-index", batch.endpoints[i]);
        continue;
      }
      // A peer whose endpoint is configured (a client's server) is heard from there only: anything else,
      // even a datagram that would authenticate (relayed by an on-path attacker), costs no AEAD work.
      if (peer.fixedEndpoint && !endpointEquals(peer.endpoint, batch.endpoints[i])) {
        peer.drops.wrong_source++;
        if (traceEnabled) traceDropped("wrong-source", batch.endpoints[i], peer.name);
        continue;
      }
      const c = s.checkReceive(buf, now);
      if (c < 0) {
        peer.drops.replay++;
        if (traceEnabled) traceDropped("replay", batch.endpoints[i], peer.name);
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
    if (opening === 0) return;
    if (this.#udpPending.length > 0) return this.#deliverWhenOpened(n, now);
    return this.#deliver(n, now);
  }

  async #deliverWhenOpened(n: number, now: number): Promise<void> {
    await Promise.all(this.#udpPending);
    this.#udpPending.length = 0;
    const r = this.#deliver(n, now);
    if (r !== undefined) await r;
  }

  /** Accept the opened datagrams of `#in`: write them to the TUN, or relay them to another client. */
  #deliver(n: number, now: number): void | Promise<void> {
    const batch = this.#in, host = this.#host;
    const sessions = this.#inSession, peers = this.#inPeer, counters = this.#inCounter;
    const offload = this.#offload;
    let relayed = 0, toTun = 0;
    for (let i = 0; i < n; i++) {
      const s = sessions[i];
      if (s === null) continue;
      sessions[i] = null;
      const peer = peers[i]!;
      peers[i] = null;
      const len = batch.lens[i];
      if (len < 0) {
        peer.drops.auth++;
        if (traceEnabled) traceDropped("auth", batch.endpoints[i], peer.name);
        continue;
      }
      if (!s.acceptCounter(counters[i])) {
        peer.drops.replay++;
        if (traceEnabled) traceDropped("replay", batch.endpoints[i], peer.name);
        continue;
      }
      host.authenticated(peer, s, now);
      authenticatedReceived(peer);
      if (!peer.hasEndpoint || !endpointEquals(peer.endpoint, batch.endpoints[i])) {
        const first = !peer.hasEndpoint;
        copyEndpoint(peer.endpoint, batch.endpoints[i]);
        peer.hasEndpoint = true;
        if (!first) host.roamed(peer, endpointToString(peer.endpoint));
      }
      peer.rxPackets++;
      peer.rxBytes += len;
      if (traceEnabled) traceOpened(peer.name, this.#inPlain[i], len, counters[i]);
      if (len === 0) continue; // keepalive
      const pkt = this.#inPlain[i];
      if (pkt[0] <= CONTROL_MAX_TYPE) {
        host.control(peer, pkt, len);
        continue;
      }
      dataReceived(peer, now);
      if (!host.sourceAllowed(peer, pkt, len)) {
        peer.drops[host.sourceDrop]++;
        if (traceEnabled) traceDropped("source-not-allowed", batch.endpoints[i], peer.name);
        continue;
      }
      const dest = host.peerForPacket(pkt, len);
      if (dest !== null && dest !== peer) {
        if (!this.relayClients) {
          peer.drops.relay++;
          if (traceEnabled) traceDropped("relay", batch.endpoints[i], peer.name);
          continue;
        }
        relayed = this.#queueRelay(dest, pkt, len, relayed, now);
        continue;
      }
      if (offload !== null) {
        offload.groBufs[toTun] = batch.bufs[i];
        offload.groLens[toTun] = len;
        offload.groSlot[toTun++] = i;
      } else if (!this.#tun.write(pkt, len)) this.counters.tunWriteErrors++;
    }
    if (toTun > 0) this.#writeCoalesced(offload!, toTun);
    if (relayed === 0) return;
    return this.#sealAndSend(
      this.#relay,
      this.#relaySession,
      this.#relayPeer,
      relayed,
      now,
      this.#udpPending,
    );
  }

  /** Coalesce the `count` opened packets gathered in `o` and write them, each behind its virtio_net_hdr. */
  #writeCoalesced(o: Offload, count: number): void {
    const w = groCoalesce(o.groBufs, o.groLens, count, DATA_HEADER_LENGTH, o.table, o.toWrite);
    for (let j = 0; j < w; j++) {
      const k = o.toWrite[j];
      if (!this.#tun.write(o.vnetViews[o.groSlot[k]], VIRTIO_NET_HDR_LENGTH + o.groLens[k])) {
        this.counters.tunWriteErrors++;
      }
    }
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

/** Buffers and state of the offload path, made once per tunnel. */
class Offload {
  /** One TUN read: virtio_net_hdr + packet or super-packet. */
  readonly read = new Uint8Array(SUPER_READ);
  readonly hdr: VirtioNetHdr = newVirtioNetHdr();
  /** Length of a read in `read` that waits for free slots, or 0. */
  held = 0;
  readonly table = new GroTable(UDP_BATCH);
  readonly toWrite = new Int32Array(UDP_BATCH);
  /** The packets for the TUN in one receive batch: their slot buffers, lengths and slot numbers. */
  readonly groBufs: Uint8Array[] = [];
  readonly groLens = new Int32Array(UDP_BATCH);
  readonly groSlot = new Int32Array(UDP_BATCH);
  /** Per receive slot: the view from its virtio_net_hdr on (just before the plaintext). */
  readonly vnetViews: Uint8Array[] = [];

  init(batch: DatagramBatch): void {
    for (const b of batch.bufs) {
      this.groBufs.push(b);
      this.vnetViews.push(b.subarray(DATA_HEADER_LENGTH - VIRTIO_NET_HDR_LENGTH));
    }
  }
}

/**
 * Lets the event loop run once and resumes: a MessageChannel round trip, ~4 µs, where `setTimeout(0)` would
 * sleep 1-2 ms; but only a timer turn polls finished async ops reliably (measured: X25519 import + derive +
 * SHA-256 beside a loop yielding every 2 ms: median 269 ms with MessageChannel turns, 0.6 ms with timers).
 */
class EventLoopTurn {
  readonly #channel = new MessageChannel();
  #resume: (() => void) | null = null;
  readonly #post = (resolve: () => void): void => {
    this.#resume = resolve;
    this.#channel.port2.postMessage(null);
  };

  constructor() {
    this.#channel.port1.onmessage = () => {
      const r = this.#resume;
      this.#resume = null;
      r?.();
    };
  }

  /** Resolves after the event loop had a turn; `timer`: a `setTimeout(0)` turn, which also polls async ops. */
  next(timer: boolean): Promise<void> {
    return timer ? new Promise((r) => setTimeout(r, 0)) : new Promise(this.#post);
  }

  /** Frees the channel (an open port would keep the process alive). */
  close(): void {
    this.#channel.port1.close();
    this.#channel.port2.close();
  }
}
