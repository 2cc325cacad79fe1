/**
 * The client accepts from a server only what it can use: a hostile server (real handshakes under the
 * right key, tests/netns/hostile_server.ts) that assigns a /1 prefix or a 65000-byte MTU is refused with
 * an error naming the field, the TUN device gets no address, and the client retries; bounds the user
 * widens with --accept-prefix4 are honoured.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { DEFAULT_PREFIX4, DEFAULT_PREFIX6, refuseAssigned } from "../src/protocol/assigned_limits.ts";
import type { Host } from "./netns/hosts.ts";
import { VPN_PORT, type VpnLab, withVpnLab } from "./netns/vpn.ts";

const HOSTILE = new URL("./netns/hostile_server.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

const LIMITS = { prefix4: DEFAULT_PREFIX4, prefix6: DEFAULT_PREFIX6, maxMtu: 9000 };

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
  const wide = { ...LIMITS, prefix4: { min: 1, max: 32 } };
  assertEquals(refuseAssigned({ ...ok, ipv4: v4(1) }, wide), null);
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

async function assertRefused(cidr: string, mtu: number, reason: RegExp): Promise<void> {
  await withVpnLab({ hosts: ["srv", "cli"] }, async (lab, net) => {
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
      args: ["--accept-prefix4", "1-30"],
    });
    assertEquals(cli.overlay, "10.0.0.2");
    assertMatch(await cli.host.runOk(["ip", "-o", "addr", "show", "dev", cli.tun]), /inet 10\.0\.0\.2\/1 /);
  });
});
