import { assertEquals } from "./assert.ts";
import { hostBits, mirrorAddress6, mirroredHost } from "../src/net/ipv6_mirror.ts";
import { parseCidr } from "../src/net/cidr.ts";
import { formatIp, parseIp } from "../src/net/ip_address.ts";

Deno.test("IPv6 mirror: host h gets the prefix with h in its low bits, and back", () => {
  const net6 = parseCidr("fd00::1/64")!;
  assertEquals(formatIp(mirrorAddress6(net6, 7)), "fd00::7");
  assertEquals(formatIp(mirrorAddress6(net6, 0x10203)), "fd00::1:203");
  assertEquals(hostBits(parseCidr("10.0.0.0/24")!), 8);
  assertEquals(mirroredHost(net6, parseIp("fd00::7")!, 8), 7);
  assertEquals(mirroredHost(net6, parseIp("fd00::1:7")!, 8), -1, "host part wider than the IPv4 subnet");
  assertEquals(mirroredHost(net6, parseIp("fd00::1:0:0:7")!, 8), -1);
  assertEquals(mirroredHost(net6, parseIp("fd01::7")!, 8), -1, "outside the prefix");
  assertEquals(mirroredHost(parseCidr("fd00::100/120")!, parseIp("fd00::107")!, 8), 7);
});
