/**
 * End-to-end: the handshake under floods from a third namespace (real processes, `flood_tool.ts` at full
 * speed): junk, junk with a captured key id, a replayed initiation, a key holder's valid initiations, and
 * initiations from the future. Real clients must still connect within 2 s and tunnels keep working.
 */
import { assert, assertEquals } from "./assert.ts";
import type { StatusReport } from "../src/ops/status_report.ts";
import {
  aliceAndBobConfig,
  newKey,
  pcapUdp,
  VPN_PORT,
  VpnLab,
  type VpnNode,
  withVpnLab,
} from "./netns/vpn.ts";
import { connectMs, flood, pingLoss, rssKiB, sleep } from "./netns/flood.ts";

const FLOOD_MS = 10_000;
/** The functional bound: a client started during a flood connects within this (its own log's clock). */
const CONNECT_BOUND_MS = 2000;

function total(st: StatusReport, kind: keyof StatusReport["drops"]): number {
  return st.drops[kind] + st.peers.reduce((n, p) => n + p.drops[kind], 0);
}

async function connectDuring(lab: VpnLab, host: string, srv: VpnNode, o: { keyFile?: string } = {}) {
  const c = await lab.client(host, srv, { ...o, wait: false });
  await VpnLab.connected(c, 10_000);
  const ms = connectMs(c);
  console.log(`${host}: connected in ${ms} ms`);
  assert(ms <= CONNECT_BOUND_MS, `${host} took ${ms} ms to connect`);
  return c;
}

/** A flood running while the test goes on; a failure before it is awaited must not surface unhandled. */
function background<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("e2e flood: junk at full speed: a new client connects, a tunnel keeps answering, memory bounded", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "c2", "atk"] }, async (lab, net) => {
    const [hs, h1, ha] = ["srv", "c1", "atk"].map((n) => net.host(n));
    const srv = await lab.server("srv");
    await lab.client("c1", srv);
    await h1.waitForPing(srv.overlay, 5000);
    const rss0 = rssKiB(srv.proc.pid);
    const flooding = background(flood(ha, "junk", hs.address, VPN_PORT, FLOOD_MS));
    await sleep(1500);
    const [, loss] = await Promise.all([connectDuring(lab, "c2", srv), pingLoss(h1, srv.overlay, 300, 0.02)]);
    const rss1 = rssKiB(srv.proc.pid);
    const f = await flooding;
    const st = await srv.status();
    console.log(
      `junk: ${f.sent} datagrams in ${FLOOD_MS} ms, ping loss ${loss.toFixed(2)} %, ` +
        `server RSS ${rss0} -> ${rss1} KiB, drops ${JSON.stringify(st.drops)}`,
    );
    assert(f.sent >= 500_000, `the flood sent only ${f.sent}`);
    assertEquals(f.received, 0, "the server answered junk");
    assert(loss < 1, `ping loss ${loss} %`);
    assert(rss1 - rss0 < 64 * 1024, `server memory grew by ${rss1 - rss0} KiB`);
    assert(total(st, "auth") >= f.sent / 4, "junk not counted");
  });
});

Deno.test("e2e flood: junk with a captured key id, then a replayed initiation: clients still connect", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "c2", "c3", "atk"] }, async (lab, net) => {
    const [hs, h1, ha] = ["srv", "c1", "atk"].map((n) => net.host(n));
    const srv = await lab.server("srv");
    const cap = await h1.capture(`udp dst port ${VPN_PORT}`, 20_000, { tool: "tcpdump" });
    await lab.client("c1", srv);
    await h1.waitForPing(srv.overlay, 5000);
    const init = pcapUdp(await cap.stop()).map((d) => d.payload).find((p) => p[0] === 1);
    assert(init !== undefined, "no initiation captured");
    const flooding = background(
      flood(ha, "keyid", hs.address, VPN_PORT, FLOOD_MS, hex(init.subarray(6, 14))),
    );
    await sleep(1500);
    await connectDuring(lab, "c2", srv);
    const f = await flooding;
    assertEquals(f.received, 0, "the server answered junk with a real key id");
    const replaying = background(flood(ha, "replay", hs.address, VPN_PORT, 5000, hex(init)));
    await sleep(1000);
    await connectDuring(lab, "c3", srv);
    const r = await replaying;
    const st = await srv.status();
    console.log(
      `captured key id: ${f.sent} sent; replay: ${r.sent} sent, ${r.received} answered; ${
        JSON.stringify(st.drops)
      }`,
    );
    assertEquals(r.received, 0, "the server answered a replayed initiation");
    assert(total(st, "replay") >= r.sent / 4, "replays not counted");
    assert(await h1.ping(srv.overlay), "c1's tunnel broke");
  });
});

Deno.test("e2e flood: a key holder floods valid initiations: it is rate-limited, other keys connect", async () => {
  await withVpnLab({ hosts: ["srv", "cb", "cs", "atk"] }, async (lab, net) => {
    const [hs, ha] = ["srv", "atk"].map((n) => net.host(n));
    const [keyA, keyB] = [newKey(), newKey()];
    const [fileA, fileB] = [await lab.writeKeyFile("alice", keyA), await lab.writeKeyFile("bob", keyB)];
    const srv = await lab.server("srv", {
      config: aliceAndBobConfig(fileA, fileB),
    });
    const flooding = background(flood(ha, "valid", hs.address, VPN_PORT, FLOOD_MS, keyA));
    await sleep(1500);
    const b = await connectDuring(lab, "cb", srv, { keyFile: fileB });
    assertEquals(b.overlay, "10.0.0.11");
    await connectDuring(lab, "cs", srv);
    const f = await flooding;
    const st = await srv.status();
    console.log(
      `valid-key flood: ${f.sent} sent, ${f.responses} responses, ${f.cookies} cookie replies; ${
        JSON.stringify(st.drops)
      }`,
    );
    assert(f.sent >= 20_000, `the flood sent only ${f.sent}`);
    // Alice's key: 50 handshakes a second at most (burst 5), whatever she sends.
    assert(f.responses <= 5 + 50 * (FLOOD_MS / 1000 + 1), `${f.responses} responses to the flooding key`);
    assert(total(st, "busy") > 0);
  });
});

Deno.test("e2e flood: initiations from the future under one key lock out nobody", async () => {
  await withVpnLab({ hosts: ["srv", "ca", "cb", "cs", "atk"] }, async (lab, net) => {
    const [hs, ha] = ["srv", "atk"].map((n) => net.host(n));
    const [keyA, keyB] = [newKey(), newKey()];
    const [fileA, fileB] = [await lab.writeKeyFile("alice", keyA), await lab.writeKeyFile("bob", keyB)];
    const srv = await lab.server("srv", {
      config: aliceAndBobConfig(fileA, fileB),
    });
    // A year ahead, under the shared key and under Alice's key at once.
    const floods = [
      flood(ha, "future", hs.address, VPN_PORT, 6000, lab.key),
      flood(ha, "future", hs.address, VPN_PORT, 6000, keyA),
    ];
    await sleep(1500);
    await connectDuring(lab, "cs", srv);
    await connectDuring(lab, "cb", srv, { keyFile: fileB });
    const [fs, fa] = await Promise.all(floods);
    const st = await srv.status();
    console.log(
      `future floods: ${fs.sent} + ${fa.sent} sent, ${fs.responses + fa.responses} answered; ${
        JSON.stringify(st.drops)
      }`,
    );
    assertEquals(fs.responses + fa.responses, 0, "a future initiation was answered");
    // After the flood Alice, with an honest clock, connects at once.
    const a = await connectDuring(lab, "ca", srv, { keyFile: fileA });
    assertEquals(a.overlay, "10.0.0.10");
  });
});
