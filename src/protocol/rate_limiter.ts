/**
 * Token buckets for handshakes: one per key id (`TokenBucket`) and a fixed-size table of them indexed by
 * a keyed hash of the source address (`SourceRateLimiter`, after boringtun's rate limiter and WireGuard's
 * ratelimiter.go). The table never grows: sources that hash to one slot share its bucket, and the hash
 * key is secret and random, so nobody can aim a flood at a chosen source's slot.
 */
import { SIP_KEY_LENGTH, sipHash32, sipKey } from "./siphash.ts";

/** A token bucket: `rate` tokens per second up to `burst`; starts full. */
export class TokenBucket {
  #tokens: number;
  #at = -Infinity;
  constructor(private readonly rate: number, private readonly burst: number) {
    this.#tokens = burst;
  }

  /** Takes one token at monotonic time `nowMs`; false when none is left. */
  take(nowMs: number): boolean {
    if (nowMs > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((nowMs - this.#at) * this.rate) / 1000);
      this.#at = nowMs;
    }
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}

/** Per-source buckets in `slots` fixed slots (two Float64Arrays: 16 bytes a slot). */
export class SourceRateLimiter {
  readonly #tokens: Float64Array;
  readonly #at: Float64Array;
  readonly #key = sipKey(crypto.getRandomValues(new Uint8Array(SIP_KEY_LENGTH)));
  readonly #mask: number;

  /** `slots` a power of two; `rate` tokens a second up to `burst` per slot. */
  constructor(slots: number, private readonly rate: number, private readonly burst: number) {
    if (!Number.isInteger(Math.log2(slots))) {
      throw new RangeError(`slots must be a power of two, got ${slots}`);
    }
    this.#tokens = new Float64Array(slots).fill(burst);
    this.#at = new Float64Array(slots);
    this.#mask = slots - 1;
  }

  /**
   * Takes a token for the source of endpoint `from` (18 bytes; the port is ignored, and an IPv6 source
   * counts by its /64, since one host commonly holds a whole /64) at monotonic time `nowMs`.
   */
  allow(from: Uint8Array, nowMs: number): boolean {
    let v4 = from[10] === 0xff && from[11] === 0xff;
    for (let j = 0; v4 && j < 10; j++) v4 = from[j] === 0;
    const i = sipHash32(this.#key, from, v4 ? 12 : 0, v4 ? 16 : 8) & this.#mask;
    const t = Math.min(this.burst, this.#tokens[i] + ((nowMs - this.#at[i]) * this.rate) / 1000);
    this.#at[i] = nowMs;
    if (t < 1) {
      this.#tokens[i] = t;
      return false;
    }
    this.#tokens[i] = t - 1;
    return true;
  }
}
