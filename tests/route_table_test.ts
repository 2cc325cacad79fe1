import { assertEquals } from "./assert.ts";
import { RouteTable } from "../src/dataplane/route_table.ts";
import { parseCidr } from "../src/net/cidr.ts";
import { parseIp } from "../src/net/ip_address.ts";
import { ipv4ToNumber } from "../src/net/ip_packet.ts";

const n4 = (s: string) => ipv4ToNumber(parseIp(s)!);

Deno.test("route table: longest prefix wins, IPv4 and IPv6; misses are undefined", () => {
  const t = new RouteTable<string>();
  assertEquals(t.lookup4(n4("192.168.50.1")), undefined);
  t.insert(parseCidr("192.168.0.0/16")!, "wide");
  t.insert(parseCidr("192.168.50.0/24")!, "lan");
  t.insert(parseCidr("192.168.50.128/25")!, "half");
  t.insert(parseCidr("0.0.0.0/0")!, "default");
  t.insert(parseCidr("10.1.2.3/32")!, "host");
  assertEquals(t.size4, 5);
  assertEquals(t.lookup4(n4("192.168.50.1")), "lan");
  assertEquals(t.lookup4(n4("192.168.50.200")), "half");
  assertEquals(t.lookup4(n4("192.168.1.1")), "wide");
  assertEquals(t.lookup4(n4("10.1.2.3")), "host");
  assertEquals(t.lookup4(n4("10.1.2.4")), "default");
  // Host bits in the route are ignored.
  t.insert(parseCidr("172.16.5.9/12")!, "corp");
  assertEquals(t.lookup4(n4("172.31.255.255")), "corp");

  const pkt = new Uint8Array(40);
  const put = (s: string) => pkt.set(parseIp(s)!, 24);
  t.insert(parseCidr("fd00:50::/64")!, "v6lan");
  t.insert(parseCidr("fd00::/16")!, "v6wide");
  put("fd00:50::7");
  assertEquals(t.lookup6(pkt, 24), "v6lan");
  put("fd00:51::7");
  assertEquals(t.lookup6(pkt, 24), "v6wide");
  put("fe80::1");
  assertEquals(t.lookup6(pkt, 24), undefined);
});
