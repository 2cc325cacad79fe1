/**
 * End-to-end: the real `vpn` processes under hostile or changing conditions: strangers with the wrong
 * key, fuzzed and replayed datagrams, restarts of either side, a roaming client, and pinned peers.
 */
import { assert, assertEquals, assertMatch, assertNotMatch } from "./assert.ts";
import type { Capture, TransferResult } from "./netns/hosts.ts";
import type { StatusReport } from "../src/ops/status_report.ts";
import {
  aliceAndBobConfig,
  type CapturedUdp,
  eventually,
  newKey,
  pcapUdp,
  throttle,
  VPN_PORT,
  withVpnLab,
} from "./netns/vpn.ts";

function assertIntact(r: TransferResult, bytes: number): void {
  assertEquals(r.sentBytes, bytes);
  assertEquals(r.receivedBytes, bytes);
  assertEquals(r.receivedSha256, r.sentSha256);
}

/** Drops of one kind, summed over the tunnel and every peer. */
function drops(st: StatusReport, kind: keyof StatusReport["drops"]): number {
  return st.drops[kind] + st.peers.reduce((n, p) => n + p.drops[kind], 0);
}

function allDrops(st: StatusReport): number {
  return (["auth", "replay", "no_route", "oversize", "malformed", "busy"] as const).reduce(
    (n, k) => n + drops(st, k),
    0,
  );
}

/** Waits until `cap` holds a datagram matching `pred`; returns everything parsed so far. */
async function waitForDatagram(cap: Capture, pred: (d: CapturedUdp) => boolean): Promise<CapturedUdp[]> {
  let seen: CapturedUdp[] = [];
  const ok = await eventually(
    async () => {
      const bytes = await cap.peek();
      seen = bytes.length >= 24 ? pcapUdp(bytes) : [];
      return seen.some(pred);
    },
    5000,
    50,
  );
  assert(ok, "expected datagram not captured within 5 s");
  return seen;
}

function logLines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

Deno.test("e2e: a client with the wrong key gets silence, and the server does not log per datagram", async () => {
  await withVpnLab({ hosts: ["srv", "bad"] }, async (lab, net) => {
    const [hs, hb] = [net.host("srv"), net.host("bad")];
    let srv = await lab.server("srv");
    const cap = await hb.capture("udp", 20_000, { tool: "tcpdump" });
    const bad = await lab.client("bad", srv, { key: newKey(), wait: false });
    const seen = await waitForDatagram(cap, (d) => d.dstPort === VPN_PORT);
    const initiation = seen.find((d) => d.dstPort === VPN_PORT)!.payload;
    assertEquals(initiation[0], 1, "the client's first datagram is an initiation");

    const before = logLines(srv.output()).length;
    // 200 copies of the stranger's initiation, 200 random datagrams, 200 data packets with unknown indexes.
    const junk: Uint8Array[] = [];
    for (let i = 0; i < 200; i++) junk.push(initiation);
    for (let i = 0; i < 200; i++) junk.push(crypto.getRandomValues(new Uint8Array(20 + i * 7)));
    for (let i = 0; i < 200; i++) {
      const d = crypto.getRandomValues(new Uint8Array(29 + 84));
      d[0] = 3;
      junk.push(d);
    }
    assertEquals((await hb.udpBlast(hs.address, VPN_PORT, junk, 5000)).sent, junk.length);
    let st = await srv.status();
    // Every junk datagram costs at most a tag check and is counted (the handshake queue may shed some).
    assert(drops(st, "auth") >= 250, `auth drops ${JSON.stringify(st.drops)}`);
    assert(!(await hb.ping(srv.overlay)), "the stranger reached the server's overlay address");
    assertEquals(st.peers.length, 0);
    assertEquals((await bad.status()).address, null);
    assertNotMatch(bad.output(), /handshake complete/);

    const captured = pcapUdp(await cap.stop());
    assertEquals(cap.dropped, 0);
    assert(
      captured.filter((d) => d.dstPort === VPN_PORT).length > junk.length,
      "capture missed our datagrams",
    );
    const answers = captured.filter((d) => d.srcPort === VPN_PORT);
    assertEquals(answers.length, 0, `the server answered a stranger ${answers.length} times`);
    // At info level the 600 drops leave no trace in the log.
    assertEquals(logLines(srv.output()).length, before, `server logged:\n${srv.output()}`);

    // At debug level the same drop is logged.
    assertEquals((await srv.stop()).code, 0);
    srv = await lab.server("srv", { args: ["--log-level", "debug"] });
    await hb.udpBlast(hs.address, VPN_PORT, [initiation], 2000);
    await srv.proc.waitForOutput(/DEBUG initiation dropped reason=unknown-key from=10\.203\.0\.2:\d+/, 5000);
    st = await srv.status();
    assert(drops(st, "auth") >= 1);
  });
});

Deno.test("e2e: 20 000 random and mutated datagrams leave the server up and the tunnel working", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "fz"] }, async (lab, net) => {
    const [hs, h1, hf] = ["srv", "c1", "fz"].map((n) => net.host(n));
    const srv = await lab.server("srv");
    const cap = await h1.capture(`udp dst port ${VPN_PORT}`, 20_000, { tool: "tcpdump" });
    await lab.client("c1", srv);
    await h1.waitForPing(srv.overlay, 5000);
    assertIntact(await h1.tcpTransfer(hs, srv.overlay, 64 << 10), 64 << 10);
    const real = pcapUdp(await cap.stop()).map((d) => d.payload);
    assertEquals(cap.dropped, 0);
    assert(real.some((p) => p[0] === 1) && real.some((p) => p[0] === 3 && p.length > 100), "no real packets");

    const rnd = (n: number) => Math.floor(Math.random() * n);
    function* fuzz(): Generator<Uint8Array> {
      for (let i = 0;; i++) {
        const base = real[rnd(real.length)];
        switch (i % 4) {
          case 0: // random bytes
            yield crypto.getRandomValues(new Uint8Array(rnd(1500)));
            break;
          case 1: { // a real packet with a few bits flipped
            const d = base.slice();
            for (let k = 1 + rnd(4); k > 0; k--) d[rnd(d.length)] ^= 1 << rnd(8);
            yield d;
            break;
          }
          case 2: // a real packet cut short
            yield base.slice(0, rnd(base.length));
            break;
          default: { // a valid type byte and a real packet's length, random body
            const d = crypto.getRandomValues(new Uint8Array(base.length));
            d[0] = 1 + rnd(3);
            yield d;
          }
        }
      }
    }
    const before = await srv.status();
    const t0 = performance.now();
    const res = await hf.udpBlast(hs.address, VPN_PORT, fuzz(), 8000, 20_000);
    console.log(`fuzz: ${res.sent} datagrams in ${(performance.now() - t0).toFixed(0)} ms`);
    assertEquals(res.queued, 20_000, "the blast ran out of time");
    assertEquals(res.sent, 20_000);

    assertEquals(srv.proc.status, undefined, "the server exited");
    const after = await srv.status();
    const counted = allDrops(after) - allDrops(before);
    console.log(`fuzz: ${counted} drops counted ${JSON.stringify(after.drops)}`);
    assert(counted >= 10_000, `only ${counted} of 20000 junk datagrams counted as drops`);
    await h1.waitForPing(srv.overlay, 5000);
    assertIntact(await h1.tcpTransfer(hs, srv.overlay, 256 << 10), 256 << 10);
    assertNotMatch(srv.output(), /ERROR|peer roamed/);
  });
});

Deno.test("e2e: a replayed data packet is dropped and counted, and does not move the peer", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const [hs, h1] = [net.host("srv"), net.host("c1")];
    const srv = await lab.server("srv");
    await lab.client("c1", srv);
    await h1.waitForPing(srv.overlay, 5000);
    const cap = await h1.capture(`udp dst port ${VPN_PORT}`, 20_000, { tool: "tcpdump" });
    assert(await h1.ping(srv.overlay, { count: 5 }));
    const data = pcapUdp(await cap.stop()).filter((d) => d.payload[0] === 3 && d.payload.length > 29);
    assertEquals(cap.dropped, 0);
    assert(data.length >= 5, `captured ${data.length} data packets`);

    const before = await srv.status();
    const endpoint = before.peers[0].endpoint;
    assertEquals(endpoint, `${h1.address}:${data[0].srcPort}`);
    // From another port: the server checks the counter before it would trust the new source.
    await h1.udpBlast(hs.address, VPN_PORT, data.map((d) => d.payload), 3000);
    const ok = await eventually(
      async () => drops(await srv.status(), "replay") - drops(before, "replay") >= data.length,
      3000,
    );
    const after = await srv.status();
    assert(ok, `replay drops ${drops(before, "replay")} -> ${drops(after, "replay")}, resent ${data.length}`);
    assertEquals(after.peers[0].endpoint, endpoint, "a replayed packet moved the peer");
    assertEquals(after.peers[0].rx_packets, before.peers[0].rx_packets, "a replayed packet was accepted");
    assertNotMatch(srv.output(), /peer roamed/);
  });
});

Deno.test("e2e: a restarted client gets its address back and connectivity at once", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const h1 = net.host("c1");
    const srv = await lab.server("srv");
    const c1 = await lab.client("c1", srv, { address: "10.0.0.7" });
    assertEquals(c1.overlay, "10.0.0.7");
    await h1.waitForPing(srv.overlay, 5000);
    assertEquals((await c1.stop()).code, 0);

    const t0 = performance.now();
    const again = await lab.client("c1", srv, { address: "10.0.0.7", tun: c1.tun });
    assertEquals(again.overlay, "10.0.0.7");
    await h1.waitForPing(srv.overlay, 3000);
    console.log(`client restart: connectivity after ${(performance.now() - t0).toFixed(0)} ms`);
    const st = await srv.status();
    assertEquals(st.peers.map((p) => p.address), ["10.0.0.7"]);
    assert(await net.host("srv").ping("10.0.0.7"), "server -> restarted client");
  });
});

Deno.test("e2e: after a server restart the client recovers by itself", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const h1 = net.host("c1");
    const srv = await lab.server("srv");
    const c1 = await lab.client("c1", srv, { args: ["--log-level", "debug"] }); // rekeys are at debug
    await h1.waitForPing(srv.overlay, 5000);
    assertEquals((await srv.stop()).code, 0);
    const srv2 = await lab.server("srv");
    const t0 = performance.now();
    // Pings keep data flowing, so the client notices the silence (15 s) and handshakes again.
    await h1.waitForPing(srv2.overlay, 30_000);
    console.log(`server restart: connectivity after ${(performance.now() - t0).toFixed(0)} ms`);
    assertMatch(c1.output(), /server stopped answering; handshaking again/);
    assertMatch(c1.output(), /DEBUG\s+rekeyed/);
    assertEquals((await srv2.status()).peers.map((p) => p.address), [c1.overlay]);
  });
});

Deno.test("e2e: a client that moves to a new underlay address mid-transfer keeps going", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const [hs, h1] = [net.host("srv"), net.host("c1")];
    const srv = await lab.server("srv");
    const c1 = await lab.client("c1", srv);
    await h1.waitForPing(srv.overlay, 5000);
    // Slow the client's uplink (16 Mbit/s: 4 MiB take ~2 s) so the move happens mid-transfer.
    await throttle(h1, "16mbit");
    await h1.runOk(["sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=1"]);
    let done = 0;
    const transfer = h1.tcpTransfer(hs, srv.overlay, 4 << 20, { timeoutMs: 30_000 }).finally(() => {
      done = performance.now();
    });
    // Move once the server has seen part of it (but far from all).
    const base = (await srv.status()).peers[0].rx_bytes;
    assert(
      await eventually(async () => (await srv.status()).peers[0].rx_bytes - base >= 512 << 10, 10_000, 50),
      "the transfer did not start",
    );
    await h1.addAddress("10.203.0.50/24");
    await h1.delAddress(`${h1.address}/24`);
    const moved = performance.now();
    assertMatch(await h1.runOk(["ip", "route", "get", hs.address]), /src 10\.203\.0\.50/);
    assertIntact(await transfer, 4 << 20);
    assert(done > moved, "the transfer ended before the move");
    await srv.proc.waitForOutput(/peer roamed peer=10\.0\.0\.2 endpoint=10\.203\.0\.50:\d+/, 5000);
    const st = await srv.status();
    assertMatch(st.peers[0].endpoint ?? "", /^10\.203\.0\.50:/);
    assertEquals(st.peers[0].address, c1.overlay);
    assert(await hs.ping(c1.overlay), "server -> roamed client");
  });
});

Deno.test("e2e: pinned peers: each key gets its own address, nobody takes or spoofs another's", async () => {
  await withVpnLab({ hosts: ["srv", "ca", "cb", "cs"] }, async (lab, net) => {
    const [hs, ha, hb] = ["srv", "ca", "cb"].map((n) => net.host(n));
    const [keyA, keyB] = [newKey(), newKey()];
    const [fileA, fileB] = [await lab.writeKeyFile("alice", keyA), await lab.writeKeyFile("bob", keyB)];
    assertEquals((await Deno.stat(fileA)).mode! & 0o777, 0o600);
    const srv = await lab.server("srv", {
      config: aliceAndBobConfig(fileA, fileB),
    });
    assertMatch(srv.output(), /peers=2/);
    const a = await lab.client("ca", srv, { keyFile: fileA });
    assertEquals(a.overlay, "10.0.0.10");
    // Bob asks for Alice's address and still gets his own.
    const b = await lab.client("cb", srv, { keyFile: fileB, address: "10.0.0.10" });
    assertEquals(b.overlay, "10.0.0.11");
    // So does a client with the shared key.
    const s = await lab.client("cs", srv, { address: "10.0.0.10" });
    assertEquals(s.overlay, "10.0.0.2");
    await Promise.all([ha, hb].map((h) => h.waitForPing(srv.overlay, 5000)));
    assert(await hs.ping("10.0.0.10"), "Alice lost her address");

    // Bob forges Alice's source address: the server drops it, charged to Bob, and never answers.
    await hb.runOk(["ip", "addr", "add", "10.0.0.10/32", "dev", b.tun]);
    const before = await srv.status();
    const spoof = await hb.run([
      "ping",
      "-n",
      "-c",
      "3",
      "-i",
      "0.2",
      "-W",
      "1",
      "-I",
      "10.0.0.10",
      srv.overlay,
    ]);
    assert(spoof.code !== 0, `a ping from a forged source was answered:\n${spoof.stdout}`);
    const after = await srv.status();
    const bob = (st: StatusReport) => st.peers.find((p) => p.name === "bob")!;
    assert(bob(after).drops.no_route - bob(before).drops.no_route >= 3, JSON.stringify(bob(after)));
    const alice = (st: StatusReport) => st.peers.find((p) => p.name === "alice")!;
    assertEquals(
      alice(after).tx_packets,
      alice(before).tx_packets,
      "the server answered the forgery to Alice",
    );
    assertEquals(alice(after).endpoint?.split(":")[0], ha.address);
    assert(await hs.ping("10.0.0.10"), "Alice's address moved");
  });
});
