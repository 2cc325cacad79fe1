/**
 * A server and two clients in one process (channel TUNs, an in-memory network, no root): pings both ways,
 * client-to-client relay through the server, and a client that roams to a new source endpoint.
 */
import { assert, assertEquals } from "./assert.ts";
import { Inproc, settle, waitFor } from "./fakes/inproc.ts";
import { icmpEcho } from "./fakes/icmp.ts";
import { zeroDrops } from "../src/ops/status_report.ts";

for (const crypto of ["auto", "webcrypto"] as const) {
  Deno.test(`inproc (${crypto}): pings both ways between a client and the server, byte-exact`, async () => {
    const n = await Inproc.start(crypto);
    try {
      const a = await n.connectedClient("198.51.100.10");
      assertEquals(a.role.status().address, "10.0.0.2/24");
      assertEquals(a.network.interfaces.get(a.tun.name), {
        address: "10.0.0.2/24",
        address6: null,
        mtu: 1420,
      });
      for (let seq = 1; seq <= 5; seq++) {
        const req = icmpEcho("10.0.0.2", "10.0.0.1", seq);
        assert(a.tun.inject(req));
        assertEquals(await n.server.tun.nextWritten(), [req]);
        const rep = icmpEcho("10.0.0.1", "10.0.0.2", seq, true);
        assert(n.server.tun.inject(rep));
        assertEquals(await a.tun.nextWritten(), [rep]);
      }
      const peer = n.server.role.status().peers[0];
      assertEquals(peer.address, "10.0.0.2");
      assertEquals(peer.drops, zeroDrops());
      // A burst larger than one batch arrives whole and in order.
      const burst = Array.from({ length: 300 }, (_, i) => icmpEcho("10.0.0.2", "10.0.0.1", 100 + i));
      for (const p of burst) a.tun.inject(p);
      assertEquals(await n.server.tun.nextWritten(burst.length), burst);
    } finally {
      await n.stop();
    }
  });
}

Deno.test("inproc: client-to-client traffic is relayed by the server and never reaches its TUN", async () => {
  const n = await Inproc.start();
  try {
    const a = await n.connectedClient("198.51.100.10");
    const b = await n.connectedClient("198.51.100.20");
    assertEquals(b.role.status().address, "10.0.0.3/24");
    const ab = icmpEcho("10.0.0.2", "10.0.0.3", 1);
    a.tun.inject(ab);
    assertEquals(await b.tun.nextWritten(), [ab]);
    const ba = icmpEcho("10.0.0.3", "10.0.0.2", 1, true);
    b.tun.inject(ba);
    assertEquals(await a.tun.nextWritten(), [ba]);
    assertEquals(n.server.tun.takeWritten(), []);
    // A client may not send with another client's source address.
    a.tun.inject(icmpEcho("10.0.0.3", "10.0.0.1", 2));
    await waitFor(
      () => n.server.role.status().peers.find((p) => p.address === "10.0.0.2")!.drops.no_route === 1,
      "spoof dropped",
    );
    assertEquals(n.server.tun.takeWritten(), []);
  } finally {
    await n.stop();
  }
});

Deno.test("inproc: with client_to_client = false the server drops relayed packets and counts them", async () => {
  const n = await Inproc.start("auto", false);
  try {
    const a = await n.connectedClient("198.51.100.10");
    const b = await n.connectedClient("198.51.100.20");
    a.tun.inject(icmpEcho("10.0.0.2", "10.0.0.3", 1));
    await waitFor(
      () => n.server.role.status().peers.find((p) => p.address === "10.0.0.2")!.drops.relay === 1,
      "relay drop counted",
    );
    await settle();
    assertEquals(b.tun.takeWritten(), []);
    assertEquals(n.server.tun.takeWritten(), []);
  } finally {
    await n.stop();
  }
});

Deno.test("inproc: the MTU the server announces bounds what the client sends; larger packets are counted", async () => {
  const n = await Inproc.start();
  try {
    const a = await n.connectedClient("198.51.100.10");
    const fits = icmpEcho("10.0.0.2", "10.0.0.1", 1, false, 1420 - 28);
    a.tun.inject(icmpEcho("10.0.0.2", "10.0.0.1", 2, false, 1421 - 28));
    a.tun.inject(fits);
    assertEquals(await n.server.tun.nextWritten(), [fits]);
    assertEquals(a.role.status().drops.oversize, 1);
  } finally {
    await n.stop();
  }
});

Deno.test("inproc: a client that roams to a new endpoint keeps its traffic; replies follow it", async () => {
  const n = await Inproc.start();
  try {
    const a = await n.connectedClient("198.51.100.10");
    n.net.move(a.udp, "203.0.113.77", 61000);
    const req = icmpEcho("10.0.0.2", "10.0.0.1", 1);
    a.tun.inject(req);
    assertEquals(await n.server.tun.nextWritten(), [req]);
    assertEquals(n.server.role.status().peers[0].endpoint, "203.0.113.77:61000");
    const rep = icmpEcho("10.0.0.1", "10.0.0.2", 1, true);
    n.server.tun.inject(rep);
    assertEquals(await a.tun.nextWritten(), [rep]);
  } finally {
    await n.stop();
  }
});
