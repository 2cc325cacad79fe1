/**
 * End-to-end with TUN offloads on and off: 8 MiB intact both ways, over IPv4 and IPv6 inside the tunnel;
 * TSO super-packets are split before sealing and opened segments are coalesced before the TUN write, so a
 * wrong header, sequence number or checksum stalls or corrupts these transfers. Mixed ends interoperate.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import type { TransferResult } from "./netns/hosts.ts";
import { withVpnLab } from "./netns/vpn.ts";

function assertIntact(r: TransferResult, bytes: number): void {
  assertEquals(r.sentBytes, bytes);
  assertEquals(r.receivedBytes, bytes);
  assertEquals(r.receivedSha256, r.sentSha256);
}

const MIB8 = 8 << 20;
const CONFIG6 = '[server]\naddress6 = "fd00:78::1/64"\n';

for (const mode of ["auto", "off"] as const) {
  Deno.test(`e2e offload=${mode}: 8 MiB both ways over IPv4 and IPv6 inside`, async () => {
    await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
      const [hs, h1] = [net.host("srv"), net.host("c1")];
      const args = ["--offload", mode];
      const srv = await lab.server("srv", { args, config: CONFIG6 });
      const c1 = await lab.client("c1", srv, { args });
      const shown = mode === "auto" ? /data path .*offload=tso(\+uso)?\+gro\b/ : /data path .*offload=off/;
      for (const n of [srv, c1]) assertMatch(n.output(), shown);
      await h1.waitForPing(srv.overlay, 5000);
      assertIntact(await h1.tcpTransfer(hs, srv.overlay, MIB8), MIB8);
      assertIntact(await hs.tcpTransfer(h1, c1.overlay, MIB8), MIB8);
      await h1.waitForPing("fd00:78::1", 5000);
      assertIntact(await h1.tcpTransfer(hs, "fd00:78::1", MIB8), MIB8);
      assertIntact(await hs.tcpTransfer(h1, c1.overlay6, MIB8), MIB8);
    });
  });
}

Deno.test("e2e offload: an offloading server carries a client without offloads and a reference client", async () => {
  await withVpnLab({ hosts: ["srv", "coff", "cref"] }, async (lab, net) => {
    const [hs, ho, hr] = ["srv", "coff", "cref"].map((n) => net.host(n));
    const srv = await lab.server("srv", { args: ["--offload", "auto"] });
    const [coff, cref] = await Promise.all([
      lab.client("coff", srv, { args: ["--offload", "off"] }),
      lab.client("cref", srv, { args: ["--crypto", "webcrypto", "--udp", "deno", "--offload", "off"] }),
    ]);
    await Promise.all([ho.waitForPing(srv.overlay, 5000), hr.waitForPing(srv.overlay, 5000)]);
    assertIntact(await hs.tcpTransfer(ho, coff.overlay, MIB8), MIB8);
    assertIntact(await ho.tcpTransfer(hs, srv.overlay, MIB8), MIB8);
    assertIntact(await hs.tcpTransfer(hr, cref.overlay, 2 << 20), 2 << 20);
    // Relayed client to client through the offloading server.
    assertIntact(await hr.tcpTransfer(ho, coff.overlay, 1 << 20), 1 << 20);
  });
});
