/**
 * End-to-end: bad paths (issue 20). Client -- router -- server, the router losing, duplicating, rebinding
 * and dropping big datagrams with nft; each test asserts what must survive. Timing bounds are at least
 * five times the median measured on this (loaded, 2-core) machine, stated beside each.
 */
import { assert, assertEquals } from "./assert.ts";
import { CLIENT_ADDRESS, RouterLab } from "./netns/router_lab.ts";
import { VpnLab } from "./netns/vpn.ts";
import type { StatusReport } from "../src/ops/status_report.ts";

const MIB = 1 << 20;

/** One drop counter summed over the instance and its peers. */
function drops(s: StatusReport, key: "replay"): number {
  return s.drops[key] + s.peers.reduce((n, p) => n + p.drops[key], 0);
}

/** Runs `fn` on a fresh path and lab; on failure prints the router's rules and the vpn logs. */
async function onPath(fn: (path: RouterLab, lab: VpnLab) => Promise<void>): Promise<void> {
  await using path = await RouterLab.create();
  await using lab = await VpnLab.create(path.net);
  try {
    await fn(path, lab);
  } catch (e) {
    console.error(`--- router ---\n${await path.ruleset().catch(() => "")}\n--- vpn logs ---\n${lab.logs()}`);
    throw e;
  }
}

Deno.test("e2e bad path: over 30 % loss each way the handshake completes", async () => {
  await onPath(async (path, lab) => {
    const server = await lab.server("server");
    await path.loss(30, "both");
    const client = await lab.client("client", server, { wait: false });
    // Each try gets through with p = 0.49; retries after 0.5 s doubling to 30 s, so 8 tries take 93.5 s
    // (all failing: p = 0.5 %). Measured over 7 runs: median 1.07 s, from 0.07 to 17 s (five tries lost).
    await VpnLab.connected(client, 95_000);
    await path.client.waitForPing(server.overlay, 20_000);
  });
});

Deno.test("e2e bad path: over 5 % loss and 10 % duplicates each way 4 MiB cross TCP intact", async () => {
  await onPath(async (path, lab) => {
    const server = await lab.server("server");
    const client = await lab.client("client", server);
    await path.client.waitForPing(server.overlay, 10_000);
    await path.loss(5, "both");
    await path.duplicate(10, "both");
    // Measured over 7 runs: median 0.14 s, at most 1.2 s; bound 60 s.
    const r = await path.client.tcpTransfer(path.server, server.overlay, 4 * MIB, { timeoutMs: 60_000 });
    assertEquals(r.receivedBytes, 4 * MIB);
    assertEquals(r.receivedSha256, r.sentSha256);
    // The duplicates arrived and the replay window caught them before the TUN.
    const [s, c] = [await server.status(), await client.status()];
    assert(drops(s, "replay") > 0, `the server counted no replays: ${JSON.stringify(s.drops)}`);
    assert(drops(c, "replay") > 0, `the client counted no replays: ${JSON.stringify(c.drops)}`);
  });
});

Deno.test("e2e bad path: a NAT rebinding of the client's port mid-stream: traffic resumes, the server follows", async () => {
  await onPath(async (path, lab) => {
    const server = await lab.server("server");
    await lab.client("client", server, { args: ["--keepalive", "1"] });
    await path.client.waitForPing(server.overlay, 10_000);
    const before = (await server.status()).peers[0]?.endpoint ?? "";
    const port = Number(before.split(":")[1]);
    assertEquals(before, `${CLIENT_ADDRESS}:${port}`);
    const stream = path.client.spawn(["ping", "-n", "-q", "-c", "60", "-i", "0.1", server.overlay]);
    await new Promise((r) => setTimeout(r, 1000));
    const rebound = port === 40000 ? 40001 : 40000;
    await path.rewriteSource({ address: CLIENT_ADDRESS, port }, CLIENT_ADDRESS, rebound);
    // Measured median: the first ping after the rebinding answers (5 ms); bound 5 s.
    await path.client.waitForPing(server.overlay, 5_000);
    await stream.stop("SIGKILL", 5_000);
    assertEquals((await server.status()).peers[0]?.endpoint, `${CLIENT_ADDRESS}:${rebound}`);
    const r = await path.client.tcpTransfer(path.server, server.overlay, MIB, { timeoutMs: 30_000 });
    assertEquals(r.receivedSha256, r.sentSha256);
  });
});

Deno.test("e2e bad path: datagrams above 1300 bytes dropped without ICMP: small ones pass, no ICMP comes back", async () => {
  await onPath(async (path, lab) => {
    const server = await lab.server("server");
    await lab.client("client", server);
    await path.client.waitForPing(server.overlay, 10_000);
    const icmp = await path.capture("client", "icmp[icmptype] == icmp-unreach");
    await path.dropAbove(1300);
    assert(await path.client.ping(server.overlay, { count: 3, timeoutS: 2 }), "small packets no longer pass");
    const big = await path.client.run([
      "ping",
      "-n",
      "-q",
      "-c",
      "3",
      "-W",
      "2",
      "-s",
      "1300",
      server.overlay,
    ]);
    assert(big.code !== 0, "a 1328-byte ping crossed a path that drops datagrams above 1300 bytes");
    await icmp.stop();
    const seen = await icmp.peek();
    assert(seen.length <= 24, `the router sent ICMP (${seen.length} bytes of capture)`); // 24: pcap header
  });
});

// Fails today: full-sized segments (1420-byte tunnel MTU, 1448-byte datagrams) vanish and TCP stalls
// until the timeout, 0 of 256 KiB delivered. Needs path MTU discovery in the tunnel (issue 20, item 3).
Deno.test({
  name: "e2e bad path: through a PMTU black hole (above 1300 bytes dropped, no ICMP) TCP still completes",
  ignore: true,
}, async () => {
  await onPath(async (path, lab) => {
    const server = await lab.server("server");
    await lab.client("client", server);
    await path.client.waitForPing(server.overlay, 10_000);
    await path.dropAbove(1300);
    const r = await path.client.tcpTransfer(path.server, server.overlay, 256 << 10, { timeoutMs: 30_000 });
    assertEquals(r.receivedSha256, r.sentSha256);
  });
});
