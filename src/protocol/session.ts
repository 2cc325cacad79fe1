/**
 * A `vpn/1` session: the two packet keys (send / receive), the send counter, the replay window,
 * the indices and the timers. Its per-packet methods allocate nothing with a synchronous backend,
 * and return a Promise only when the backend is asynchronous (`if (r instanceof Promise) await r`).
 *
 * `PeerSessions` holds the current, previous (grace) and unconfirmed next session of one peer.
 * Times (`now`) are monotonic milliseconds supplied by the caller (e.g. `performance.now()`).
 */
import type { AeadBackend, PacketAead } from "./aead.ts";
import { DATA_OVERHEAD, REJECT_AFTER_MESSAGES, REKEY_GRACE_MS } from "./constants.ts";
import type { SessionKeys } from "./keys.ts";
import { ReplayWindow } from "./replay_window.ts";
import { rekeyDue, sessionExpired } from "./timers.ts";
import { type DropReason, readCounter, writeDataHeader } from "./wire.ts";

/** `prepareSeal` / `seal`: the session may not send any more (too old or counters used up). */
export const REKEY_NEEDED = -1;
/** Receive result: the session is too old. */
export const DROP_EXPIRED = -2;
/** Receive result: counter already seen or left behind by the window. */
export const DROP_REPLAY = -3;
/** Receive result: counter at or beyond the limit. */
export const DROP_LIMIT = -4;
/** Receive result: tag check failed (or the datagram cannot hold a tag). */
export const DROP_AUTH = -5;

const DROP_NAMES: Record<number, DropReason> = {
  [DROP_EXPIRED]: "expired",
  [DROP_REPLAY]: "replay",
  [DROP_LIMIT]: "limit",
  [DROP_AUTH]: "auth",
};

/** The `DropReason` of a negative receive result code. */
export function dropReasonOf(code: number): DropReason {
  return DROP_NAMES[code] ?? "auth";
}

/** What a session is made from: a finished handshake. */
export interface SessionInit {
  /** Our index (peers address packets to it). */
  localIndex: number;
  /** The peer's index (goes into every packet we send). */
  remoteIndex: number;
  /** True on the side that sent the initiation; only it starts rekeys. */
  isInitiator: boolean;
  /** Session keys from the handshake; wiped once imported. */
  keys: SessionKeys;
  /** Monotonic ms of creation. */
  now: number;
}

/** One direction pair of keys with counters and replay state. */
export class Session {
  /** Next counter to send. */
  nextCounter = 0;
  private readonly window = new ReplayWindow(REJECT_AFTER_MESSAGES);

  /** Use `Session.create`. */
  constructor(
    readonly localIndex: number,
    readonly remoteIndex: number,
    readonly isInitiator: boolean,
    readonly createdAt: number,
    readonly sendKey: PacketAead,
    readonly recvKey: PacketAead,
  ) {}

  /** Keys a session with `backend` and wipes the raw keys. */
  static async create(backend: AeadBackend, init: SessionInit): Promise<Session> {
    const { initiatorToResponder: i2r, responderToInitiator: r2i } = init.keys;
    const send = await backend.createKey(init.isInitiator ? i2r : r2i);
    let recv: PacketAead;
    try {
      recv = await backend.createKey(init.isInitiator ? r2i : i2r);
    } catch (e) {
      send.dispose();
      throw e;
    }
    i2r.fill(0);
    r2i.fill(0);
    return new Session(init.localIndex, init.remoteIndex, init.isInitiator, init.now, send, recv);
  }

  /** True once the session is too old to send or receive. */
  isExpired(now: number): boolean {
    return sessionExpired(this.createdAt, now);
  }

  /** True when the initiator should start a new handshake (age or counters). */
  needsRekey(now: number): boolean {
    return rekeyDue(this.isInitiator, this.createdAt, this.nextCounter, this.window.highest, now);
  }

  /** Whether any packet authenticated on this session yet. */
  get hasReceived(): boolean {
    return this.window.highest >= 0;
  }

  /**
   * Takes the next counter and writes the data header into `buf[0, 13)`.
   * Returns the counter, or `REKEY_NEEDED` when this session may not send any more.
   */
  prepareSeal(buf: Uint8Array, now: number): number {
    const c = this.nextCounter;
    if (c >= REJECT_AFTER_MESSAGES || sessionExpired(this.createdAt, now)) return REKEY_NEEDED;
    this.nextCounter = c + 1;
    writeDataHeader(buf, this.remoteIndex, c);
    return c;
  }

  /**
   * Seals the `plaintextLength` bytes at `buf[13..]` into a datagram. Returns its length
   * (plaintext + 29), or `REKEY_NEEDED`. `buf` needs room for the 16-byte tag.
   */
  seal(buf: Uint8Array, plaintextLength: number, now: number): number | Promise<number> {
    if (this.prepareSeal(buf, now) < 0) return REKEY_NEEDED;
    const r = this.sendKey.sealOne(buf, plaintextLength);
    const total = plaintextLength + DATA_OVERHEAD;
    return r instanceof Promise ? r.then(() => total) : total;
  }

  /**
   * Pre-check of a received data datagram (caller checked its type and length): returns its counter,
   * or a negative `DROP_*` code. Cheap; run it before the tag check.
   */
  checkReceive(buf: Uint8Array, now: number): number {
    if (sessionExpired(this.createdAt, now)) return DROP_EXPIRED;
    const c = readCounter(buf);
    if (c < 0 || c >= REJECT_AFTER_MESSAGES) return DROP_LIMIT;
    return this.window.check(c) ? c : DROP_REPLAY;
  }

  /** Commits a counter after its packet authenticated; false if it was a replay after all (a duplicate in flight). */
  acceptCounter(counter: number): boolean {
    return this.window.accept(counter);
  }

  /** Frees both keys. */
  dispose(): void {
    this.sendKey.dispose();
    this.recvKey.dispose();
  }
}

/**
 * The sessions of one peer across rekeys. The initiator switches to a new session as soon as the
 * response arrives (it should then send a keepalive); the responder holds its new session as `next`
 * until a packet authenticates on it, because the client cannot decrypt it before the response lands.
 * The replaced session keeps decrypting for `REKEY_GRACE_MS`. Methods return the sessions they retired
 * (already disposed) so the caller can unmap their indices.
 */
export class PeerSessions {
  /** Used for sending. */
  current: Session | null = null;
  /** The replaced session, still decrypting until `previousUntil`. */
  previous: Session | null = null;
  /** Responder side: established but not yet confirmed by the peer. */
  next: Session | null = null;
  private previousUntil = -Infinity;

  /** Initiator: a handshake just completed. */
  installInitiated(s: Session, now: number): Session[] {
    return this.promote(s, now);
  }

  /** Responder: a handshake was answered; `s` waits for the peer's first packet. */
  installResponded(s: Session): Session[] {
    const retired: Session[] = [];
    if (this.next !== null) retired.push(this.next);
    this.next = s;
    return this.dispose(retired);
  }

  /** Call after a packet authenticated on `s`: confirms a pending `next`. */
  confirm(s: Session, now: number): Session[] {
    return s === this.next ? this.promote(s, now) : [];
  }

  private promote(s: Session, now: number): Session[] {
    const retired: Session[] = [];
    if (this.previous !== null) retired.push(this.previous);
    if (this.next !== null && this.next !== s) retired.push(this.next);
    this.previous = this.current;
    this.previousUntil = now + REKEY_GRACE_MS;
    this.current = s;
    this.next = null;
    return this.dispose(retired);
  }

  /** The session that owns `localIndex`, if it may still receive. */
  find(localIndex: number, now: number): Session | null {
    if (this.current !== null && this.current.localIndex === localIndex) return this.current;
    if (this.next !== null && this.next.localIndex === localIndex) return this.next;
    if (this.previous !== null && this.previous.localIndex === localIndex && now < this.previousUntil) {
      return this.previous;
    }
    return null;
  }

  /** The session to send on, or null (none, or expired: the initiator must handshake). */
  sendSession(now: number): Session | null {
    const s = this.current;
    return s !== null && !s.isExpired(now) ? s : null;
  }

  /** Retires the previous session after its grace period and any expired session. */
  expire(now: number): Session[] {
    const retired: Session[] = [];
    if (this.previous !== null && (now >= this.previousUntil || this.previous.isExpired(now))) {
      retired.push(this.previous);
      this.previous = null;
    }
    if (this.current !== null && this.current.isExpired(now)) {
      retired.push(this.current);
      this.current = null;
    }
    if (this.next !== null && this.next.isExpired(now)) {
      retired.push(this.next);
      this.next = null;
    }
    return this.dispose(retired);
  }

  /** Every live session. */
  all(): Session[] {
    return [this.current, this.previous, this.next].filter((s): s is Session => s !== null);
  }

  /** Retires everything (peer removed or process stopping). */
  clear(): Session[] {
    const all = this.all();
    this.current = this.previous = this.next = null;
    return this.dispose(all);
  }

  private dispose(sessions: Session[]): Session[] {
    for (const s of sessions) s.dispose();
    return sessions;
  }
}
