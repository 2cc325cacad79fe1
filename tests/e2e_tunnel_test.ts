/**
 * End-to-end: the real `vpn server` and `vpn client` processes in network namespaces carry traffic,
 * keep it encrypted on the wire, work over IPv6 (underlay and inside), interoperate across data paths,
 * and stop cleanly.
 */
import { assert, assertEquals, assertMatch, assertNotEquals } from "./assert.ts";
import { bytesContain, type TransferResult } from "./netns/hosts.ts";
import { eventually, pcapUdp, VPN_PORT, type VpnNode, withVpnLab } from "./netns/vpn.ts";

function assertIntact(r: TransferResult, bytes: number): void {
  assertEquals(r.sentBytes, bytes);
  assertEquals(r.receivedBytes, bytes);
  assertEquals(r.receivedSha256, r.sentSha256);
}

async function socketExists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** SIGTERM, then: exit 0, "stopping" logged, TUN device and control socket gone. */
async function assertCleanStop(node: VpnNode, runDir: string): Promise<void> {
  const sock = `${runDir}/${node.tun}.sock`;
  assert(await node.tunExists(), `${node.tun} should exist before the stop`);
  assert(await socketExists(sock), `${sock} should exist before the stop`);
  const st = await node.stop();
  assertEquals(st.code, 0, `${node.tun} exit status ${JSON.stringify(st)}`);
  assertMatch(node.output(), /INFO\s+stopping signal=SIGTERM/);
  assert(!(await node.tunExists()), `${node.tun} still exists in ${node.host.name} after the stop`);
  assert(!(await socketExists(sock)), `${sock} left behind`);
}

Deno.test("e2e: one server, two clients: pings, relay, 8 MiB intact, then a clean stop", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "c2"] }, async (lab, net) => {
    const [hs, h1, h2] = ["srv", "c1", "c2"].map((n) => net.host(n));
    const srv = await lab.server("srv");
    // Both at once: concurrent handshakes must still get distinct addresses.
    const [c1, c2] = await Promise.all([lab.client("c1", srv), lab.client("c2", srv)]);
    assertMatch(c1.overlay, /^10\.0\.0\.\d+$/);
    assertMatch(c2.overlay, /^10\.0\.0\.\d+$/);
    assertNotEquals(c1.overlay, c2.overlay);

    await Promise.all([h1.waitForPing(srv.overlay, 5000), h2.waitForPing(srv.overlay, 5000)]);
    // Client to client goes through the server's relay.
    const [a, b] = await Promise.all([h1.ping(c2.overlay, { count: 2 }), h2.ping(c1.overlay, { count: 2 })]);
    assert(a && b, `client-to-client pings: c1->c2 ${a}, c2->c1 ${b}`);

    const big = await h1.tcpTransfer(hs, srv.overlay, 8 << 20);
    assertIntact(big, 8 << 20);
    const relayed = await h2.tcpTransfer(h1, c1.overlay, 1 << 20);
    assertIntact(relayed, 1 << 20);

    const st = await srv.status();
    assertEquals(st.role, "server");
    const byAddr = new Map(st.peers.map((p) => [p.address, p]));
    assertEquals(byAddr.size, 2);
    assertEquals(byAddr.get(c1.overlay)?.endpoint?.split(":")[0], h1.address);
    assertEquals(byAddr.get(c2.overlay)?.endpoint?.split(":")[0], h2.address);
    assert(byAddr.get(c1.overlay)!.rx_bytes >= 8 << 20, "server counted the 8 MiB from c1");
    console.log(`8 MiB through the tunnel in ${big.ms.toFixed(0)} ms`);

    for (const node of [c1, c2, srv]) await assertCleanStop(node, lab.runDir);
  });
});

Deno.test("e2e: the wire carries only ciphertext", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const [hs, h1] = [net.host("srv"), net.host("c1")];
    const srv = await lab.server("srv");
    await lab.client("c1", srv);
    await h1.waitForPing(srv.overlay, 5000);

    const marker = crypto.getRandomValues(new Uint8Array(32));
    const payload = new Uint8Array(marker.length * 40);
    for (let i = 0; i < 40; i++) payload.set(marker, i * marker.length);
    // The underlay (vpn port) and, as the positive control, the decrypted packets on the server's TUN.
    const [wire, inner] = await Promise.all([
      hs.capture(`udp port ${VPN_PORT}`, 15_000, { tool: "tcpdump" }),
      hs.capture("udp port 9999", 15_000, { tool: "tcpdump" }),
    ]);
    const sent = await h1.udpBlast(srv.overlay, 9999, Array(20).fill(payload), 5000);
    assertEquals(sent.sent, 20);
    const seen = await eventually(async () => bytesContain(await inner.peek(), marker), 3000, 50);
    const [wireBytes, innerBytes] = await Promise.all([wire.stop(), inner.stop()]);
    assertEquals(wire.dropped, 0);
    assertEquals(inner.dropped, 0);
    assert(seen && bytesContain(innerBytes, marker), "the payload never reached the server's TUN");

    const datagrams = pcapUdp(wireBytes).filter((d) => d.dstPort === VPN_PORT && d.src === h1.address);
    // With UDP GSO the veth carries a run of datagrams as one large packet (split only at a real NIC), so
    // count how many marker-sized datagrams the captured tunnel bytes could hold.
    const perDatagram = payload.length + 8 + 29;
    const carrying = datagrams.reduce((n, d) => n + Math.floor(d.payload.length / perDatagram), 0);
    assert(carrying >= 20, `expected room for >= 20 tunnel datagrams, saw ${carrying}`);
    assert(!bytesContain(wireBytes, marker), "the marker crossed the wire in clear");
    // Not even a fragment of it: the ciphertext differs from the plaintext everywhere.
    assert(!bytesContain(wireBytes, marker.subarray(0, 12)), "12 bytes of the marker crossed the wire");
  });
});

Deno.test("e2e: IPv6 underlay: one server socket takes IPv6 and IPv4 clients", async () => {
  await withVpnLab({ hosts: ["srv", "c6", "c4"], ipv6: true }, async (lab, net) => {
    const [hs, h6, h4] = ["srv", "c6", "c4"].map((n) => net.host(n));
    const srv = await lab.server("srv", { listen: `[::]:${VPN_PORT}` });
    const [c6, c4] = await Promise.all([
      lab.client("c6", srv, { peer: `[${hs.address6}]:${VPN_PORT}` }),
      lab.client("c4", srv, { peer: `${hs.address}:${VPN_PORT}` }),
    ]);
    await Promise.all([h6.waitForPing(srv.overlay, 5000), h4.waitForPing(srv.overlay, 5000)]);
    assertIntact(await h6.tcpTransfer(hs, srv.overlay, 1 << 20), 1 << 20);
    const st = await srv.status();
    const ep = new Map(st.peers.map((p) => [p.address, p.endpoint ?? ""]));
    assert(ep.get(c6.overlay)!.includes(h6.address6!), `c6 endpoint ${ep.get(c6.overlay)}`);
    assert(ep.get(c4.overlay)!.includes(h4.address), `c4 endpoint ${ep.get(c4.overlay)}`);
  });
});

Deno.test("e2e: IPv6 inside the tunnel", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const [hs, h1] = [net.host("srv"), net.host("c1")];
    const srv = await lab.server("srv", { config: '[server]\naddress6 = "fd00:77::1/64"\n' });
    const c1 = await lab.client("c1", srv);
    assertEquals(c1.overlay6, "fd00:77::2");
    await h1.waitForPing("fd00:77::1", 5000);
    assert(await hs.ping(c1.overlay6, { count: 2 }), "server -> client ping -6 failed");
    assertIntact(await h1.tcpTransfer(hs, "fd00:77::1", 1 << 20), 1 << 20);
  });
});

Deno.test("e2e: the reference data path (webcrypto + Deno UDP) carries traffic", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const [hs, h1] = [net.host("srv"), net.host("c1")];
    const ref = ["--crypto", "webcrypto", "--udp", "deno"];
    const srv = await lab.server("srv", { args: ref });
    const c1 = await lab.client("c1", srv, { args: ref });
    for (const n of [srv, c1]) assertMatch(n.output(), /data path crypto=webcrypto udp=deno/);
    await h1.waitForPing(srv.overlay, 5000);
    assertIntact(await h1.tcpTransfer(hs, srv.overlay, 2 << 20), 2 << 20);
    assertIntact(await hs.tcpTransfer(h1, c1.overlay, 2 << 20), 2 << 20);
  });
});

Deno.test("e2e: mixed data paths interoperate (openssl/batched server, webcrypto/deno client)", async () => {
  await withVpnLab({ hosts: ["srv", "cref", "cfast"] }, async (lab, net) => {
    const [hs, hr, hf] = ["srv", "cref", "cfast"].map((n) => net.host(n));
    const srv = await lab.server("srv", { args: ["--crypto", "openssl", "--udp", "batched"] });
    const [cr, cf] = await Promise.all([
      lab.client("cref", srv, { args: ["--crypto", "webcrypto", "--udp", "deno"] }),
      lab.client("cfast", srv, { args: ["--crypto", "openssl", "--udp", "batched"] }),
    ]);
    assertMatch(srv.output(), /data path crypto=openssl udp=batched/);
    assertMatch(cr.output(), /data path crypto=webcrypto udp=deno/);
    await hr.waitForPing(srv.overlay, 5000);
    assertIntact(await hr.tcpTransfer(hs, srv.overlay, 2 << 20), 2 << 20);
    assertIntact(await hs.tcpTransfer(hr, cr.overlay, 2 << 20), 2 << 20);
    // Relayed: sealed by WebCrypto, opened and resealed by OpenSSL, opened by OpenSSL, and back.
    assertIntact(await hr.tcpTransfer(hf, cf.overlay, 1 << 20), 1 << 20);
    assertIntact(await hf.tcpTransfer(hr, cr.overlay, 1 << 20), 1 << 20);
  });
});
