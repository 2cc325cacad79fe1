/**
 * The kill switch's nft script as text: it names no address, lets the tunnel's mark out, limits DHCP to
 * broadcasts and link-local sources, records its owner; and TUN names map to table names one to one.
 */
import { assert, assertEquals, assertMatch, assertNotMatch } from "./assert.ts";
import {
  killSwitchScript,
  killSwitchTable,
  ownerAlive,
  parseOwner,
  processStart,
  thisOwner,
} from "../src/host/kill_switch.ts";

const OPTIONS = { mark: 51820, markPort: 40000, owner: { pid: 1234, start: "5678" } };

Deno.test("kill switch: table names are one to one with TUN names and valid nft identifiers", () => {
  const names = [
    "vpn0",
    "vpn-0",
    "vpn_0",
    "vpn.0",
    "vpn__0",
    "vpn_d0",
    "vpn-d0",
    "vpn_o0",
    "vpn.o0",
    "a_x",
    "a-x",
  ];
  const tables = names.map(killSwitchTable);
  assertEquals(new Set(tables).size, names.length, tables.join(" "));
  for (const t of tables) assertMatch(t, /^vpn_killswitch_[A-Za-z0-9_]+$/);
  assertEquals(killSwitchTable("vpn0"), "vpn_killswitch_vpn0"); // a plain name keeps its old table
  assertEquals(killSwitchTable("vpn-0"), "vpn_killswitch_vpn_d0");
  assertEquals(killSwitchTable("vpn_0"), "vpn_killswitch_vpn__0");
  assertEquals(killSwitchTable("vpn.0"), "vpn_killswitch_vpn_o0");
  assert(killSwitchTable("a-b.c_d-e.f_g-h.").length <= 256);
});

Deno.test("kill switch: the script lets out the mark, names no address, and limits DHCP", () => {
  const s = killSwitchScript("vpn-0", OPTIONS);
  assertMatch(s, /^table inet vpn_killswitch_vpn_d0\ndelete table inet vpn_killswitch_vpn_d0\n/);
  assertMatch(s, /comment "vpn client pid 1234 start 5678"/);
  assertMatch(s, /policy drop;/);
  assertMatch(s, /^ {4}meta mark 0xca6c accept$/m);
  assertMatch(s, /^ {4}oifname "vpn-0" accept$/m);
  assertMatch(s, /^ {4}oifname "lo" accept$/m);
  assertMatch(s, /^ {4}oifname != "vpn-0" udp sport 68 udp dport 67 ip daddr 255\.255\.255\.255 accept$/m);
  assertMatch(s, /^ {4}ip6 saddr fe80::\/10 ip6 daddr ff02::1:2 udp sport 546 udp dport 547 accept$/m);
  assertMatch(s, /nd-neighbor-solicit.*ip6 hoplimit 255 accept/);
  // Every accept is one of the above: nothing by address, no set of servers.
  assertNotMatch(s, /daddr \.|@servers|set servers/);
  const accepts = s.split("\n").filter((l) => l.endsWith(" accept"));
  assertEquals(accepts.length, 6, accepts.join("\n"));
  // Without an fd to mark, the socket's local port is marked in a route chain that runs before the filter.
  assertMatch(s, /type route hook output priority mangle;.*\n\s+udp sport 40000 meta mark set 0xca6c\n/);
  assertNotMatch(killSwitchScript("vpn0", { ...OPTIONS, markPort: null }), /meta mark set|type route/);
  assertMatch(killSwitchScript("vpn0", { ...OPTIONS, mark: 0x1234 }), /meta mark 0x1234 accept/);
});

Deno.test("kill switch: the owner comment is read back, and only a live owner counts", () => {
  const listing =
    'table inet vpn_killswitch_vpn0 {\n\tcomment "vpn client pid 1234 start 5678"\n\tchain output {\n';
  assertEquals(parseOwner(listing), { pid: 1234, start: "5678" });
  assertEquals(parseOwner("table inet vpn_killswitch_vpn0 {\n\tchain output {\n"), null);
  const me = thisOwner();
  assertEquals(me.pid, Deno.pid);
  assertEquals(me.start, processStart(Deno.pid));
  assert(ownerAlive(me));
  assert(!ownerAlive({ pid: Deno.pid, start: "1" }), "a reused pid passed for the owner");
  assert(!ownerAlive({ pid: 0x3fffffff, start: me.start }));
});
