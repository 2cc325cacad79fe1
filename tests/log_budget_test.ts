import { assertEquals } from "./assert.ts";
import { LogBudget } from "../src/ops/log_budget.ts";

Deno.test("log budget: a burst, then the refill rate, with the suppressed lines counted", () => {
  const b = new LogBudget(10, 3);
  const passed = [0, 0, 0, 0, 0].map(() => b.take(1000));
  assertEquals(passed, [true, true, true, false, false]);
  assertEquals(b.takeSuppressed(), 2);
  assertEquals(b.takeSuppressed(), 0);
  // 10 per second: one token every 100 ms.
  assertEquals([b.take(1050), b.take(1100), b.take(1150)], [false, true, false]);
  // A flood of 100 000 events in 10 s lets about 100 lines through.
  let n = 0;
  for (let i = 0; i < 100_000; i++) if (b.take(2000 + i / 10)) n++;
  assertEquals(n >= 100 && n <= 104, true, `${n} lines`);
});
