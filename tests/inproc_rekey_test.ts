/**
 * Rekey with a fake clock, in one process: at 120 s the client handshakes again, traffic moves to the new
 * session without losing a packet in either direction, and past 180 s (the old session refused) it still flows.
 */
import { assertEquals } from "./assert.ts";
import { endpointEquals } from "../src/net/endpoint.ts";
import { Inproc, waitFor } from "./fakes/inproc.ts";
import { icmpEcho } from "./fakes/icmp.ts";
import { zeroDrops } from "../src/ops/status_report.ts";
import {
  MSG_DATA,
  MSG_INITIATION,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_TIME_MS,
} from "../src/protocol/constants.ts";

/** The receiver index of a data datagram. */
const indexOf = (d: Uint8Array) => new DataView(d.buffer, d.byteOffset).getUint32(1);

Deno.test("inproc: rekey at 120 s on a fake clock: a new session, no packet lost either way", async () => {
  const n = await Inproc.start();
  try {
    const a = await n.connectedClient("198.51.100.10");
    const toServer = new Set<number>();
    let initiations = 0;
    n.net.tap = (d) => {
      if (d.data[0] === MSG_INITIATION) initiations++;
      if (d.data[0] === MSG_DATA && d.data.length > 29 && endpointEquals(d.from, a.udp.endpoint)) {
        toServer.add(indexOf(d.data));
      }
      return true;
    };
    let seq = 0;
    const pingBothWays = async () => {
      seq++;
      const req = icmpEcho("10.0.0.2", "10.0.0.1", seq);
      a.tun.inject(req);
      assertEquals(await n.server.tun.nextWritten(), [req], `request ${seq} lost`);
      const rep = icmpEcho("10.0.0.1", "10.0.0.2", seq, true);
      n.server.tun.inject(rep);
      assertEquals(await a.tun.nextWritten(), [rep], `reply ${seq} lost`);
    };
    await pingBothWays();
    assertEquals(toServer.size, 1);
    const [first] = toServer;

    n.clock.advance(REKEY_AFTER_TIME_MS - 1000);
    n.tick();
    await pingBothWays();
    assertEquals(initiations, 0, "rekeyed before 120 s");

    n.clock.advance(1000);
    n.tick(); // the session is 120 s old: the client starts a handshake
    assertEquals(initiations, 0); // it is built asynchronously; traffic keeps flowing meanwhile
    for (let i = 0; i < 30 && toServer.size < 2; i++) {
      await pingBothWays();
      await new Promise((r) => setTimeout(r, 1));
    }
    await waitFor(() => toServer.size === 2, "client sends on a new session");
    assertEquals(initiations, 1);
    const second = [...toServer].find((i) => i !== first)!;
    await pingBothWays();

    // Past 180 s the first session is refused everywhere; the new one (61 s old) carries everything.
    n.clock.advance(REJECT_AFTER_TIME_MS - REKEY_AFTER_TIME_MS + 1000);
    n.tick();
    toServer.clear();
    for (let i = 0; i < 3; i++) await pingBothWays();
    assertEquals(initiations, 1, "no second handshake needed");
    assertEquals([...toServer], [second]);
    const peer = n.server.role.status().peers[0];
    assertEquals(peer.drops, zeroDrops());
    assertEquals(n.server.role.status().drops, zeroDrops());
  } finally {
    await n.stop();
  }
});
