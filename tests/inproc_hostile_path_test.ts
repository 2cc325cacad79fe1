/**
 * An on-path attacker against a client, in one process: the server's datagrams relayed from another source
 * (they authenticate), a handshake response or cookie reply from another address, and inner packets from the
 * server with a source the client never asked for. Each is dropped and counted; nothing moves the client's
 * endpoint, and the tunnel works again once the attack stops.
 */
import { assert, assertEquals } from "./assert.ts";
import { Inproc, SERVER_HOST, SERVER_PORT, settle, waitFor } from "./fakes/inproc.ts";
import { icmpEcho } from "./fakes/icmp.ts";
import type { WireDatagram } from "./fakes/memory_network.ts";
import { COOKIE_REPLY_LENGTH, MSG_COOKIE_REPLY, MSG_DATA, MSG_RESPONSE } from "../src/protocol/constants.ts";
import { endpointFromParts, endpointToString } from "../src/net/endpoint.ts";
import { requireCidr } from "../src/net/cidr.ts";

const SERVER = `${SERVER_HOST}:${SERVER_PORT}`;
/** Where the attacker relays the server's datagrams from (a DNS port, as in the issue). */
const ATTACKER = endpointFromParts("203.0.113.9", 53);

Deno.test("inproc hostile path: the server's datagrams relayed from another source are dropped as wrong_source", async () => {
  const n = await Inproc.start();
  try {
    const a = await n.connectedClient("198.51.100.10");
    // The attacker holds back the server's next data datagram and delivers it from its own address.
    const held: WireDatagram[] = [];
    n.net.tap = (d) => {
      if (d.data[0] === MSG_DATA && endpointToString(d.from) === SERVER && d.data.length > 32) {
        held.push(d);
        return false;
      }
      return true;
    };
    const rep = icmpEcho("10.0.0.1", "10.0.0.2", 1, true);
    n.server.tun.inject(rep);
    await waitFor(() => held.length === 1, "the attacker holds the server's datagram");
    assert(n.net.inject(ATTACKER, held[0].to, held[0].data));
    await waitFor(() => a.role.status().peers[0].drops.wrong_source === 1, "client counted wrong_source");
    await settle();
    assertEquals(a.tun.takeWritten(), [], "a relayed datagram reached the client's TUN");
    const st = a.role.status().peers[0];
    assertEquals(st.endpoint, SERVER, "the relayed datagram moved the client's endpoint");
    assertEquals(
      st.drops.auth + st.drops.replay,
      0,
      "dropped before opening: no AEAD work, no counter taken",
    );
    // The client keeps sending to the configured server, not to the attacker.
    const sentTo: string[] = [];
    n.net.tap = (d) => {
      if (endpointToString(d.from) === "198.51.100.10:40000") sentTo.push(endpointToString(d.to));
      return true;
    };
    const req = icmpEcho("10.0.0.2", "10.0.0.1", 2);
    a.tun.inject(req);
    assertEquals(await n.server.tun.nextWritten(), [req]);
    assertEquals(sentTo, [SERVER]);
    // The same datagram from the right source is still fresh (its counter was not taken), and traffic resumes.
    assert(n.net.inject(held[0].from, held[0].to, held[0].data));
    assertEquals(await a.tun.nextWritten(), [rep]);
    const rep2 = icmpEcho("10.0.0.1", "10.0.0.2", 3, true);
    n.server.tun.inject(rep2);
    assertEquals(await a.tun.nextWritten(), [rep2]);
    // Many relayed copies: all dropped, still no move.
    for (let i = 0; i < 5; i++) n.net.inject(ATTACKER, held[0].to, held[0].data);
    await waitFor(() => a.role.status().peers[0].drops.wrong_source === 6, "every copy counted");
    assertEquals(a.role.status().peers[0].endpoint, SERVER);
  } finally {
    await n.stop();
  }
});

Deno.test("inproc hostile path: a handshake response or cookie reply from another address is not taken", async () => {
  const n = await Inproc.start();
  try {
    const held: WireDatagram[] = [];
    n.net.tap = (d) => {
      if (d.data[0] === MSG_RESPONSE) {
        held.push(d);
        return false;
      }
      return true;
    };
    const c = await n.client("198.51.100.11");
    await waitFor(() => held.length === 1, "the attacker holds the response");
    assert(n.net.inject(ATTACKER, held[0].to, held[0].data));
    await waitFor(() => c.role.status().drops.wrong_source === 1, "response counted wrong_source");
    // A cookie reply from elsewhere is refused the same way, before any work on it.
    const cookie = new Uint8Array(COOKIE_REPLY_LENGTH);
    cookie[0] = MSG_COOKIE_REPLY;
    assert(n.net.inject(ATTACKER, held[0].to, cookie));
    await waitFor(() => c.role.status().drops.wrong_source === 2, "cookie reply counted wrong_source");
    await settle();
    assertEquals(c.role.status().address, null, "a response from another address completed the handshake");
    assertEquals(c.handshakes.completed, 0);
    assertEquals(c.handshakes.refused.get("wrong_source"), 2);
    assertEquals(c.role.status().drops.malformed, 0);
    // The genuine response, from where the initiation went, completes it.
    n.net.tap = null;
    assert(n.net.inject(held[0].from, held[0].to, held[0].data));
    await waitFor(() => c.role.status().address !== null, "the response from the server completes");
    assertEquals(c.role.status().peers[0].endpoint, SERVER);
  } finally {
    await n.stop();
  }
});

Deno.test("inproc hostile path: inner packets from the server need a source in the overlay or the client's routes", async () => {
  const n = await Inproc.start();
  try {
    const a = await n.connectedClient("198.51.100.12", 40000, { routes: [requireCidr("192.168.50.0/24")] });
    const foreign = icmpEcho("8.8.8.8", "10.0.0.2", 1, true);
    n.server.tun.inject(foreign);
    await waitFor(() => a.role.status().peers[0].drops.source === 1, "foreign source counted");
    await settle();
    assertEquals(a.tun.takeWritten(), [], "a packet from a foreign source reached the client's TUN");
    const overlay = icmpEcho("10.0.0.1", "10.0.0.2", 2, true);
    n.server.tun.inject(overlay);
    assertEquals(await a.tun.nextWritten(), [overlay]);
    const routed = icmpEcho("192.168.50.7", "10.0.0.2", 3, true);
    n.server.tun.inject(routed);
    assertEquals(await a.tun.nextWritten(), [routed]);
    assertEquals(a.role.status().peers[0].drops.source, 1);
    assertEquals(a.role.status().peers[0].drops.no_route, 0);
  } finally {
    await n.stop();
  }
});

Deno.test("inproc hostile path: with --default-route any inner source is accepted", async () => {
  const n = await Inproc.start();
  try {
    // The host changes (full-tunnel routes) stay off in the fake; only the client's own checks see the flag.
    const a = await n.connectedClient("198.51.100.13", 40000, { defaultRoute: true });
    const web = icmpEcho("8.8.8.8", "10.0.0.2", 1, true);
    n.server.tun.inject(web);
    assertEquals(await a.tun.nextWritten(), [web]);
    assertEquals(a.role.status().peers[0].drops.source, 0);
  } finally {
    await n.stop();
  }
});
