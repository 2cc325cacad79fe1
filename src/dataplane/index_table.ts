/**
 * The server's local session indexes: each live session (and each handshake being answered) owns one
 * random 32-bit index, the receiver index of the data packets sent to it. As in wireguard-go's
 * device/indextable.go, a fresh index is drawn at random and redrawn on collision, so an index reveals
 * nothing about how many sessions exist, and one index never names two sessions.
 */

import { randomIndex } from "../protocol/handshake.ts";

/** Draws a random 32-bit index; injectable so tests can force collisions. */
export type IndexSource = () => number;

/** Index -> owner; lookups allocate nothing. */
export class IndexTable<T> {
  readonly #owners = new Map<number, T>();
  readonly #draw: IndexSource;

  constructor(draw: IndexSource = randomIndex) {
    this.#draw = draw;
  }

  /** A fresh index nobody holds, reserved for `owner` at once (so two concurrent handshakes never share one). */
  allocate(owner: T): number {
    for (;;) {
      const index = this.#draw() >>> 0;
      if (!this.#owners.has(index)) {
        this.#owners.set(index, owner);
        return index;
      }
    }
  }

  /** The owner of `index`, if any (the data path's per-packet lookup). */
  get(index: number): T | undefined {
    return this.#owners.get(index);
  }

  /** Frees `index` if `owner` holds it; false when it is free or held by someone else. */
  release(index: number, owner: T): boolean {
    if (this.#owners.get(index) !== owner) return false;
    this.#owners.delete(index);
    return true;
  }

  /** Indexes in use. */
  get size(): number {
    return this.#owners.size;
  }
}
