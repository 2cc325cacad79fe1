import { assert, assertEquals } from "./assert.ts";
import { IndexTable } from "../src/dataplane/index_table.ts";

Deno.test("index table: fresh indexes are reserved at once and redrawn on collision", () => {
  const draws = [7, 7, 7, 9, 0xffffffff];
  const t = new IndexTable<string>(() => draws.shift()!);
  assertEquals(t.allocate("a"), 7);
  assertEquals(t.allocate("b"), 9, "a colliding draw is redrawn");
  assertEquals(t.allocate("c"), 0xffffffff);
  assertEquals([t.get(7), t.get(9), t.get(0xffffffff), t.get(8)], ["a", "b", "c", undefined]);
  assertEquals(t.size, 3);
});

Deno.test("index table: only the owner releases its index", () => {
  const t = new IndexTable<string>(() => 5);
  const i = t.allocate("a");
  assertEquals(t.release(i, "b"), false);
  assertEquals(t.get(i), "a");
  assertEquals(t.release(i, "a"), true);
  assertEquals(t.release(i, "a"), false);
  assertEquals(t.get(i), undefined);
  assertEquals(t.size, 0);
});

Deno.test("index table: random indexes, all distinct", () => {
  const t = new IndexTable<number>();
  const seen = new Set<number>();
  for (let k = 0; k < 10_000; k++) {
    const i = t.allocate(k);
    assert(Number.isInteger(i) && i >= 0 && i <= 0xffffffff);
    assert(!seen.has(i));
    seen.add(i);
  }
  assertEquals(t.size, 10_000);
});
