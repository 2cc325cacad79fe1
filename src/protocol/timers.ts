/**
 * The peer timer rules of `vpn/1` in one place, in the spirit of wireguard-go's `timers.go` and boringtun's
 * `update_timers`: the data path records events (`dataSent`, `authenticatedReceived`, `dataReceived`), and once
 * a second the roles ask what is due (`initiatorAction`, `responderAction`). Pure: state and `now` (monotonic
 * ms) in, decisions out; no clock, no I/O, so every rule is testable with a fake clock.
 */
import {
  PASSIVE_KEEPALIVE_MS,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_RETRY_MAX_MS,
  UNANSWERED_TIMEOUT_MS,
} from "./constants.ts";

/** The per-peer times the data path keeps (plain numbers: updating them allocates nothing). */
export interface PeerTimes {
  /** Monotonic ms of the last datagram sent to the peer. */
  lastSentAt: number;
  /** Monotonic ms of the first data packet received since we last sent anything (-1 = none). */
  dataReceivedSince: number;
  /** Monotonic ms of the first data packet sent since the peer was last heard from (-1 = none). */
  unansweredSince: number;
}

/** A datagram carrying `len` bytes of inner packet went to the peer (0 for keepalives and control messages). */
export function dataSent(p: PeerTimes, len: number, now: number): void {
  p.lastSentAt = now;
  p.dataReceivedSince = -1;
  if (len > 0 && p.unansweredSince < 0) p.unansweredSince = now;
}

/** A datagram from the peer authenticated (data or keepalive): it is alive. */
export function authenticatedReceived(p: PeerTimes): void {
  p.unansweredSince = -1;
}

/** An authenticated datagram carried a packet (not a keepalive): it wants to hear back. */
export function dataReceived(p: PeerTimes, now: number): void {
  if (p.dataReceivedSince < 0) p.dataReceivedSince = now;
}

/** A session this old is refused for sending and receiving (180 s). */
export function sessionExpired(createdAt: number, now: number): boolean {
  return now - createdAt >= REJECT_AFTER_TIME_MS;
}

/**
 * The initiator starts a new handshake when its session is 120 s old or either direction used
 * REKEY_AFTER_MESSAGES counters (`highestReceived` is -1 before any packet). The responder never does.
 */
export function rekeyDue(
  isInitiator: boolean,
  createdAt: number,
  nextCounter: number,
  highestReceived: number,
  now: number,
): boolean {
  return isInitiator && (now - createdAt >= REKEY_AFTER_TIME_MS ||
    nextCounter >= REKEY_AFTER_MESSAGES || highestReceived >= REKEY_AFTER_MESSAGES);
}

/** Data came in and nothing went out for 10 s: answer with a keepalive so the peer knows we are alive. */
export function passiveKeepaliveDue(p: PeerTimes, now: number): boolean {
  return p.dataReceivedSince >= 0 && now - p.dataReceivedSince >= PASSIVE_KEEPALIVE_MS;
}

/** Data went out and nothing authenticated came back for 15 s: the peer may have restarted. */
export function unansweredExpired(p: PeerTimes, now: number): boolean {
  return p.unansweredSince >= 0 && now - p.unansweredSince >= UNANSWERED_TIMEOUT_MS;
}

/** With more than one server, handshakes unanswered for 15 s since the first attempt move on to the next server. */
export function failoverDue(tryingSince: number, now: number): boolean {
  return now - tryingSince >= UNANSWERED_TIMEOUT_MS;
}

/** The wait before the next handshake attempt: doubled after each unanswered one (5, 10, 20, 30, 30 s...). */
export function nextRetryMs(retryMs: number): number {
  return Math.min(retryMs * 2, REKEY_RETRY_MAX_MS);
}

/** The initiator's handshake state the timers look at. */
export interface InitiatorTimes {
  /** An initiation is out and not yet answered. */
  readonly pending: boolean;
  /** Monotonic ms the last initiation was started. */
  readonly pendingSentAt: number;
  /** Current wait before retrying an unanswered initiation. */
  readonly retryMs: number;
  /** Keepalive interval, ms (0 = only passive keepalives). */
  readonly keepaliveMs: number;
}

/** The session the initiator sends on, as far as the timers care. */
export interface RekeyingSession {
  needsRekey(now: number): boolean;
}

/**
 * What the initiator (client) must do now, checked in this order:
 * - "retry": an initiation went unanswered for `retryMs` (the caller then grows `retryMs` with `nextRetryMs`,
 *   or moves to the next server when `failoverDue`);
 * - "none" while an initiation is pending;
 * - "no-session": nothing to send on (never had one, or it expired at 180 s): handshake;
 * - "rekey": the session reached 120 s (or its counter limit): handshake;
 * - "unanswered": data sent 15 s ago got no authenticated reply: handshake;
 * - "keepalive": the keepalive interval passed since the last send, or data came in unanswered for 10 s.
 */
export type InitiatorAction = "none" | "retry" | "no-session" | "rekey" | "unanswered" | "keepalive";

/** The initiator's decision once a tick; see `InitiatorAction`. `session` is the send session or null. */
export function initiatorAction(
  t: InitiatorTimes,
  p: PeerTimes,
  session: RekeyingSession | null,
  now: number,
): InitiatorAction {
  if (t.pending) return now - t.pendingSentAt >= t.retryMs ? "retry" : "none";
  if (session === null) return "no-session";
  if (session.needsRekey(now)) return "rekey";
  if (unansweredExpired(p, now)) return "unanswered";
  if ((t.keepaliveMs > 0 && now - p.lastSentAt >= t.keepaliveMs) || passiveKeepaliveDue(p, now)) {
    return "keepalive";
  }
  return "none";
}

/** The responder's (server's) decision for one peer once a tick: only the passive keepalive, while live. */
export function responderAction(live: boolean, p: PeerTimes, now: number): "none" | "keepalive" {
  return live && passiveKeepaliveDue(p, now) ? "keepalive" : "none";
}
