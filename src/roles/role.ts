/**
 * What the runtime hands a role (server or client) and what it asks of it. The runtime opens the pieces
 * first, then constructs the role with them, then runs it; tests build the same pieces from in-memory fakes.
 */
import type { AeadBackend } from "../protocol/aead.ts";
import type { Cleanup } from "../host/cleanup.ts";
import type { DatagramSocket } from "../dataplane/datagram.ts";
import type { HostNetwork } from "../host/host_network.ts";
import type { PeerStatus, StatusReport } from "../ops/status_report.ts";
import type { TunnelCounters } from "../dataplane/tunnel.ts";
import type { Tun } from "../dataplane/tun.ts";
import type { HandshakeStats } from "../ops/handshake_stats.ts";

/** The opened pieces a role runs on. */
export interface RolePieces {
  readonly tun: Tun;
  readonly udp: DatagramSocket;
  readonly aead: AeadBackend;
  /** Where host changes register their undo. */
  readonly cleanup: Cleanup;
  /** Interface addresses and MTU. */
  readonly network: HostNetwork;
  /** Handshakes completed and refused, for the metrics. */
  readonly handshakes: HandshakeStats;
  /** Monotonic ms for every timer (`performance.now` in production, a fake clock in tests). */
  readonly now: () => number;
  /** `now()` when the pieces were opened, for the uptime. */
  readonly startedAt: number;
}

/** A server or client as the runtime drives it. */
export interface Role {
  /** Give the TUN device its addresses and MTU (before the loops run). */
  configure(): void;
  /** Log the start line and begin (the client sends its first initiation). */
  started(): void;
  /** The packet loops, until `stop()`. */
  run(): Promise<void>;
  /** Ends the loops at their next wake-up. */
  stop(): void;
  /** The timers; called once a second. */
  tick(): void;
  /** The snapshot `vpn status` shows. */
  status(): StatusReport;
}

/** A status snapshot with the fields every role shares filled in from its pieces. */
export function roleStatus(
  p: RolePieces,
  role: "server" | "client",
  address: string | null,
  listen: string | null,
  peers: PeerStatus[],
  counters: TunnelCounters,
): StatusReport {
  return {
    version: 1,
    role,
    interface: p.tun.name,
    address,
    listen,
    uptime_s: Math.round((p.now() - p.startedAt) / 100) / 10,
    crypto: p.aead.kind,
    udp: p.udp.kind,
    peers,
    drops: { ...counters.drops },
    errors: {
      tun_write: counters.tunWriteErrors,
      send_dropped: counters.sendDropped,
      send_refused: p.udp.sendErrors,
      truncated: p.udp.truncated,
    },
  };
}
