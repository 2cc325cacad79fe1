/**
 * What someone on the path or without the key can do, in one process: a captured datagram replayed, a
 * datagram tampered with, a client with the wrong key, and garbage data for an unknown session. Each is
 * dropped, counted, and answered with nothing.
 */
import { assert, assertEquals } from "./assert.ts";
import { Inproc, SERVER_HOST, SERVER_PORT, settle, waitFor } from "./fakes/inproc.ts";
import { icmpEcho } from "./fakes/icmp.ts";
import type { WireDatagram } from "./fakes/memory_network.ts";
import { MSG_DATA, REKEY_TIMEOUT_MS } from "../src/protocol/constants.ts";
import { endpointFromParts } from "../src/net/endpoint.ts";
import { generateKey } from "../src/config/key_file.ts";

const serverEndpoint = endpointFromParts(SERVER_HOST, SERVER_PORT);

Deno.test("inproc: a replayed data datagram is dropped and counted, on the server and on the client", async () => {
  const n = await Inproc.start();
  try {
    const a = await n.connectedClient("198.51.100.10");
    const seen: WireDatagram[] = [];
    n.net.tap = (d) => {
      if (d.data[0] === MSG_DATA && d.data.length > 29) seen.push(d);
      return true;
    };
    const req = icmpEcho("10.0.0.2", "10.0.0.1", 1);
    a.tun.inject(req);
    assertEquals(await n.server.tun.nextWritten(), [req]);
    const rep = icmpEcho("10.0.0.1", "10.0.0.2", 1, true);
    n.server.tun.inject(rep);
    assertEquals(await a.tun.nextWritten(), [rep]);
    assertEquals(seen.length, 2);
    const [toServer, toClient] = seen;
    assert(n.net.inject(toServer.from, toServer.to, toServer.data));
    assert(n.net.inject(toClient.from, toClient.to, toClient.data));
    await waitFor(() => n.server.role.status().peers[0].drops.replay === 1, "server counted the replay");
    await waitFor(() => a.role.status().peers[0].drops.replay === 1, "client counted the replay");
    await settle();
    assertEquals(n.server.tun.takeWritten(), [], "the replay reached the server's TUN");
    assertEquals(a.tun.takeWritten(), [], "the replay reached the client's TUN");
    // A replay from another endpoint does not move the client's endpoint either.
    n.net.inject(endpointFromParts("203.0.113.9", 9), toServer.to, toServer.data);
    await waitFor(() => n.server.role.status().peers[0].drops.replay === 2, "second replay counted");
    assertEquals(n.server.role.status().peers[0].endpoint, "198.51.100.10:40000");
    // A tampered datagram fails authentication.
    const tampered = toServer.data.slice();
    tampered[tampered.length - 20] ^= 1;
    tampered[12]++; // a fresh counter, so it reaches the tag check
    n.net.inject(toServer.from, toServer.to, tampered);
    await waitFor(() => n.server.role.status().peers[0].drops.auth === 1, "tampered datagram counted");
    assertEquals(n.server.tun.takeWritten(), []);
  } finally {
    await n.stop();
  }
});

Deno.test("inproc: a client with the wrong key gets no answer and is counted as auth, retries too", async () => {
  const n = await Inproc.start();
  try {
    const c = await n.client("198.51.100.66", 40000, generateKey());
    await waitFor(() => n.server.role.status().drops.auth === 1, "server counted the initiation");
    n.clock.advance(REKEY_TIMEOUT_MS);
    n.tick();
    await waitFor(() => n.server.role.status().drops.auth === 2, "server counted the retry");
    await settle();
    assertEquals(c.udp.received, 0, "the server answered a client with the wrong key");
    assertEquals(c.role.status().address, null);
    assertEquals(n.server.role.status().peers, []);
    assertEquals(n.server.handshakes.refused.get("unknown-key"), 2);
    assertEquals(n.server.handshakes.completed, 0);
    // Data for a session index nobody holds: dropped, counted, unanswered.
    const junk = new Uint8Array(100);
    junk[0] = MSG_DATA;
    junk.fill(7, 1);
    n.net.inject(c.udp.endpoint, serverEndpoint, junk);
    await waitFor(() => n.server.role.status().drops.auth === 3, "server counted the unknown index");
    await settle();
    assertEquals(c.udp.received, 0);
    assertEquals(n.server.tun.takeWritten(), []);
  } finally {
    await n.stop();
  }
});
