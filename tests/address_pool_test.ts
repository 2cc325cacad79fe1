import { assertEquals } from "./assert.ts";
import { AddressPool } from "../src/dataplane/address_pool.ts";

/** A pool over 2..254 with a set of taken addresses, claiming what it hands out. */
function lab(first = 2, last = 254) {
  const pool = new AddressPool(first, last);
  const taken = new Set<number>();
  const take = () => {
    const a = pool.lowest((n) => taken.has(n));
    if (a >= 0) taken.add(a);
    return a;
  };
  const free = (a: number) => {
    taken.delete(a);
    pool.free(a);
  };
  return { pool, taken, take, free };
}

Deno.test("address pool: hands out the lowest free address", () => {
  const { take, free } = lab();
  assertEquals([take(), take(), take()], [2, 3, 4]);
  free(3);
  free(2);
  assertEquals([take(), take(), take()], [2, 3, 5]);
});

Deno.test("address pool: skips addresses taken out of order and finds them again when freed", () => {
  const { pool, taken, take, free } = lab();
  taken.add(2).add(4); // pinned peers, or a client that asked for a specific address
  assertEquals([take(), take()], [3, 5]);
  free(4);
  free(3);
  assertEquals([take(), take(), take()], [3, 4, 6]);
  // A freed address taken again out of order leaves the heap lazily.
  free(5);
  taken.add(5);
  assertEquals(take(), 7);
  assertEquals(pool.queued, 0);
});

Deno.test("address pool: full, then one freed", () => {
  const { take, free } = lab(2, 5);
  assertEquals([take(), take(), take(), take(), take()], [2, 3, 4, 5, -1]);
  free(4);
  free(4);
  assertEquals([take(), take()], [4, -1]);
});

Deno.test("address pool: a /8 costs no scan, and memory follows the addresses in use", () => {
  const { pool, take, free } = lab(0x0a000002, 0x0afffffe);
  for (let i = 0; i < 1000; i++) take();
  for (let a = 0x0a000002; a < 0x0a000002 + 1000; a += 2) free(a);
  assertEquals(pool.queued, 500);
  for (let i = 0; i < 500; i++) take();
  assertEquals(take(), 0x0a000002 + 1000);
  assertEquals(pool.queued, 0);
});

Deno.test("address pool: matches a linear scan under random take and free", () => {
  const { taken, take, free } = lab(2, 300);
  let seed = 42;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
  for (let step = 0; step < 20_000; step++) {
    const r = rnd(10);
    if (r < 5) {
      let want = -1;
      for (let a = 2; a <= 300; a++) {
        if (!taken.has(a)) {
          want = a;
          break;
        }
      }
      assertEquals(take(), want);
    } else if (r < 9 && taken.size > 0) {
      const list = [...taken];
      free(list[rnd(list.length)]);
    } else {
      taken.add(2 + rnd(299)); // taken out of order, without the pool
    }
  }
});
