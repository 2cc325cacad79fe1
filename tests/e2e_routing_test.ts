/**
 * End-to-end routing: a client's `--route` and `--default-route` send traffic for a network behind the
 * server through the tunnel, and the server's `--nat` masquerades it out of its underlay interface.
 * Topology: "web" holds 198.18.0.1 on its loopback, reachable from the server host by a route; the client
 * host has a default route via the server host's underlay address (like a home router), but "web" only
 * knows how to answer the server host, so a reply proves the packet left the server, masqueraded.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import type { Host } from "./netns/hosts.ts";
import { withVpnLab } from "./netns/vpn.ts";

const WEB = "198.18.0.1";

async function prepare(srv: Host, c1: Host, web: Host): Promise<void> {
  await web.runOk(["ip", "addr", "add", `${WEB}/32`, "dev", "lo"]);
  await srv.runOk(["ip", "route", "add", `${WEB}/32`, "via", web.address]);
  await c1.runOk(["ip", "route", "add", "default", "via", srv.address]);
  // Without the tunnel the client cannot reach web: web has no route back to it.
  assert(!(await c1.ping(WEB, { count: 1, timeoutS: 1 })), "web must not be reachable directly");
}

async function routes(h: Host): Promise<string> {
  return await h.runOk(["ip", "-4", "route", "show"]);
}

Deno.test("e2e: --route sends a network through the tunnel and the server's --nat masquerades it", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "web"] }, async (lab, net) => {
    const [srv, c1, web] = ["srv", "c1", "web"].map((n) => net.host(n));
    await prepare(srv, c1, web);
    const before = (await srv.runOk(["cat", "/proc/sys/net/ipv4/conf/all/forwarding"])).trim();
    const server = await lab.server("srv", { args: ["--nat", srv.iface] });
    assertMatch(server.output(), /masquerading rule=/);
    assertEquals((await srv.runOk(["cat", "/proc/sys/net/ipv4/conf/all/forwarding"])).trim(), "1");
    const client = await lab.client("c1", server, { args: ["--route", "198.18.0.0/24"] });
    assertMatch(await routes(c1), new RegExp(`198\\.18\\.0\\.0/24 dev ${client.tun}`));
    await c1.waitForPing(WEB, 10_000);
    // Web sees the server host's underlay address as the source (masqueraded), not the client's overlay.
    const dump = web.spawn([
      "tcpdump",
      "-n",
      "-l",
      "-c",
      "1",
      "-i",
      web.iface,
      "icmp[icmptype] == icmp-echo",
    ]);
    await dump.waitForOutput(/listening on/, 5000);
    assert(await c1.ping(WEB, { count: 1, timeoutS: 2 }));
    const m = await dump.waitForOutput(/IP (\S+) > 198\.18\.0\.1: ICMP echo request/, 5000);
    assertEquals(m[1], srv.address);
    const tcp = await c1.tcpTransfer(web, WEB, 256 << 10);
    assertEquals(tcp.receivedSha256, tcp.sentSha256);
    assertEquals((await server.stop()).code, 0);
    await client.stop();
    assertEquals((await srv.runOk(["cat", "/proc/sys/net/ipv4/conf/all/forwarding"])).trim(), before);
    assertEquals(await srv.runOk(["nft", "list", "ruleset"]).then((r) => r.includes("masquerade")), false);
    assert(!(await routes(c1)).includes("198.18.0.0/24"), "the client's route outlived it");
  });
});

Deno.test("e2e: --default-route sends everything through the tunnel and keeps the server reachable", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "web"] }, async (lab, net) => {
    const [srv, c1, web] = ["srv", "c1", "web"].map((n) => net.host(n));
    await prepare(srv, c1, web);
    const server = await lab.server("srv", { args: ["--nat", srv.iface] });
    const client = await lab.client("c1", server, { args: ["--default-route"] });
    const r = await routes(c1);
    assertMatch(r, new RegExp(`0\\.0\\.0\\.0/1 dev ${client.tun}`));
    assertMatch(r, new RegExp(`128\\.0\\.0\\.0/1 dev ${client.tun}`));
    assertMatch(
      r,
      new RegExp(`${srv.address.replaceAll(".", "\\.")} via ${srv.address.replaceAll(".", "\\.")} dev eth0`),
    );
    // The underlay path to the server did not move into the tunnel (that would loop).
    assertMatch(await c1.runOk(["ip", "route", "get", srv.address]), /dev eth0/);
    await c1.waitForPing(WEB, 10_000);
    assertMatch(await c1.runOk(["ip", "route", "get", WEB]), new RegExp(`dev ${client.tun}`));
    await client.stop();
    const after = await routes(c1);
    assert(!after.includes("0.0.0.0/1") && !after.includes("128.0.0.0/1"), `routes left behind:\n${after}`);
    assertMatch(after, /default via/);
  });
});
