/**
 * End-to-end: the path is hostile (issue 19). Client -- router -- server, the router an attacker that
 * rewrites and relays with nft. The client runs a full tunnel with a kill switch; whatever the attacker
 * makes the client believe about the server's address, a plaintext datagram the user sends must never
 * cross the router readable: the router's capture on the client-side link is searched for a marker.
 */
import { assert, assertEquals } from "./assert.ts";
import { bytesContain, TrafficError } from "./netns/hosts.ts";
import { RouterLab, SERVER_ADDRESS } from "./netns/router_lab.ts";
import { aliceAndBobConfig, newKey, ownEtcFile, VPN_PORT, VpnLab, type VpnNode } from "./netns/vpn.ts";
import type { StatusReport } from "../src/ops/status_report.ts";

/** The attacker's address (TEST-NET-3): what the client is made to see as the server's. */
const ATTACKER = "203.0.113.9";

function marker(): Uint8Array {
  return new TextEncoder().encode(`PLAINTEXT-MARKER-${crypto.randomUUID()}`);
}

/** Datagrams counted as coming from a source other than the configured server, wherever counted. */
function wrongSource(s: StatusReport): number {
  const count = (d: unknown) => (d as Record<string, number | undefined>).wrong_source ?? 0;
  return count(s.drops) + s.peers.reduce((n, p) => n + count(p.drops), 0);
}

/** A server with pinned peers, and alice's key file for the client. */
async function pinnedServer(lab: VpnLab): Promise<{ server: VpnNode; keyFile: string }> {
  const keyFile = await lab.writeKeyFile("alice", newKey());
  const bob = await lab.writeKeyFile("bob", newKey());
  const server = await lab.server("server", { config: aliceAndBobConfig(keyFile, bob) });
  return { server, keyFile };
}

/**
 * The user's plaintext datagrams to `address` at each of `ports`, a few each. A send the kill switch
 * refuses (EPERM) leaks nothing, so it is not an error here: the router's capture is the proof.
 */
async function sendMarker(path: RouterLab, address: string, ports: number[], m: Uint8Array) {
  for (const port of ports) {
    await path.client.udpBlast(address, port, [m, m, m, m, m], 3000, 5).catch((e) => {
      if (!(e instanceof TrafficError) || !/not permitted/.test(e.message)) throw e;
    });
  }
}

Deno.test("e2e hostile path: a router rewriting the server's source to 203.0.113.9:53 steers nothing out of the tunnel", async () => {
  await using path = await RouterLab.create();
  await using lab = await VpnLab.create(path.net);
  try {
    const { server, keyFile } = await pinnedServer(lab);
    const client = await lab.client("client", server, {
      keyFile,
      args: ["--default-route", "--kill-switch", "--keepalive", "1"],
    });
    await path.client.waitForPing(server.overlay, 10_000);
    const cap = await path.capture("client");
    await path.rewriteSource({ address: SERVER_ADDRESS, port: VPN_PORT }, ATTACKER, 53);
    // Authenticated traffic from the server arrives from the attacker's address: the bait.
    await path.client.ping(server.overlay, { count: 10, timeoutS: 1 });
    const m = marker();
    await sendMarker(path, ATTACKER, [53], m);
    await path.client.ping(server.overlay, { count: 3, timeoutS: 1 }); // time for the marker to cross
    const seen = await cap.stop();
    assertEquals(cap.dropped ?? 0, 0, "the capture dropped packets: it proves nothing");
    assert(
      !bytesContain(seen, m),
      `the plaintext marker to ${ATTACKER}:53 crossed the router outside the tunnel\n` +
        `client routes: ${await path.client.runOk(["ip", "route", "show"])}`,
    );
    const status = await client.status();
    assert(wrongSource(status) > 0, `no wrong_source drops counted: ${JSON.stringify(status.drops)}`);
    assertEquals(status.peers[0]?.endpoint, `${SERVER_ADDRESS}:${VPN_PORT}`, "the client moved");
    // The attack stops: the tunnel works again by itself. Not measurable before the issue 19 fixes; the
    // bound covers a full re-handshake (15 s of unanswered data, then retries from 0.5 s): 30 s.
    await path.clear();
    await path.client.waitForPing(server.overlay, 30_000);
  } catch (e) {
    console.error(`--- router ---\n${await path.ruleset().catch(() => "")}\n--- vpn logs ---\n${lab.logs()}`);
    throw e;
  }
});

Deno.test("e2e hostile path: a lying name lookup plus a relay leak nothing either", async () => {
  await using path = await RouterLab.create();
  await using lab = await VpnLab.create(path.net);
  try {
    const hosts = `${lab.dir}/hosts`;
    await Deno.writeTextFile(hosts, `127.0.0.1 localhost\n${SERVER_ADDRESS} vpn.test\n`);
    const { server, keyFile } = await pinnedServer(lab);
    const client = await lab.client("client", server, {
      keyFile,
      peer: `vpn.test:${VPN_PORT}`,
      wrap: ownEtcFile(hosts, "/etc/hosts"),
      args: ["--default-route", "--kill-switch", "--keepalive", "1"],
    });
    await path.client.waitForPing(server.overlay, 10_000);
    const cap = await path.capture("client", "", 120_000);
    // The hostile network's resolver now answers with the attacker's address, and the attacker relays
    // between that address and the server, both ways.
    await Deno.writeTextFile(hosts, `127.0.0.1 localhost\n${ATTACKER} vpn.test\n`);
    await path.rewriteSource({ address: SERVER_ADDRESS, port: VPN_PORT }, ATTACKER, VPN_PORT);
    // The client follows its name (it may: the name is its configuration) once the server goes quiet
    // from its old address: 15 s of unanswered data, then a handshake retry that looks the name up
    // again, about 16 s by the schedule (not measurable before the issue 19 fixes); bound 80 s.
    await path.client.waitForPing(server.overlay, 80_000);
    const m = marker();
    await sendMarker(path, ATTACKER, [53, VPN_PORT], m);
    await path.client.ping(server.overlay, { count: 3, timeoutS: 1 });
    const status = await client.status();
    const seen = await cap.stop();
    assertEquals(cap.dropped ?? 0, 0, "the capture dropped packets: it proves nothing");
    assert(
      !bytesContain(seen, m),
      `the plaintext marker to ${ATTACKER} crossed the router outside the tunnel\n` +
        `client routes: ${await path.client.runOk(["ip", "route", "show"])}`,
    );
    assertEquals(status.peers[0]?.endpoint, `${ATTACKER}:${VPN_PORT}`, "the client did not follow its name");
    // Before it looked the name up again, the server's rewritten datagrams came from an address it had not
    // been given: dropped and counted.
    assert(wrongSource(status) > 0, `no wrong_source drops counted: ${JSON.stringify(status.drops)}`);
    // The attack stops: the name is right again and the tunnel comes back (bound as above).
    await Deno.writeTextFile(hosts, `127.0.0.1 localhost\n${SERVER_ADDRESS} vpn.test\n`);
    await path.clear();
    await path.client.waitForPing(server.overlay, 80_000);
  } catch (e) {
    console.error(`--- router ---\n${await path.ruleset().catch(() => "")}\n--- vpn logs ---\n${lab.logs()}`);
    throw e;
  }
});
