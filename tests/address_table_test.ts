import { assertEquals } from "./assert.ts";
import { AddressTable } from "../src/dataplane/address_table.ts";
import { parseIp } from "../src/net/ip_address.ts";

const v6 = (s: string) => parseIp(s)!;

Deno.test("address table: IPv4 and IPv6 are claimed together or not at all", () => {
  const t = new AddressTable<string>();
  assertEquals(t.claim("a", 10, v6("fd00::a")), true);
  // b wants a's IPv6 address with a free IPv4 address: refused, and it gets nothing.
  assertEquals(t.claim("b", 11, v6("fd00::a")), false);
  assertEquals(t.owner4(11), undefined);
  assertEquals(t.claim("b", 10, v6("fd00::b")), false);
  assertEquals(t.owner6(v6("fd00::b")), undefined);
  assertEquals(t.claim("a", 10, v6("fd00::a")), true, "claiming what it holds is a no-op");
  assertEquals([t.size4, t.size6], [1, 1]);
});

Deno.test("address table: only the owner's release deletes an entry", () => {
  const t = new AddressTable<string>();
  t.claim("a", 10, v6("fd00::a"));
  t.release("b", 10, v6("fd00::a"));
  assertEquals([t.owner4(10), t.owner6(v6("fd00::a"))], ["a", "a"]);
  t.release("a", 10, v6("fd00::a"));
  assertEquals([t.owner4(10), t.owner6(v6("fd00::a"))], [undefined, undefined]);
  // IPv4 and IPv6 are owned separately: a pinned IPv6 address outlives a dynamic IPv4 holder leaving.
  t.claim("dyn", 20, null);
  t.claim("pin", 21, v6("fd00::14"));
  t.release("dyn", 20, v6("fd00::14"));
  assertEquals([t.owner4(20), t.owner6(v6("fd00::14"))], [undefined, "pin"]);
});

Deno.test("address table: IPv6 addresses with the same low 32 bits stay apart", () => {
  const t = new AddressTable<string>();
  t.claim("a", 1, v6("fd00::1:0:0:5"));
  t.claim("b", 2, v6("fd00::5"));
  t.claim("c", 3, v6("fd00:1::5"));
  assertEquals(t.owner6(v6("fd00::1:0:0:5")), "a");
  assertEquals(t.owner6(v6("fd00::5")), "b");
  assertEquals(t.owner6(v6("fd00:1::5")), "c");
  assertEquals(t.owner6(v6("fd00:2::5")), undefined);
  t.release("b", 2, v6("fd00::5"));
  assertEquals([t.owner6(v6("fd00::1:0:0:5")), t.owner6(v6("fd00::5")), t.owner6(v6("fd00:1::5"))], [
    "a",
    undefined,
    "c",
  ]);
  t.release("c", 3, v6("fd00:1::5"));
  t.release("a", 1, v6("fd00::1:0:0:5"));
  assertEquals(t.size6, 0);
});

Deno.test("address table: lookups read addresses inside a packet", () => {
  const t = new AddressTable<string>();
  t.claim("a", 1, v6("fd00::7"));
  const pkt = new Uint8Array(40);
  pkt.set(v6("fd00::7"), 24);
  assertEquals(t.owner6(pkt, 24), "a");
  assertEquals(t.owner6(pkt, 8), undefined);
});
