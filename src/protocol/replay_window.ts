/**
 * Sliding replay window for data counters after RFC 6479: a ring of 32-bit blocks, so advancing the
 * window clears whole blocks instead of shifting a bitmap. `check` is a read-only pre-filter run
 * before the (costly) tag check; `accept` commits a counter once its packet authenticated.
 *
 * Counters are JS numbers below `limit` (< 2^53). `c & 31` and `block & (BLOCKS - 1)` are exact for
 * any safe integer because ToInt32 keeps the low 32 bits and both masks divide 2^32.
 */
import { REJECT_AFTER_MESSAGES, REPLAY_WINDOW_BLOCKS, REPLAY_WINDOW_SIZE } from "./constants.ts";

const BLOCK_MASK = REPLAY_WINDOW_BLOCKS - 1;

/** Replay window of one receiving session; allocation-free after construction. */
export class ReplayWindow {
  private readonly bitmap = new Uint32Array(REPLAY_WINDOW_BLOCKS);
  private top = -1;

  /** @param limit counters at or above it are always rejected */
  constructor(readonly limit: number = REJECT_AFTER_MESSAGES) {}

  /** Highest accepted counter, or -1 before the first. */
  get highest(): number {
    return this.top;
  }

  /** True when `counter` could be accepted: below the limit, inside the window and not seen yet. */
  check(counter: number): boolean {
    if (!(counter >= 0 && counter < this.limit)) return false;
    if (counter > this.top) return true;
    if (this.top - counter >= REPLAY_WINDOW_SIZE) return false;
    const block = Math.floor(counter / 32) & BLOCK_MASK;
    return (this.bitmap[block] & (1 << (counter & 31))) === 0;
  }

  /** Marks `counter` as received; call only after its packet authenticated. False if `check` fails. */
  accept(counter: number): boolean {
    if (!this.check(counter)) return false;
    if (counter > this.top) {
      const topBlock = Math.floor(this.top / 32);
      const newBlock = Math.floor(counter / 32);
      let clear = newBlock - topBlock;
      if (clear > REPLAY_WINDOW_BLOCKS) clear = REPLAY_WINDOW_BLOCKS;
      for (let i = 1; i <= clear; i++) this.bitmap[(topBlock + i) & BLOCK_MASK] = 0;
      this.top = counter;
    }
    this.bitmap[Math.floor(counter / 32) & BLOCK_MASK] |= 1 << (counter & 31);
    return true;
  }

  /** Forgets everything (a new session starts at counter 0). */
  reset(): void {
    this.bitmap.fill(0);
    this.top = -1;
  }
}
