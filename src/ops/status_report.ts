/** The status snapshot a running instance reports over its control socket (`vpn status --json`). */

/** Packets dropped, by reason. */
export interface DropCounts {
  /** Did not authenticate (bad tag, unknown index, wrong key). */
  auth: number;
  /** Counter already seen or older than the replay window. */
  replay: number;
  /** No peer holds the destination address (or the source is not the peer's). */
  no_route: number;
  /** Larger than the tunnel MTU. */
  oversize: number;
  /** Too short or of an unknown type. */
  malformed: number;
  /** Client-to-client packets the server does not relay (`client_to_client = false`). */
  relay: number;
  /** Handshake work refused under load or over a rate limit (per source, per key), or answered with a cookie. */
  busy: number;
  /** Authenticated or not, from an address other than the server's configured one (a client's only peer). */
  wrong_source: number;
  /** An inner packet whose source is outside the overlay network and the routes the client was given. */
  source: number;
}

/** One peer's line in the status. */
export interface PeerStatus {
  name: string;
  address: string | null;
  endpoint: string | null;
  /** Seconds since the last completed handshake, null when none. */
  last_handshake_s: number | null;
  rx_bytes: number;
  tx_bytes: number;
  rx_packets: number;
  tx_packets: number;
  drops: DropCounts;
}

/** Packets the data path lost to the host, not to a peer: an operator's signal of an overloaded or broken host. */
export interface DataPathErrors {
  /** Packets opened and accepted that the TUN device refused (device down, bad packet, queue full). */
  tun_write: number;
  /** Sealed datagrams the socket could not take (send buffer full). */
  send_dropped: number;
  /** Datagrams the kernel refused to send (unreachable, wrong address family...). */
  send_refused: number;
  /** Received datagrams dropped because they were larger than a packet slot. */
  truncated: number;
}

/** The whole snapshot; `version` changes only when a field changes meaning or goes away. */
export interface StatusReport {
  version: 1;
  role: "server" | "client";
  interface: string;
  /** The instance's overlay address; null on a client before its first handshake. */
  address: string | null;
  listen: string | null;
  uptime_s: number;
  crypto: string;
  udp: string;
  peers: PeerStatus[];
  /** Drops not charged to any peer (unknown senders, no route). */
  drops: DropCounts;
  /** Packets lost between the data path and the host. */
  errors: DataPathErrors;
}

/** All-zero drop counters. */
export function zeroDrops(): DropCounts {
  return {
    auth: 0,
    replay: 0,
    no_route: 0,
    oversize: 0,
    malformed: 0,
    relay: 0,
    busy: 0,
    wrong_source: 0,
    source: 0,
  };
}

/** The status counter a protocol drop reason is counted under. */
export function dropCategory(reason: string): keyof DropCounts {
  switch (reason) {
    case "auth":
    case "unknown-key":
    case "unknown-index":
    case "weak-key":
      return "auth";
    case "replay":
    case "stale":
    case "limit":
    case "expired":
    case "future":
      return "replay";
    case "busy":
      return "busy";
    case "long":
      return "oversize";
    default:
      return "malformed";
  }
}
