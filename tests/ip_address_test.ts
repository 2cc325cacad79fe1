// Unit tests for the single IP / CIDR / HOST:PORT parser: src/ip_address.ts, src/cidr.ts, src/host_port.ts.
import { assert, assertEquals, assertThrows } from "./assert.ts";
import {
  AddressError,
  formatIp,
  parseIp,
  parseIpv4,
  parseIpv6,
  requireIp,
  withoutZone,
} from "../src/net/ip_address.ts";
import {
  checkPrefixLength,
  cidrContains,
  formatCidr,
  networkOf,
  parseCidr,
  prefixMask,
  requireCidr,
} from "../src/net/cidr.ts";
import { formatHostPort, parseHostPort, parsePort } from "../src/net/host_port.ts";

/** The message `fn` throws as `AddressError`. */
function addressError(fn: () => unknown): string {
  return assertThrows(fn, AddressError).message;
}

Deno.test("ip_address: IPv4 bytes, and strict refusals", () => {
  assertEquals([...parseIpv4("10.0.0.1")!], [10, 0, 0, 1]);
  assertEquals([...parseIpv4("0.0.0.0")!], [0, 0, 0, 0]);
  assertEquals([...parseIpv4("255.255.255.255")!], [255, 255, 255, 255]);
  const bad = [
    "10.0.0",
    "10.0.0.01",
    "010.0.0.1",
    "1.2.3.256",
    "a.b.c.d",
    "",
    "1.2.3.4.5",
    "1.2.3.-4",
    " 1.2.3.4",
  ];
  for (const text of [...bad, "1.2.3.4%eth0", "1..3.4", "١.2.3.4", "0x1.2.3.4", "1.2.3.4 "]) {
    assertEquals(parseIpv4(text), null, text);
  }
});

Deno.test("ip_address: IPv6 bytes (compression, dotted tail) and strict refusals", () => {
  assertEquals([...parseIpv6("fd00::1")!], [0xfd, 0, ...new Array(13).fill(0), 1]);
  assertEquals([...parseIpv6("::ffff:1.2.3.4")!].slice(10), [0xff, 0xff, 1, 2, 3, 4]);
  assertEquals([...parseIpv6("1:2:3:4:5:6:7:8")!].filter((_, i) => i % 2), [1, 2, 3, 4, 5, 6, 7, 8]);
  assertEquals([...parseIpv6("::")!], new Array(16).fill(0));
  assertEquals(formatIp(parseIpv6("1:2:3:4:5:6:7::")!), "1:2:3:4:5:6:7:0");
  assertEquals(formatIp(parseIpv6("ABCD::EF")!), "abcd::ef");
  const bad = [
    "1::2::3",
    "fe80::1%eth0",
    "12345::",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    ":",
    ":1::",
    "1::2:",
  ];
  for (
    const text of [...bad, "1:::2", "::1.2.3", "::01.2.3.4", "1.2.3.4::", "1::2:3:4:5:6:7:8", "g::1", ""]
  ) {
    assertEquals(parseIpv6(text), null, text);
  }
  assertEquals(withoutZone("fe80::1%eth0"), "fe80::1");
  assertEquals(withoutZone("fe80::1"), "fe80::1");
});

Deno.test("ip_address: RFC 5952 formatting and round trips", () => {
  const cases: [string, string][] = [
    ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // longest run wins; first of equal runs
    ["2001:db8:0:0:0:1:0:0", "2001:db8::1:0:0"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single zero group is not compressed
    ["2001:0db8::0001", "2001:db8::1"], // leading zeros dropped
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["::ffff:0a00:0001", "::ffff:10.0.0.1"], // v4-mapped keeps the dotted form (RFC 5952 section 5)
    ["1.2.3.4", "1.2.3.4"],
  ];
  for (const [input, want] of cases) {
    assertEquals(formatIp(parseIp(input)!), want, input);
    assertEquals(formatIp(parseIp(want)!), want, `${want} is canonical`);
  }
  assertEquals(requireIp("::1").length, 16);
  assertEquals(addressError(() => requireIp("10.0.0.300")), 'not an IPv4 address: "10.0.0.300"');
  assertEquals(addressError(() => requireIp("fd00::g")), 'not an IPv6 address: "fd00::g"');
});

Deno.test("cidr: parse, format, contains, network, masks", () => {
  const c = parseCidr("10.1.2.3/12")!;
  assertEquals([c.family, [...c.address], c.prefixLength], [4, [10, 1, 2, 3], 12]);
  assertEquals(formatCidr(c), "10.1.2.3/12");
  assertEquals(formatCidr(networkOf(c)), "10.0.0.0/12");
  assertEquals(formatCidr(networkOf(parseCidr("fd00:1:2:3::9/52")!)), "fd00:1:2::/52");
  assertEquals(formatCidr(networkOf(parseCidr("1.2.3.4/0")!)), "0.0.0.0/0");
  assert(cidrContains(c, parseIp("10.15.255.255")!));
  assert(!cidrContains(c, parseIp("10.16.0.0")!));
  assert(!cidrContains(c, parseIp("::ffff:10.1.2.3")!), "families never match");
  assert(cidrContains(parseCidr("0.0.0.0/0")!, parseIp("8.8.8.8")!));
  assert(cidrContains(parseCidr("fd00::/8")!, parseIp("fdff::1")!));
  assertEquals(parseCidr("10.0.0.1"), null, "a bare address needs the host default");
  assertEquals(parseCidr("fd00::1", "host")!.prefixLength, 128);
  for (
    const bad of ["10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/024", "10.0.0/8", "/8"]
  ) {
    assertEquals(parseCidr(bad, "host"), null, bad);
  }
  assertEquals([...prefixMask(20, 4)], [255, 255, 240, 0]);
  assertEquals([...prefixMask(0, 4)], [0, 0, 0, 0]);
  assertEquals([...prefixMask(65, 16)], [...new Array(8).fill(255), 0x80, ...new Array(7).fill(0)]);
});

Deno.test("cidr: requireCidr and checkPrefixLength say what is wrong", () => {
  assertEquals(requireCidr("fd00::1").prefixLength, 128);
  assertEquals(
    addressError(() => requireCidr("10.0.0.0/33")),
    "prefix length 33 is out of range for IPv4 (0..32)",
  );
  assertEquals(addressError(() => requireCidr("10.0.0.0/x")), 'bad prefix length in "10.0.0.0/x"');
  assertEquals(addressError(() => requireCidr("10.0.0.01/8")), 'not an IPv4 address: "10.0.0.01"');
  assertEquals(
    addressError(() => checkPrefixLength(129, 6)),
    "prefix length 129 is out of range for IPv6 (0..128)",
  );
  checkPrefixLength(0, 4);
});

Deno.test("host_port: literals, names, zones and round trips", () => {
  assertEquals(parseHostPort("1.2.3.4:51820"), { hostname: "1.2.3.4", port: 51820 });
  assertEquals(parseHostPort("[::1]:1"), { hostname: "::1", port: 1 });
  assertEquals(parseHostPort("[fe80::1%eth0]:9"), { hostname: "fe80::1%eth0", port: 9 });
  assertEquals(parseHostPort("vpn.example.com.:65535"), { hostname: "vpn.example.com.", port: 65535 });
  assertEquals(parseHostPort("0.0.0.0:0", true), { hostname: "0.0.0.0", port: 0 });
  for (const text of ["1.2.3.4:51820", "[2001:db8::1]:443", "my-host_1:7"]) {
    const hp = parseHostPort(text);
    assert(typeof hp !== "string", text);
    assertEquals(formatHostPort(hp), text);
  }
  assertEquals(parsePort("0", true), 0);
  assertEquals(parsePort("00080"), 80);
});

Deno.test("host_port: bad inputs give the reason", () => {
  const cases: [string, string][] = [
    ["1.2.3.4", "no port given"],
    ["[::1]", "no port after the brackets"],
    ["[::1]51820", "no port after the brackets"],
    ["[::1:51820", "missing ']' after the IPv6 address"],
    ["[1.2.3.4]:5", '"1.2.3.4" is not an IPv6 address (brackets are only for IPv6)'],
    ["[]:5", "missing host"],
    [":5", "missing host"],
    ["::1:51820", "write an IPv6 address in brackets: [ADDRESS]:PORT"],
    ["10.0.0.01:5", '"10.0.0.01" is not an IPv4 address (four numbers 0 to 255, no leading zeros)'],
    ["1.2.3:5", '"1.2.3" is not an IPv4 address (four numbers 0 to 255, no leading zeros)'],
    ["-bad.example:5", '"-bad.example" is neither an IP address nor a valid host name'],
    ["a..b:5", '"a..b" is neither an IP address nor a valid host name'],
    ["1.2.3.4%eth0:5", '"1.2.3.4%eth0" is neither an IP address nor a valid host name'],
    ["1.2.3.4:", 'port "" is not a number from 1 to 65535'],
    ["1.2.3.4:0", "port 0 is out of range 1..65535"],
    ["1.2.3.4:65536", "port 65536 is out of range 1..65535"],
    ["1.2.3.4:+80", 'port "+80" is not a number from 1 to 65535'],
  ];
  for (const [input, why] of cases) assertEquals(parseHostPort(input), why, input);
});
