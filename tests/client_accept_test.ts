/**
 * The client accepts from a server only what it can use: a hostile server (real handshakes under the
 * right key, tests/netns/hostile_server.ts) that assigns a /1 prefix or a 65000-byte MTU is refused with
 * an error naming the field, the TUN device gets no address, and the client retries; bounds the user
 * widens with --accept-prefix4 are honoured. The same for an assigned network that overlaps the client's
 * LAN or is not private, unless --accept-network lists it.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  DEFAULT_PREFIX4,
  DEFAULT_PREFIX6,
  type HostNetworks,
  refuseAssigned,
} from "../src/protocol/assigned_limits.ts";
import { requireCidr } from "../src/net/cidr.ts";
import type { Host } from "./netns/hosts.ts";
import { VPN_PORT, type VpnLab, withVpnLab } from "./netns/vpn.ts";

const HOSTILE = new URL("./netns/hostile_server.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

const LIMITS = { prefix4: DEFAULT_PREFIX4, prefix6: DEFAULT_PREFIX6, maxMtu: 9000, acceptNetwork: [] };

Deno.test("refuseAssigned: MTU above the client's maximum, prefixes outside the bounds", () => {
  const v4 = (prefix: number) => ({ address: "10.0.0.2", prefix });
  const v6 = (prefix: number) => ({ address: "fd00::2", prefix });
  const ok = { ipv4: v4(24), ipv6: v6(64), mtu: 1420, keepaliveSeconds: 25 };
  assertEquals(refuseAssigned(ok, LIMITS), null);
  assertEquals(refuseAssigned({ ...ok, mtu: 9000 }, LIMITS), null);
  assertEquals(refuseAssigned({ ...ok, ipv4: v4(8), ipv6: v6(126) }, LIMITS), null);
  assertEquals(refuseAssigned({ ...ok, ipv4: v4(30), ipv6: null }, LIMITS), null);
  assertMatch(refuseAssigned({ ...ok, mtu: 9001 }, LIMITS)!, /^mtu 9001 is above .* maximum 9000/);
  assertMatch(refuseAssigned({ ...ok, mtu: 65000 }, LIMITS)!, /^mtu 65000/);
  for (const p of [0, 1, 7, 31, 32]) {
    assertMatch(
      refuseAssigned({ ...ok, ipv4: v4(p) }, LIMITS)!,
      new RegExp(`^address 10.0.0.2/${p}: prefix`),
    );
  }
  for (const p of [0, 1, 48, 63, 127, 128]) {
    assertMatch(
      refuseAssigned({ ...ok, ipv6: v6(p) }, LIMITS)!,
      new RegExp(`^address6 fd00::2/${p}: prefix`),
    );
  }
  const wide = { ...LIMITS, prefix4: { min: 1, max: 32 }, acceptNetwork: [requireCidr("0.0.0.0/1")] };
  assertEquals(refuseAssigned({ ...ok, ipv4: v4(1) }, wide), null);
});

Deno.test("refuseAssigned: an assigned network must be private and overlap no local address or route", () => {
  const params = (a: string, a6: string | null = null) => {
    const [address, prefix] = a.split("/");
    const ipv6 = a6 === null ? null : { address: a6.split("/")[0], prefix: Number(a6.split("/")[1]) };
    return { ipv4: { address, prefix: Number(prefix) }, ipv6, mtu: 1420, keepaliveSeconds: 25 };
  };
  const lan: HostNetworks = {
    addresses: [{ net: requireCidr("192.168.77.5/24"), dev: "eth0" }],
    routes: [{ net: requireCidr("192.168.77.0/24"), dev: "eth0" }, {
      net: requireCidr("172.20.0.0/16"),
      dev: "br0",
    }],
  };
  // Private and clear of the host's networks: accepted.
  for (const a of ["10.0.0.2/24", "172.16.1.2/24", "192.168.1.2/24", "100.64.0.2/10", "10.9.9.9/8"]) {
    assertEquals(refuseAssigned(params(a), LIMITS, lan), null, a);
  }
  assertEquals(refuseAssigned(params("10.0.0.2/24", "fd00:77::2/64"), LIMITS, lan), null);
  // Public (or outside the private ranges, like a /11 reaching past 100.64/10): refused, naming the ranges.
  for (const a of ["8.8.8.7/8", "198.51.100.7/24", "100.64.0.2/9", "172.32.0.2/16", "11.0.0.2/24"]) {
    const why = refuseAssigned(params(a), LIMITS, lan)!;
    assert(why.startsWith(`address ${a}: `), why);
    assert(
      why.endsWith(
        "is not a private network (allowed: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10) " +
          "(add it to accept_network to accept it)",
      ),
      why,
    );
  }
  assertMatch(
    refuseAssigned(params("10.0.0.2/24", "2001:db8::2/64"), LIMITS, lan)!,
    /^address6 2001:db8::2\/64: 2001:db8::\/64 is not a private network \(allowed: fc00::\/7\)/,
  );
  // Overlapping the LAN: the upper half, the whole of it, a larger network around it; a route elsewhere.
  assertMatch(
    refuseAssigned(params("192.168.77.200/25"), LIMITS, lan)!,
    /^address 192\.168\.77\.200\/25: 192\.168\.77\.128\/25 overlaps the local address 192\.168\.77\.5\/24 on eth0/,
  );
  assertMatch(refuseAssigned(params("192.168.0.2/16"), LIMITS, lan)!, /overlaps the local address/);
  assertMatch(
    refuseAssigned(params("172.20.5.2/24"), LIMITS, lan)!,
    /^address 172\.20\.5\.2\/24: 172\.20\.5\.0\/24 overlaps the route 172\.20\.0\.0\/16 dev br0 \(add it to accept_network/,
  );
  const lan6: HostNetworks = { addresses: [], routes: [{ net: requireCidr("fd00:77::/48"), dev: "eth0" }] };
  assertMatch(
    refuseAssigned(params("10.0.0.2/24", "fd00:77:0:1::2/64"), LIMITS, lan6)!,
    /^address6 .* overlaps the route/,
  );
  // accept_network covers the whole assigned network: accepted; covering only part of it is not enough.
  const accept = (...c: string[]) => ({ ...LIMITS, acceptNetwork: c.map(requireCidr) });
  assertEquals(refuseAssigned(params("192.168.77.200/25"), accept("192.168.77.128/25"), lan), null);
  assertEquals(refuseAssigned(params("8.8.8.7/8"), accept("8.0.0.0/8"), lan), null);
  assertMatch(refuseAssigned(params("8.8.8.7/8"), accept("8.8.0.0/16"), lan)!, /is not a private network/);
  assertMatch(refuseAssigned(params("192.168.77.200/25"), accept("10.0.0.0/8"), lan)!, /overlaps/);
  // Without host networks (the default), only the private check applies.
  assertEquals(refuseAssigned(params("192.168.77.200/25"), LIMITS), null);
});

/** Starts the hostile server on `host`, assigning `cidr` and `mtu` to whoever handshakes. */
async function hostile(lab: VpnLab, host: Host, cidr: string, mtu: number) {
  const p = host.spawn(
    [Deno.execPath(), "run", "-A", "--config", CONFIG, HOSTILE, String(VPN_PORT), cidr, String(mtu)],
    { env: { VPN_KEY: lab.key } },
  );
  await p.waitForOutput(/listening/, 20_000);
  return p;
}

async function assertRefused(cidr: string, mtu: number, reason: RegExp, lanAddress?: string): Promise<void> {
  await withVpnLab({ hosts: ["srv", "cli"] }, async (lab, net) => {
    // The client's LAN, a second address on its underlay interface (test-only, inside the namespace).
    if (lanAddress) await net.host("cli").addAddress(lanAddress);
    const srv = await hostile(lab, net.host("srv"), cidr, mtu);
    const cli = await lab.client("cli", null, {
      peer: `${net.host("srv").address}:${VPN_PORT}`,
      wait: false,
    });
    const line = await cli.proc.waitForOutput(/[^\n]*server response refused[^\n]*/, 20_000);
    assertMatch(line[0], reason);
    assertMatch(line[0], /ERROR/);
    // The refused parameters never reach the host: no address, no route on the TUN device.
    const addrs = await cli.host.runOk(["ip", "-o", "addr", "show", "dev", cli.tun]);
    assert(!/inet /.test(addrs), `TUN got an address: ${addrs}`);
    const routes = await cli.host.runOk(["ip", "-o", "route", "show", "dev", cli.tun]);
    assertEquals(routes.trim(), "");
    // And the client tries again (after its 5 s retry timer), to be refused again.
    await srv.waitForOutput(/responded 2/, 15_000);
    await cli.proc.waitForOutput(/retrying handshake[^\n]*\n[\s\S]*server response refused/, 5_000);
    assert(!/handshake complete/.test(cli.output()), cli.output());
  });
}

Deno.test("client refuses a hostile server's /1 prefix, logs why and retries", async () => {
  await assertRefused(
    "10.0.0.2/1",
    1420,
    /reason="?address 10\.0\.0\.2\/1: prefix outside the accepted \/8 to \/30/,
  );
});

Deno.test("client refuses a hostile server's 65000-byte MTU, logs why and retries", async () => {
  await assertRefused("10.0.0.2/24", 65000, /reason="?mtu 65000 is above this client's maximum 9000/);
});

Deno.test("client accepts a /1 prefix when --accept-prefix4 allows it", async () => {
  await withVpnLab({ hosts: ["srv", "cli"] }, async (lab, net) => {
    await hostile(lab, net.host("srv"), "10.0.0.2/1", 1420);
    const cli = await lab.client("cli", null, {
      peer: `${net.host("srv").address}:${VPN_PORT}`,
      args: ["--accept-prefix4", "1-30", "--accept-network", "0.0.0.0/1"],
    });
    assertEquals(cli.overlay, "10.0.0.2");
    assertMatch(await cli.host.runOk(["ip", "-o", "addr", "show", "dev", cli.tun]), /inet 10\.0\.0\.2\/1 /);
  });
});

Deno.test("client refuses an assigned network overlapping its LAN (192.168.77.200/25 on a 192.168.77.0/24 LAN)", async () => {
  await assertRefused(
    "192.168.77.200/25",
    1420,
    /reason="?address 192\.168\.77\.200\/25: 192\.168\.77\.128\/25 overlaps the local address 192\.168\.77\.5\/24 on \S+ \(add it to accept_network/,
    "192.168.77.5/24",
  );
});

Deno.test("client refuses a public assigned network (198.51.100.7/24, a documentation range)", async () => {
  await assertRefused(
    "198.51.100.7/24",
    1420,
    /reason="?address 198\.51\.100\.7\/24: 198\.51\.100\.0\/24 is not a private network/,
  );
});

Deno.test("client accepts an overlapping assigned network that --accept-network lists", async () => {
  await withVpnLab({ hosts: ["srv", "cli"] }, async (lab, net) => {
    await net.host("cli").addAddress("192.168.77.5/24");
    await hostile(lab, net.host("srv"), "192.168.77.200/25", 1420);
    const cli = await lab.client("cli", null, {
      peer: `${net.host("srv").address}:${VPN_PORT}`,
      args: ["--accept-network", "192.168.77.128/25"],
    });
    assertEquals(cli.overlay, "192.168.77.200");
    assertMatch(
      await cli.host.runOk(["ip", "-o", "addr", "show", "dev", cli.tun]),
      /inet 192\.168\.77\.200\/25 /,
    );
  });
});
