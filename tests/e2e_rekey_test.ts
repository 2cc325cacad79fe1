/**
 * End-to-end rekey on the real timers: the client starts a new handshake when its session is 120 s old,
 * while a TCP stream and a ping flood cross the tunnel; nothing may be lost at the switch.
 * This test takes about two and a half minutes: it is the price of not shortening the protocol's timers.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import type { StatusReport } from "../src/ops/status_report.ts";
import { REKEY_AFTER_TIME_MS } from "../src/protocol/constants.ts";
import { throttle, withVpnLab } from "./netns/vpn.ts";

function totalDrops(st: StatusReport): number {
  const sum = (d: StatusReport["drops"]) =>
    d.auth + d.replay + d.no_route + d.oversize + d.malformed + d.busy;
  return sum(st.drops) + st.peers.reduce((n, p) => n + sum(p.drops), 0);
}

Deno.test("e2e: the 120 s rekey loses no packet of a TCP stream or a ping flood crossing it", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const [hs, h1] = [net.host("srv"), net.host("c1")];
    // Rekeys are logged at debug.
    const srv = await lab.server("srv", { args: ["--log-level", "debug"] });
    const c1 = await lab.client("c1", srv, { args: ["--log-level", "debug"] });
    await h1.waitForPing(srv.overlay, 5000);
    // 8 Mbit/s on the client's uplink: 12 MiB take ~12 s, started 8 s before the rekey.
    await throttle(h1, "8mbit");
    // The rekey is due REKEY_AFTER_TIME after the last handshake; start 8 s before it.
    const age = (await srv.status()).peers[0].last_handshake_s! * 1000;
    const startAt = performance.now() + REKEY_AFTER_TIME_MS - age - 8_000;
    await new Promise((r) => setTimeout(r, Math.max(0, startAt - performance.now())));
    const before = await srv.status();
    const transfer = h1.tcpTransfer(hs, srv.overlay, 12 << 20, { timeoutMs: 60_000 });
    const ping = h1.run(["ping", "-n", "-q", "-c", "200", "-i", "0.1", "-W", "1", srv.overlay], {
      timeoutMs: 60_000,
    });
    const [t, p] = await Promise.all([transfer, ping]);
    assertEquals(t.receivedBytes, 12 << 20);
    assertEquals(t.receivedSha256, t.sentSha256);
    assertMatch(p.stdout, /200 packets transmitted, 200 received, 0% packet loss/);
    // The rekey happened while they ran, on both sides.
    assertMatch(c1.output(), /DEBUG\s+rekeyed/);
    assertMatch(srv.output(), /DEBUG\s+rekeyed peer=/);
    const after = await srv.status();
    assertEquals(
      totalDrops(after) - totalDrops(before),
      0,
      `the tunnel dropped packets around the rekey: before ${JSON.stringify(before)} after ${
        JSON.stringify(after)
      }`,
    );
    assert(
      after.peers[0].last_handshake_s! < before.peers[0].last_handshake_s!,
      "the server saw a fresh handshake",
    );
  });
});
