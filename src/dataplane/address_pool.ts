/**
 * The free list of dynamic IPv4 addresses: hands out the lowest free host address of a subnet in
 * O(log n), where a scan of the subnet cost up to 2^20 steps per handshake.
 *
 * Addresses at or above a high-water mark have never been handed out; freed addresses below it wait in a
 * min-heap. Whether an address is really free is the caller's `taken` predicate (the ownership table), so
 * an address taken out of order (a pinned peer, a client asking for a specific address) is skipped once,
 * lazily: the mark steps over it, or it leaves the heap. Memory stays proportional to the most addresses
 * ever in use at once, whatever the subnet's size. Measured (bench/address_table_bench.ts, a /8 whose lowest
 * 100 000 addresses are held but one): ~35 ns per choice, where the scan took ~90 µs.
 */

/** The lowest free address of an inclusive range, with O(log n) take and free. */
export class AddressPool {
  readonly #first: number;
  readonly #last: number;
  /** Lowest address never considered; everything below it is either taken or in the heap. */
  #mark: number;
  readonly #heap: number[] = [];
  readonly #queued = new Set<number>();

  /** Addresses `first`..`last` (unsigned 32-bit numbers, inclusive) are the candidates. */
  constructor(first: number, last: number) {
    this.#first = this.#mark = first;
    this.#last = last;
  }

  /**
   * The lowest candidate for which `taken` is false, or -1 when every one is taken. It stays a candidate
   * until the caller claims it (then `taken` turns true for it).
   */
  lowest(taken: (address: number) => boolean): number {
    while (this.#heap.length > 0) {
      const a = this.#heap[0];
      if (!taken(a)) return a;
      this.#pop(); // taken out of order since it was freed; free() brings it back
    }
    while (this.#mark <= this.#last) {
      if (!taken(this.#mark)) return this.#mark;
      this.#mark++;
    }
    return -1;
  }

  /** `address` became free (its owner expired or was removed); addresses outside the range are ignored. */
  free(address: number): void {
    if (address < this.#first || address >= this.#mark || this.#queued.has(address)) return;
    this.#queued.add(address);
    const h = this.#heap;
    let i = h.push(address) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent] <= address) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = address;
  }

  /** Freed addresses waiting below the mark (for tests and status). */
  get queued(): number {
    return this.#heap.length;
  }

  #pop(): void {
    const h = this.#heap;
    this.#queued.delete(h[0]);
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      let v = last;
      if (l < h.length && h[l] < v) {
        m = l;
        v = h[l];
      }
      if (r < h.length && h[r] < v) m = r;
      if (m === i) break;
      h[i] = h[m];
      i = m;
    }
    h[i] = last;
  }
}
