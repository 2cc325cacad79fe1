/**
 * MAC1, MAC2 and cookie replies, after WireGuard's cookie.go but on SipHash-2-4 so every check is
 * synchronous and costs well under a microsecond.
 *
 * MAC1 (key holders only) lets the responder refuse junk that names a real key id before any queue or AEAD.
 * Under load the responder answers an initiation without a valid MAC2 with a cookie reply instead of
 * working on it: the cookie is a keyed hash of the initiation's source address and port under a secret
 * that rotates every two minutes, sealed under a key only holders of the configured key can derive, and
 * bound to the initiation's MAC1. The initiator resends the same initiation with MAC2 = SipHash(cookie, ..):
 * one extra round trip, and only someone who receives datagrams at that source and holds the key can do it.
 */
import {
  COOKIE_LENGTH,
  COOKIE_NONCE_LENGTH,
  COOKIE_REPLY_LENGTH,
  COOKIE_SECRET_ROTATION_MS,
  MAC_LENGTH,
} from "./constants.ts";
import type { HandshakeKey } from "./keys.ts";
import { SIP_KEY_LENGTH, sipHashInto, sipHashMatches, type SipKey, sipKey } from "./siphash.ts";
import { COOKIE_REPLY, type DropReason, INITIATION, writeCookieReplyHeader } from "./wire.ts";

/** Endpoint bytes a cookie covers: 16-byte address and 2-byte port. */
const ENDPOINT_BYTES = 18;

/** True when the initiation in `d` carries `key`'s MAC1. */
export function mac1Valid(key: HandshakeKey, d: Uint8Array): boolean {
  return sipHashMatches(key.sip.mac1, d, 0, INITIATION.mac1, d, INITIATION.mac1);
}

/** Writes `key`'s MAC1 into the initiation `d`. */
export function writeMac1(key: HandshakeKey, d: Uint8Array): void {
  sipHashInto(key.sip.mac1, d, 0, INITIATION.mac1, d, INITIATION.mac1);
}

/** Writes MAC2 under `cookie` into the initiation `d`, or zeros without a cookie. */
export function writeMac2(cookie: SipKey | null, d: Uint8Array): void {
  if (cookie === null) d.fill(0, INITIATION.mac2, INITIATION.mac2 + MAC_LENGTH);
  else sipHashInto(cookie, d, 0, INITIATION.mac2, d, INITIATION.mac2);
}

/** Two SipHash keys: a cookie is their two hashes of the source, 16 bytes. */
interface CookieSecret {
  a: SipKey;
  b: SipKey;
}

function randomSecret(): CookieSecret {
  const r = crypto.getRandomValues(new Uint8Array(2 * SIP_KEY_LENGTH));
  const s = { a: sipKey(r, 0), b: sipKey(r, SIP_KEY_LENGTH) };
  r.fill(0);
  return s;
}

/** The responder's side: checks MAC2 for a source and writes cookie replies. Not re-entrant (scratch buffers). */
export class CookieChecker {
  #current = randomSecret();
  #previous = randomSecret();
  #rotatedAt: number;
  readonly #cookie = new Uint8Array(COOKIE_LENGTH);
  readonly #cookieKey = new Uint32Array(4);
  readonly #block = new Uint8Array(COOKIE_NONCE_LENGTH + 1);
  readonly #tagInput = new Uint8Array(COOKIE_REPLY.tag + MAC_LENGTH);

  /** `nowMs`: a monotonic clock (ms) that times the secret's rotation. */
  constructor(nowMs: number) {
    this.#rotatedAt = nowMs;
  }

  #rotate(nowMs: number): void {
    if (nowMs - this.#rotatedAt < COOKIE_SECRET_ROTATION_MS) return;
    // After a long idle both secrets are stale: a cookie older than two rotations is never valid.
    this.#previous = nowMs - this.#rotatedAt < 2 * COOKIE_SECRET_ROTATION_MS ? this.#current : randomSecret();
    this.#current = randomSecret();
    this.#rotatedAt = nowMs;
  }

  #cookieFor(s: CookieSecret, from: Uint8Array): SipKey {
    sipHashInto(s.a, from, 0, ENDPOINT_BYTES, this.#cookie, 0);
    sipHashInto(s.b, from, 0, ENDPOINT_BYTES, this.#cookie, 8);
    const k = this.#cookieKey, c = this.#cookie;
    for (let i = 0; i < 4; i++) {
      k[i] = (c[4 * i] | (c[4 * i + 1] << 8) | (c[4 * i + 2] << 16) | (c[4 * i + 3] << 24)) >>> 0;
    }
    return k;
  }

  /** True when the initiation `d` carries a MAC2 under the cookie of `from` (18-byte endpoint). */
  mac2Valid(d: Uint8Array, from: Uint8Array, nowMs: number): boolean {
    this.#rotate(nowMs);
    if (sipHashMatches(this.#cookieFor(this.#current, from), d, 0, INITIATION.mac2, d, INITIATION.mac2)) {
      return true;
    }
    return sipHashMatches(this.#cookieFor(this.#previous, from), d, 0, INITIATION.mac2, d, INITIATION.mac2);
  }

  /**
   * Writes into `out` (at least COOKIE_REPLY_LENGTH bytes) the cookie reply to the initiation `d`, which
   * passed `key`'s MAC1 and came from `from`. Returns the reply's length.
   */
  writeReply(key: HandshakeKey, d: Uint8Array, from: Uint8Array, nowMs: number, out: Uint8Array): number {
    this.#rotate(nowMs);
    this.#cookieFor(this.#current, from);
    writeCookieReplyHeader(out, (d[2] << 24 | d[3] << 16 | d[4] << 8 | d[5]) >>> 0);
    crypto.getRandomValues(out.subarray(COOKIE_REPLY.nonce, COOKIE_REPLY.sealed));
    keystream(key, out, this.#block, out, COOKIE_REPLY.sealed);
    for (let i = 0; i < COOKIE_LENGTH; i++) out[COOKIE_REPLY.sealed + i] ^= this.#cookie[i];
    this.#cookie.fill(0);
    writeTag(key, out, d.subarray(INITIATION.mac1, INITIATION.mac2), this.#tagInput, out);
    return COOKIE_REPLY_LENGTH;
  }
}

/** The 16-byte keystream for the nonce in `reply`, written at `out[off]`. */
function keystream(
  key: HandshakeKey,
  reply: Uint8Array,
  block: Uint8Array,
  out: Uint8Array,
  off: number,
): void {
  block.set(reply.subarray(COOKIE_REPLY.nonce, COOKIE_REPLY.sealed));
  block[COOKIE_NONCE_LENGTH] = 0;
  sipHashInto(key.sip.cookieSeal, block, 0, block.length, out, off);
  block[COOKIE_NONCE_LENGTH] = 1;
  sipHashInto(key.sip.cookieSeal, block, 0, block.length, out, off + 8);
}

function tagInput(reply: Uint8Array, mac1: Uint8Array, scratch: Uint8Array): Uint8Array {
  scratch.set(reply.subarray(0, COOKIE_REPLY.tag));
  scratch.set(mac1, COOKIE_REPLY.tag);
  return scratch;
}

function writeTag(
  key: HandshakeKey,
  reply: Uint8Array,
  mac1: Uint8Array,
  scratch: Uint8Array,
  out: Uint8Array,
) {
  sipHashInto(key.sip.cookieTag, tagInput(reply, mac1, scratch), 0, scratch.length, out, COOKIE_REPLY.tag);
}

/**
 * The initiator's side: the cookie in `reply`, a cookie reply to our initiation `initiation` under `key`,
 * as the SipHash key of MAC2; "auth" when its tag does not check (forged, or for another initiation).
 */
export function openCookieReply(
  key: HandshakeKey,
  reply: Uint8Array,
  initiation: Uint8Array,
): SipKey | DropReason {
  const scratch = new Uint8Array(COOKIE_REPLY.tag + MAC_LENGTH);
  const input = tagInput(reply, initiation.subarray(INITIATION.mac1, INITIATION.mac2), scratch);
  if (!sipHashMatches(key.sip.cookieTag, input, 0, input.length, reply, COOKIE_REPLY.tag)) return "auth";
  const cookie = new Uint8Array(COOKIE_LENGTH);
  keystream(key, reply, new Uint8Array(COOKIE_NONCE_LENGTH + 1), cookie, 0);
  for (let i = 0; i < COOKIE_LENGTH; i++) cookie[i] ^= reply[COOKIE_REPLY.sealed + i];
  const k = sipKey(cookie);
  cookie.fill(0);
  return k;
}
