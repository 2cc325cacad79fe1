/**
 * Rotating wire key ids. An initiation names its key with SipHash(key's id key, period), period =
 * floor(the initiation's timestamp / KEY_ID_PERIOD_MS), so an observer cannot link one peer's handshakes
 * across periods, while the responder still finds the key with one Map lookup: it keeps the ids of the
 * previous, current and next period of every configured key, and rebuilds them when the period turns.
 * A client whose clock is off by less than one period (120 s) always lands in that table.
 */
import { KEY_ID_LENGTH, KEY_ID_PERIOD_MS } from "./constants.ts";
import type { HandshakeKey } from "./keys.ts";
import { sipHashInto } from "./siphash.ts";
import { readU32, writeU64 } from "./wire.ts";

const periodBytes = new Uint8Array(8);

/** The key id period of wall-clock time `nowMs`. */
export function keyIdPeriod(nowMs: number): number {
  return Math.floor(nowMs / KEY_ID_PERIOD_MS);
}

/** Writes `key`'s wire key id for `period` (8 bytes) at `out[off]`. */
export function writeWireKeyId(key: HandshakeKey, period: number, out: Uint8Array, off: number): void {
  writeU64(periodBytes, 0, period);
  sipHashInto(key.sip.keyId, periodBytes, 0, 8, out, off);
}

/** A 53-bit Map key from the first 53 bits of an 8-byte id; the other 11 are compared on a hit. */
function slot(hi: number, lo: number): number {
  return hi * 0x200000 + (lo >>> 11);
}

interface Entry {
  readonly key: HandshakeKey;
  readonly lo: number;
}

/** Wire key id -> key, for the previous, current and next period. */
export class KeyIdTable {
  readonly #byId = new Map<number, Entry>();
  #keys: readonly HandshakeKey[] = [];
  #period = -1;
  readonly #id = new Uint8Array(KEY_ID_LENGTH);

  /** Installs the configured keys (at start and on reload). */
  setKeys(keys: readonly HandshakeKey[], nowMs: number): void {
    this.#keys = [...keys];
    this.#build(keyIdPeriod(nowMs));
  }

  /** The key whose id is at `d[off]` in a period next to now's, or undefined. One Map get normally. */
  lookup(d: Uint8Array, off: number, nowMs: number): HandshakeKey | undefined {
    const p = keyIdPeriod(nowMs);
    if (p !== this.#period) this.#build(p);
    const hi = readU32(d, off), lo = readU32(d, off + 4);
    const e = this.#byId.get(slot(hi, lo));
    return e !== undefined && e.lo === lo ? e.key : undefined;
  }

  #build(period: number): void {
    this.#period = period;
    this.#byId.clear();
    for (const key of this.#keys) {
      for (let p = period - 1; p <= period + 1; p++) {
        writeWireKeyId(key, p, this.#id, 0);
        const hi = readU32(this.#id, 0), lo = readU32(this.#id, 4);
        this.#byId.set(slot(hi, lo), { key, lo });
      }
    }
  }
}
