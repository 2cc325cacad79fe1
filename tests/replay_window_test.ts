import { equal as assertEquals, ok as assert } from "node:assert/strict";
import { REPLAY_WINDOW_SIZE } from "../src/protocol/constants.ts";
import { ReplayWindow } from "../src/protocol/replay_window.ts";

/** Reference model: a Set of seen counters and the highest one. */
class ReferenceWindow {
  private seen = new Set<number>();
  private top = -1;
  constructor(readonly limit: number) {}
  accept(c: number): boolean {
    if (c < 0 || c >= this.limit || this.seen.has(c) || this.top - c >= REPLAY_WINDOW_SIZE) return false;
    this.seen.add(c);
    if (c > this.top) this.top = c;
    return true;
  }
}

Deno.test("in order: every counter accepted once", () => {
  const w = new ReplayWindow();
  for (let c = 0; c < 10_000; c++) {
    assert(w.check(c));
    assert(w.accept(c));
    assert(!w.check(c));
    assert(!w.accept(c));
  }
  assertEquals(w.highest, 9_999);
});

Deno.test("reordered within the window, duplicates and far-old counters", () => {
  const w = new ReplayWindow();
  assert(w.accept(5000));
  assert(w.accept(4999));
  assert(w.accept(5000 - REPLAY_WINDOW_SIZE + 1), "oldest counter inside the window");
  assert(!w.check(5000 - REPLAY_WINDOW_SIZE), "just outside the window");
  assert(!w.accept(0));
  assert(!w.accept(4999), "duplicate");
  assert(w.accept(4000));
  assert(!w.accept(4000));
});

Deno.test("check does not commit; accept after check", () => {
  const w = new ReplayWindow();
  assert(w.check(3));
  assert(w.check(3));
  assertEquals(w.highest, -1);
  assert(w.accept(3));
  assert(!w.check(3));
});

Deno.test("far-future jumps clear the ring", () => {
  const w = new ReplayWindow(Number.MAX_SAFE_INTEGER);
  for (let c = 0; c < 200; c++) w.accept(c);
  const far = 2 ** 35 + 17;
  assert(w.accept(far));
  assert(!w.accept(199), "left far behind");
  // Bits of the old counters must not leak into the new window's blocks.
  for (let c = far - 100; c < far; c++) assert(w.check(c), `counter ${c} should be fresh`);
  assert(w.accept(far - 1));
  assert(!w.accept(far - 1));
  assert(w.accept(2 ** 52 + 3), "large but safe counter");
  assert(!w.check(2 ** 52 + 3));
  assert(!new ReplayWindow().check(2 ** 52), "default limit is REJECT_AFTER_MESSAGES");
  assert(w.check(2 ** 52 + 2));
});

Deno.test("limit and invalid counters rejected", () => {
  const w = new ReplayWindow(1000);
  assert(!w.accept(1000));
  assert(!w.accept(5000));
  assert(!w.accept(-1));
  assert(!w.accept(Number.NaN));
  assert(w.accept(999));
});

Deno.test("matches the Set reference on 100 000 random operations", () => {
  let seed = 12345;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  let ops = 0;
  for (let seq = 0; seq < 200; seq++) {
    const limit = seq % 7 === 0 ? 3000 : 2 ** 40;
    const w = new ReplayWindow(limit), ref = new ReferenceWindow(limit);
    let base = 0;
    for (let i = 0; i < 500; i++, ops++) {
      const r = rnd();
      let c: number;
      if (r < 0.6) c = base + Math.floor(rnd() * 64) - 16; // mostly in order with reordering
      else if (r < 0.8) c = base - Math.floor(rnd() * (REPLAY_WINDOW_SIZE + 200)); // around the window edge
      else if (r < 0.95) c = base + Math.floor(rnd() * 10_000); // jumps ahead
      else c = Math.floor(rnd() * 3 * limit) - 5; // anything, including past the limit
      const expected = ref.accept(c);
      assertEquals(w.check(c), expected, `seq ${seq} op ${i} check(${c})`);
      assertEquals(w.accept(c), expected, `seq ${seq} op ${i} accept(${c})`);
      if (expected && c > base) base = c;
    }
  }
  assertEquals(ops, 100_000);
});
