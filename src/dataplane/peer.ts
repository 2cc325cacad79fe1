/** One remote end of the tunnel: who it is, where it is, its sessions and its counters. */
import { PeerSessions } from "../protocol/session.ts";
import { ENDPOINT_BYTES, endpointToString } from "../net/endpoint.ts";
import { type DropCounts, type PeerStatus, zeroDrops } from "../ops/status_report.ts";

/** A peer as the packet loops see it. Fields are plain numbers so the hot path allocates nothing. */
export class Peer {
  /** Name for logs and status: the configured name, or the overlay address of a dynamic client. */
  name: string;
  /** Overlay IPv4 address as an unsigned 32-bit number (0 = none yet). */
  address4 = 0;
  /** Overlay IPv6 address (null = none). */
  address6: Uint8Array | null = null;
  /** Where its datagrams come from and ours go (18-byte endpoint). */
  readonly endpoint = new Uint8Array(ENDPOINT_BYTES);
  /** False until the first authenticated datagram or a configured endpoint. */
  hasEndpoint = false;
  /**
   * The endpoint comes from configuration only (a client's server): datagrams from anywhere else are dropped
   * as `wrong_source` and never move it. False: the peer roams (the server follows its clients).
   */
  fixedEndpoint = false;
  /** Current, previous (grace) and unconfirmed next sessions. */
  readonly sessions = new PeerSessions();
  /** Wall-clock ms of the last completed handshake (0 = never). */
  lastHandshakeWallMs = 0;
  /** Monotonic ms of the last datagram sent to it. */
  lastSentAt = -Infinity;
  /** Monotonic ms of the first data packet received since we last sent anything (-1 = none): a passive
   * keepalive answers it after PASSIVE_KEEPALIVE_MS, so the peer's unanswered-data check stays quiet. */
  dataReceivedSince = -1;
  /** Monotonic ms of the first data packet sent since the peer was last heard from (-1 = none). */
  unansweredSince = -1;
  /** True while it has a usable session (between "peer up" and "peer down"). */
  up = false;
  rxBytes = 0;
  txBytes = 0;
  rxPackets = 0;
  txPackets = 0;
  /** Drops charged to this peer. */
  readonly drops: DropCounts = zeroDrops();

  constructor(name: string) {
    this.name = name;
  }
}

/** A peer's line in `vpn status`. */
export function peerStatus(p: Peer, address: string | null): PeerStatus {
  return {
    name: p.name,
    address,
    endpoint: p.hasEndpoint ? endpointToString(p.endpoint) : null,
    last_handshake_s: p.lastHandshakeWallMs ? (Date.now() - p.lastHandshakeWallMs) / 1000 : null,
    rx_bytes: p.rxBytes,
    tx_bytes: p.txBytes,
    rx_packets: p.rxPackets,
    tx_packets: p.txPackets,
    drops: { ...p.drops },
  };
}
