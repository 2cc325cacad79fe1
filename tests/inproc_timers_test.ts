/**
 * The timer rules as the roles apply them, in one process on a fake clock: the server's passive keepalive,
 * the client's keepalive interval, its retry backoff, "server stopped answering", and a session expiring.
 */
import { assertEquals } from "./assert.ts";
import { endpointEquals } from "../src/net/endpoint.ts";
import { Inproc, settle, waitFor } from "./fakes/inproc.ts";
import { icmpEcho } from "./fakes/icmp.ts";
import type { WireDatagram } from "./fakes/memory_network.ts";
import {
  DATA_OVERHEAD,
  DEFAULT_KEEPALIVE_SECONDS,
  MSG_DATA,
  MSG_INITIATION,
  PASSIVE_KEEPALIVE_MS,
  REJECT_AFTER_TIME_MS,
  REKEY_TIMEOUT_MS,
  UNANSWERED_TIMEOUT_MS,
} from "../src/protocol/constants.ts";

const isKeepalive = (d: WireDatagram) => d.data[0] === MSG_DATA && d.data.length === DATA_OVERHEAD;

Deno.test("inproc timers: the server answers unanswered data with a keepalive after 10 s", async () => {
  const n = await Inproc.start();
  try {
    const a = await n.connectedClient("198.51.100.10");
    const fromServer: WireDatagram[] = [];
    n.net.tap = (d) => {
      if (endpointEquals(d.from, n.server.udp.endpoint)) fromServer.push(d);
      return true;
    };
    a.tun.inject(icmpEcho("10.0.0.2", "10.0.0.1", 1));
    await n.server.tun.nextWritten();
    n.clock.advance(PASSIVE_KEEPALIVE_MS - 1);
    n.server.role.tick();
    await settle();
    assertEquals(fromServer.length, 0);
    n.clock.advance(1);
    n.server.role.tick();
    await waitFor(() => fromServer.length === 1, "server sent a keepalive");
    assertEquals(isKeepalive(fromServer[0]), true);
    n.clock.advance(PASSIVE_KEEPALIVE_MS);
    n.server.role.tick();
    await settle();
    assertEquals(fromServer.length, 1, "one keepalive answers one burst");
  } finally {
    await n.stop();
  }
});

Deno.test("inproc timers: the client sends keepalives at the announced interval", async () => {
  const n = await Inproc.start();
  try {
    const a = await n.connectedClient("198.51.100.10");
    const fromClient: WireDatagram[] = [];
    n.net.tap = (d) => {
      if (endpointEquals(d.from, a.udp.endpoint)) fromClient.push(d);
      return true;
    };
    n.clock.advance(DEFAULT_KEEPALIVE_SECONDS * 1000 - 1);
    a.role.tick();
    await settle();
    assertEquals(fromClient.length, 0);
    n.clock.advance(1);
    a.role.tick();
    await waitFor(() => fromClient.length === 1, "client sent a keepalive");
    assertEquals(isKeepalive(fromClient[0]), true);
  } finally {
    await n.stop();
  }
});

Deno.test("inproc timers: a client whose server never answers retries after 0.5, 1, 2, 4, 8, 16, 30, 30 s", async () => {
  const n = await Inproc.start();
  try {
    const sentAt: number[] = [];
    const start = n.clock.now();
    n.net.tap = (d) => {
      if (d.data[0] === MSG_INITIATION) sentAt.push(n.clock.now() - start);
      return false; // the server hears nothing
    };
    await n.client("198.51.100.10");
    await waitFor(() => sentAt.length === 1, "first initiation");
    // The clock stands still while the client builds each initiation (its crypto is asynchronous).
    for (const wait of [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]) {
      const sent = sentAt.length;
      n.clock.advance(wait - 1);
      n.tick();
      await settle();
      assertEquals(sentAt.length, sent, `retried before ${wait} ms`);
      n.clock.advance(1);
      n.tick();
      await waitFor(() => sentAt.length === sent + 1, `a retry after ${wait} ms`);
    }
    assertEquals(sentAt, [0, 500, 1500, 3500, 7500, 15_500, 31_500, 61_500, 91_500]);
    assertEquals(REKEY_TIMEOUT_MS, 500);
  } finally {
    await n.stop();
  }
});

Deno.test("inproc timers: data unanswered for 15 s makes the client handshake again", async () => {
  const n = await Inproc.start();
  try {
    const a = await n.connectedClient("198.51.100.10");
    let initiations = 0;
    n.net.tap = (d) => {
      if (d.data[0] === MSG_INITIATION) initiations++;
      return !endpointEquals(d.from, n.server.udp.endpoint); // the server's replies are lost from now on
    };
    a.tun.inject(icmpEcho("10.0.0.2", "10.0.0.1", 1));
    await n.server.tun.nextWritten();
    n.clock.advance(UNANSWERED_TIMEOUT_MS - 1000);
    a.role.tick();
    await settle();
    assertEquals(initiations, 0);
    n.clock.advance(1000);
    a.role.tick();
    await waitFor(() => initiations === 1, "client handshakes again");
  } finally {
    await n.stop();
  }
});

Deno.test("inproc timers: at 180 s without a new handshake the session is gone on both sides", async () => {
  const n = await Inproc.start();
  try {
    const a = await n.connectedClient("198.51.100.10");
    let initiations = 0;
    n.net.tap = (d) => {
      if (d.data[0] === MSG_INITIATION) initiations++;
      return d.data[0] !== MSG_INITIATION; // rekeys are lost
    };
    n.clock.advance(REJECT_AFTER_TIME_MS);
    n.tick();
    await waitFor(() => initiations === 1, "client handshakes for a new session");
    await settle();
    assertEquals(n.server.role.status().peers, [], "the server forgot the dynamic client");
    a.tun.inject(icmpEcho("10.0.0.2", "10.0.0.1", 1));
    await settle();
    assertEquals(n.server.tun.takeWritten(), [], "a packet went out on an expired session");
  } finally {
    await n.stop();
  }
});
