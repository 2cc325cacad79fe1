/**
 * End-to-end: a full-tunnel client (`--default-route`) leaks nothing around the tunnel. Topology: "web"
 * holds 198.18.0.1 and fd0d:99::1 on its loopback, routed from the server host; the client's defaults go via
 * the server host's underlay address (like a home router), so without the tunnel its traffic reaches web
 * directly over the underlay. Captures on the client's underlay interface show what leaves outside.
 */
import { assert, assertEquals, assertMatch, assertNotMatch } from "./assert.ts";
import type { Host, HostProcess } from "./netns/hosts.ts";
import { ownEtcFile, VPN_PORT, vpnCmd, withVpnLab } from "./netns/vpn.ts";
import { killSwitchTable } from "../src/host/kill_switch.ts";

const WEB4 = "198.18.0.1";
const WEB6 = "fd0d:99::1";
const SERVER6 = '[server]\naddress6 = "fd0d:100::1/64"\n';

/** Web answers both families; the client's defaults point at the server host, which forwards. */
async function prepare(srv: Host, c1: Host, web: Host): Promise<void> {
  await web.runOk(["ip", "addr", "add", `${WEB4}/32`, "dev", "lo"]);
  await web.runOk(["ip", "addr", "add", `${WEB6}/128`, "dev", "lo"]);
  await srv.runOk(["ip", "route", "add", `${WEB4}/32`, "via", web.address]);
  await srv.runOk(["ip", "-6", "route", "add", `${WEB6}/128`, "via", web.address6!]);
  await c1.runOk(["ip", "route", "add", "default", "via", srv.address]);
  await c1.runOk(["ip", "-6", "route", "add", "default", "via", srv.address6!]);
}

/** tcpdump (`where`: "-i IFACE", maybe with "-Q out"), printing one line per packet. */
async function sniff(h: Host, where: string, filter: string): Promise<HostProcess> {
  const p = h.spawn(["tcpdump", "-n", "-l", ...where.split(" "), filter]);
  await p.waitForOutput(/listening on/, 5000);
  return p;
}

/** Stop a sniffer and return the packet lines it printed. */
async function packets(p: HostProcess): Promise<string[]> {
  await p.stop("SIGTERM", 2000);
  return p.stdout().split("\n").filter((l) => /^\d\d:/.test(l));
}

Deno.test("e2e: with IPv6 in the tunnel, IPv6 goes through it and leaves the server masqueraded", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "web"], ipv6: true }, async (lab, net) => {
    const [srv, c1, web] = ["srv", "c1", "web"].map((n) => net.host(n));
    await prepare(srv, c1, web);
    const forward6 = (await srv.runOk(["cat", "/proc/sys/net/ipv6/conf/all/forwarding"])).trim();
    const server = await lab.server("srv", { config: SERVER6, args: ["--nat", srv.iface] });
    assertMatch(server.output(), /masquerading rule="masquerade fd0d:100::\/64 out of eth0/);
    assertEquals((await srv.runOk(["cat", "/proc/sys/net/ipv6/conf/all/forwarding"])).trim(), "1");
    const client = await lab.client("c1", server, { args: ["--default-route"] });
    assert(client.overlay6 !== "", "the client got no IPv6 address");
    const r6 = await c1.runOk(["ip", "-6", "route", "show"]);
    assertMatch(r6, new RegExp(`^::/1 dev ${client.tun}`, "m"));
    assertMatch(r6, new RegExp(`^8000::/1 dev ${client.tun}`, "m"));
    const onWeb = await sniff(web, `-i ${web.iface}`, "icmp6 and ip6[40] == 128");
    const underlay = await sniff(c1, `-i ${c1.iface}`, `ip6 host ${WEB6}`);
    await c1.waitForPing(WEB6, 10_000);
    assert(await c1.ping(WEB6, { count: 3, timeoutS: 2 }));
    const seenOnWeb = await packets(onWeb);
    assert(seenOnWeb.length > 0, "web saw no echo request");
    // Web sees the server host's underlay address: the packet crossed the tunnel and was masqueraded.
    for (const l of seenOnWeb) assertMatch(l, new RegExp(`IP6 ${srv.address6} > ${WEB6}`));
    assertEquals(await packets(underlay), [], "IPv6 to web left the client's underlay directly");
    const tcp = await c1.tcpTransfer(web, WEB6, 64 << 10);
    assertEquals(tcp.receivedSha256, tcp.sentSha256);
    await client.stop();
    const after = await c1.runOk(["ip", "-6", "route", "show"]);
    assertNotMatch(after, /^(::|8000::)\/1/m);
    assertEquals((await server.stop()).code, 0);
    assertEquals((await srv.runOk(["cat", "/proc/sys/net/ipv6/conf/all/forwarding"])).trim(), forward6);
    assertNotMatch(await srv.runOk(["nft", "list", "ruleset"]), /masquerade/);
  });
});

Deno.test("e2e: without IPv6 in the tunnel, IPv6 is blocked while the full tunnel is up", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "web"], ipv6: true }, async (lab, net) => {
    const [srv, c1, web] = ["srv", "c1", "web"].map((n) => net.host(n));
    await prepare(srv, c1, web);
    await srv.runOk(["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"]);
    // Before the tunnel, IPv6 to web works over the underlay: what the block must stop.
    await c1.waitForPing(WEB6, 5000);
    const server = await lab.server("srv", { args: ["--nat", srv.iface] });
    const client = await lab.client("c1", server, { args: ["--default-route"] });
    assertEquals(client.overlay6, "");
    const r6 = await c1.runOk(["ip", "-6", "route", "show"]);
    assertMatch(r6, /^unreachable ::\/1 dev lo/m);
    assertMatch(r6, /^unreachable 8000::\/1 dev lo/m);
    assertMatch(client.output(), /IPv6 blocked outside the tunnel/);
    const underlay = await sniff(c1, `-i ${c1.iface}`, `ip6 host ${WEB6}`);
    assert(!(await c1.ping(WEB6, { count: 3, timeoutS: 1 })), "IPv6 to web got through");
    const tcp = await c1.run(["sh", "-c", `exec 3<>/dev/tcp/${WEB6}/80`], { timeoutMs: 5000 });
    assert(tcp.code !== 0, "a TCP connection over IPv6 got out");
    assertEquals(await packets(underlay), [], "IPv6 to web left the client's underlay");
    // IPv4 still crosses the tunnel, and the server itself stays reachable.
    await c1.waitForPing(WEB4, 10_000);
    await client.stop();
    assertNotMatch(await c1.runOk(["ip", "-6", "route", "show"]), /unreachable/);
    await c1.waitForPing(WEB6, 5000);
  });
});

Deno.test("e2e: a server reached over IPv6 keeps its host route over the old IPv6 gateway", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "web"], ipv6: true }, async (lab, net) => {
    const [srv, c1, web] = ["srv", "c1", "web"].map((n) => net.host(n));
    await prepare(srv, c1, web);
    const server = await lab.server("srv", {
      config: SERVER6,
      listen: `[::]:${VPN_PORT}`,
      args: ["--nat", srv.iface],
    });
    const client = await lab.client("c1", server, {
      peer: `[${srv.address6}]:${VPN_PORT}`,
      args: ["--default-route"],
    });
    assertMatch(
      await c1.runOk(["ip", "-6", "route", "show"]),
      new RegExp(`^${srv.address6} via ${srv.address6} dev eth0`, "m"),
    );
    assertMatch(await c1.runOk(["ip", "-6", "route", "get", srv.address6!]), /dev eth0/);
    await c1.waitForPing(WEB4, 10_000);
    await c1.waitForPing(WEB6, 10_000);
    await client.stop();
    assertNotMatch(await c1.runOk(["ip", "-6", "route", "show"]), new RegExp(`^${srv.address6} via`, "m"));
  });
});

/** What the client sends out of its underlay: tcpdump lines of outbound IP packets (IPv6 housekeeping aside). */
function sniffOut(h: Host): Promise<HostProcess> {
  return sniff(h, `-Q out -i ${h.iface}`, "ip or (ip6 and not icmp6)");
}

/** Ping, a TCP connection and a DNS query towards `address`; true when any of them got an answer. */
async function tryEverything(c1: Host, address: string): Promise<boolean> {
  const ping = await c1.ping(address, { count: 2, timeoutS: 1 });
  const tcp = await c1.run(["bash", "-c", `exec 3<>/dev/tcp/${address}/80`], { timeoutMs: 3000 });
  const dns = await c1.run(["bash", "-c", `printf 'q' > /dev/udp/${address}/53`], { timeoutMs: 3000 });
  // The DNS datagram has no answer to wait for; its capture line (or its absence) is what counts.
  void dns;
  return ping || tcp.code === 0;
}

/** Captures of a plaintext datagram carrying "LEAK" to the server's VPN port, leaving the client's underlay. */
function sniffLeak(h: Host, server: string): Promise<HostProcess> {
  return sniff(
    h,
    `-Q out -i ${h.iface}`,
    `udp and dst host ${server} and dst port ${VPN_PORT} and udp[8:4] = 0x4c45414b`,
  );
}

/** Send "LEAK" from an ordinary (unmarked) socket to the server's VPN port. */
async function sendLeak(h: Host, server: string): Promise<void> {
  const send = `printf 'LEAK plaintext' > /dev/udp/${server}/${VPN_PORT}`;
  for (let i = 0; i < 3; i++) {
    // Under the kill switch the write fails (EPERM): the drop is what this sends for.
    await h.run(["bash", "-c", send], { timeoutMs: 3000 });
    await new Promise((r) => setTimeout(r, 100)); // a first one may wait for ARP before the capture stops
  }
}

Deno.test("e2e: --kill-switch lets only the tunnel's marked datagrams leave, survives a crash, --unblock removes it", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "web"], ipv6: true }, async (lab, net) => {
    const [srv, c1, web] = ["srv", "c1", "web"].map((n) => net.host(n));
    await prepare(srv, c1, web);
    // Web's underlay address is on the client's own link: routes alone would let traffic to it out directly.
    assert(await c1.ping(web.address), "web's underlay address must answer before the tunnel");
    const server = await lab.server("srv", { args: ["--nat", srv.iface] });
    const ruleset = () => c1.runOk(["nft", "list", "ruleset"]);
    const beforeRules = await ruleset();
    // Without the kill switch, the plaintext datagram leaves (the capture sees it): what must stop.
    let leak = await sniffLeak(c1, srv.address);
    await sendLeak(c1, srv.address);
    assert((await packets(leak)).length > 0, "the leak capture saw nothing without a kill switch");
    const args = ["--default-route", "--kill-switch"];
    let client = await lab.client("c1", server, { args });
    const table = killSwitchTable(client.tun);
    const rules = await ruleset();
    assertMatch(rules, new RegExp(`table inet ${table}`));
    assertMatch(rules, /meta mark 0x0000ca6c accept/);
    assertNotMatch(
      rules,
      new RegExp(`${srv.address.replaceAll(".", "\\.")}`),
      "the kill switch names the server",
    );
    // A plaintext datagram to the server's own address and port, from a socket without the mark: dropped.
    leak = await sniffLeak(c1, srv.address);
    await sendLeak(c1, srv.address);
    assertEquals(await packets(leak), [], "a plaintext datagram to the server's address:port got out");
    const serverOnly = new RegExp(
      `^\\S+ IP ${c1.address.replaceAll(".", "\\.")}\\.\\d+ > ${
        srv.address.replaceAll(".", "\\.")
      }\\.${VPN_PORT}: UDP`,
    );
    let out = await sniffOut(c1);
    await c1.waitForPing(WEB4, 10_000); // through the tunnel: allowed
    assert(!(await tryEverything(c1, web.address)), "traffic to the local network got past the kill switch");
    let lines = await packets(out);
    assert(lines.length > 0, "nothing captured at all");
    for (const l of lines) assertMatch(l, serverOnly);

    // Server gone: the client keeps retrying, and nothing falls back to the underlay.
    assertEquals((await server.stop()).code, 0);
    out = await sniffOut(c1);
    assert(!(await tryEverything(c1, WEB4)), "web answered with the server stopped");
    assert(!(await tryEverything(c1, web.address)), "the local network answered with the server stopped");
    lines = await packets(out);
    for (const l of lines) assertMatch(l, serverOnly);

    // Clean stop: the table is gone and the host is as before.
    assertEquals((await client.stop()).code, 0);
    assertEquals(await ruleset(), beforeRules);
    assert(await c1.ping(web.address), "the local network is unreachable after a clean stop");

    // Crash: the table stays, the next start takes it over, and --unblock removes what a crash left.
    const server2 = await lab.server("srv", { args: ["--nat", srv.iface] });
    client = await lab.client("c1", server2, { args, tun: client.tun });
    await client.proc.stop("SIGKILL", 0);
    assertMatch(await ruleset(), new RegExp(`table inet ${table}`));
    assert(!(await c1.ping(web.address)), "traffic leaked after the client was killed");
    client = await lab.client("c1", server2, { args, tun: client.tun });
    await c1.waitForPing(WEB4, 10_000);
    await client.proc.stop("SIGKILL", 0);
    const unblock = await c1.run(vpnCmd("client", "--unblock", "--tun", client.tun), {
      env: { VPN_RUN_DIR: lab.runDir },
    });
    assertEquals(unblock.code, 0, unblock.stderr);
    assertMatch(unblock.stderr + unblock.stdout, /unblocked.*kill switch/);
    assertEquals(await ruleset(), beforeRules);
    assert(await c1.ping(web.address), "the local network is unreachable after --unblock");
  });
});

Deno.test("e2e: kill switches of vpn-0 and vpn_0 are two tables; --unblock refuses a running client's", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const c1 = net.host("c1");
    const server = await lab.server("srv");
    const base = lab.tunName("ks");
    const [dash, under] = [`${base}-0`, `${base}_0`];
    const ruleset = () => c1.runOk(["nft", "list", "ruleset"]);
    const a = await lab.client("c1", server, { args: ["--kill-switch"], tun: dash });
    // The second tunnel on this host is assigned a network the first one holds: accepted only when asked.
    const b = await lab.client("c1", server, {
      args: ["--kill-switch", "--accept-network", "10.0.0.0/24"],
      tun: under,
    });
    const [ta, tb] = [killSwitchTable(dash), killSwitchTable(under)];
    assert(ta !== tb);
    let rules = await ruleset();
    assertMatch(rules, new RegExp(`table inet ${ta} \\{`));
    assertMatch(rules, new RegExp(`table inet ${tb} \\{`));
    assertMatch(rules, new RegExp(`table inet ${tb} \\{\\s+comment "vpn client pid \\d+ start \\d+"`));

    // --unblock of a running client is refused, even from another run dir (no control socket or pid file).
    for (const runDir of [lab.runDir, `${lab.dir}/elsewhere`]) {
      const r = await c1.run(vpnCmd("client", "--unblock", "--tun", under), { env: { VPN_RUN_DIR: runDir } });
      assertEquals(r.code, 1, r.stderr + r.stdout);
      assertMatch(r.stderr + r.stdout, /is running; stop it instead/);
      assertMatch(await ruleset(), new RegExp(`table inet ${tb} \\{`));
    }

    // A clean stop of vpn-0 deletes its table only: vpn_0 stays guarded and keeps its tunnel.
    assertEquals((await a.stop()).code, 0);
    rules = await ruleset();
    assertNotMatch(rules, new RegExp(`table inet ${ta} \\{`));
    assertMatch(rules, new RegExp(`table inet ${tb} \\{`));
    await c1.waitForPing(server.overlay, 10_000);

    // Killed, vpn_0's table stays until --unblock, which now goes ahead.
    await b.proc.stop("SIGKILL", 0);
    assertMatch(await ruleset(), new RegExp(`table inet ${tb} \\{`));
    const r = await c1.run(vpnCmd("client", "--unblock", "--tun", under), {
      env: { VPN_RUN_DIR: `${lab.dir}/elsewhere` },
    });
    assertEquals(r.code, 0, r.stderr);
    assertNotMatch(await ruleset(), /vpn_killswitch_/);
  });
});

Deno.test("e2e: pushed DNS is in the client's resolv.conf while up; the original is back after stop and after SIGKILL", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const c1 = net.host("c1");
    const hostFile = await Deno.readTextFile("/etc/resolv.conf");
    const file = `${lab.dir}/resolv.conf`;
    const original = "# the client's own\nnameserver 192.0.2.53\nsearch home.example\n";
    await Deno.writeTextFile(file, original);
    const server = await lab.server("srv", {
      config: '[server]\ndns = ["10.0.0.1", "fd0d:100::1"]\ndns_search = ["corp.example", "lab.example"]\n',
    });
    assertMatch(server.output(), /dns=10\.0\.0\.1,fd0d:100::1 dns_search=corp\.example,lab\.example/);
    const start = (args: string[] = [], tun?: string) =>
      lab.client("c1", server, { wrap: ownEtcFile(file, "/etc/resolv.conf"), args, tun });
    const backup = `${lab.stateDir}/resolv.conf.backup`;
    const pushed = /^nameserver 10\.0\.0\.1\nnameserver fd0d:100::1\nsearch corp\.example lab\.example\n/m;

    let client = await start();
    await client.proc.waitForOutput(
      /DNS applied via=\/etc\/resolv\.conf dns=10\.0\.0\.1,fd0d:100::1/,
      10_000,
    );
    assertMatch(await Deno.readTextFile(file), pushed);
    // A process in a mount namespace like the client's sees the pushed file.
    assertMatch(await c1.runOk([...ownEtcFile(file, "/etc/resolv.conf"), "cat", "/etc/resolv.conf"]), pushed);
    assertEquals((await client.stop()).code, 0);
    assertEquals(await Deno.readTextFile(file), original);
    await assertMissing(backup);

    // Killed: the pushed file and the backup stay; the next start restores first, its stop leaves the original.
    client = await start([], client.tun);
    await client.proc.waitForOutput(/DNS applied/, 10_000);
    await client.proc.stop("SIGKILL", 0);
    assertMatch(await Deno.readTextFile(file), pushed);
    await Deno.stat(backup);
    client = await start([], client.tun);
    await client.proc.waitForOutput(/restored resolv\.conf left behind by a stopped client/, 10_000);
    await client.proc.waitForOutput(/DNS applied/, 10_000);
    assertMatch(await Deno.readTextFile(file), pushed);
    assertEquals((await client.stop()).code, 0);
    assertEquals(await Deno.readTextFile(file), original);

    // --no-dns: the file is left alone.
    client = await start(["--no-dns"]);
    await c1.waitForPing(server.overlay, 10_000);
    await new Promise((r) => setTimeout(r, 1500)); // a few ticks, in which a request would have gone out
    assertNotMatch(client.output(), /DNS applied/);
    assertEquals(await Deno.readTextFile(file), original);
    await client.stop();
    assertEquals(await Deno.readTextFile("/etc/resolv.conf"), hostFile, "the machine's resolv.conf changed");
  });
});

/** Keep data flowing (pings to `address`, answered or not) until `waiting` settles; returns its value. */
async function pingWhileWaiting<T>(h: Host, address: string, waiting: Promise<T>, maxMs: number): Promise<T> {
  let done = false;
  waiting.finally(() => done = true).catch(() => {});
  const since = Date.now();
  while (!done && Date.now() - since < maxMs) await h.ping(address, { count: 1, timeoutS: 1 });
  return await waiting;
}

async function assertMissing(path: string): Promise<void> {
  try {
    await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  throw new Error(`${path} should not exist`);
}

Deno.test("e2e: the underlay default route moves to another gateway mid-run and the tunnel recovers", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "ra", "rb"] }, async (lab, net) => {
    const [srv, c1, ra, rb] = ["srv", "c1", "ra", "rb"].map((n) => net.host(n));
    // The client reaches the server only through a router: no on-link route to the server, no redirects.
    for (const r of [ra, rb]) {
      await r.runOk([
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/ip_forward; echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects; echo 0 > /proc/sys/net/ipv4/conf/eth0/send_redirects",
      ]);
    }
    await c1.runOk(["ip", "route", "del", "10.203.0.0/24", "dev", "eth0"]);
    for (const r of [ra, rb]) await c1.runOk(["ip", "route", "add", `${r.address}/32`, "dev", "eth0"]);
    await c1.runOk(["ip", "route", "add", "default", "via", ra.address]);
    const server = await lab.server("srv");
    const client = await lab.client("c1", server, { args: ["--default-route", "--keepalive", "1"] });
    const routeToServer = () => c1.runOk(["ip", "route", "get", srv.address]);
    assertMatch(await routeToServer(), new RegExp(`via ${ra.address} dev eth0`));
    await c1.waitForPing(server.overlay, 10_000);
    // The network changes: the default route now goes via rb, and the old router stops forwarding.
    await c1.runOk(["ip", "route", "replace", "default", "via", rb.address]);
    await ra.runOk(["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]);
    await client.proc.waitForOutput(/underlay default route changed; moving the route to the server/, 5000);
    assertMatch(await routeToServer(), new RegExp(`via ${rb.address} dev eth0`));
    await c1.waitForPing(server.overlay, 10_000);
    assertEquals((await client.stop()).code, 0);
    assertNotMatch(await c1.runOk(["ip", "route", "show"]), new RegExp(`^${srv.address} `, "m"));
  });
});

Deno.test("e2e: failover: with the first server stopped, the client is on the second within 20 s", async () => {
  await withVpnLab({ hosts: ["srva", "srvb", "c1"] }, async (lab, net) => {
    const c1 = net.host("c1");
    // Two servers sharing the key, each owning a subnet.
    const a = await lab.server("srva", { address: "10.0.0.1/24" });
    const b = await lab.server("srvb", { address: "10.1.0.1/24" });
    const client = await lab.client("c1", a, {
      // Under a kill switch too: it names no server, so moving to another needs no change of it.
      args: ["--peer", `${b.host.address}:${VPN_PORT}`, "--keepalive", "1", "--kill-switch"],
    });
    assertMatch(client.overlay, /^10\.0\.0\./);
    await c1.waitForPing(a.overlay, 10_000);
    assertEquals((await a.stop()).code, 0);
    const stoppedAt = Date.now();
    // Traffic keeps flowing towards the first server's side until the client moves.
    const moved = client.proc.waitForOutput(/handshake complete[^\n]* address=(10\.1\.0\.\d+)\//, 20_000);
    const m = await pingWhileWaiting(c1, a.overlay, moved, 20_000);
    const tookMs = Date.now() - stoppedAt;
    assert(tookMs <= 20_000, `failover took ${tookMs} ms`);
    assertMatch(client.output(), /moving to the next server from=10\.203\.0\.1:51820 to=10\.203\.0\.2:51820/);
    await c1.waitForPing(b.overlay, 5000);
    const tcp = await c1.tcpTransfer(b.host, b.overlay, 64 << 10);
    assertEquals(tcp.receivedSha256, tcp.sentSha256);
    console.log(`failover: on the second server ${tookMs} ms after the first stopped (address ${m[1]})`);
  });
});

Deno.test("e2e: a server given by name is looked up again when it stops answering", async () => {
  await withVpnLab({ hosts: ["srva", "srvb", "c1"] }, async (lab, net) => {
    const [a, b, c1] = ["srva", "srvb", "c1"].map((n) => net.host(n));
    const hosts = `${lab.dir}/hosts`;
    await Deno.writeTextFile(hosts, `127.0.0.1 localhost\n${a.address} vpn.test\n`);
    let server = await lab.server("srva");
    const client = await lab.client("c1", server, {
      peer: `vpn.test:${VPN_PORT}`,
      wrap: ownEtcFile(hosts, "/etc/hosts"),
      args: ["--keepalive", "1", "--kill-switch"], // the new address needs no kill-switch change
    });
    await c1.waitForPing(server.overlay, 10_000);
    // The server moves to another host, and the name follows it.
    assertEquals((await server.stop()).code, 0);
    await Deno.writeTextFile(hosts, `127.0.0.1 localhost\n${b.address} vpn.test\n`);
    server = await lab.server("srvb");
    // Data going unanswered (15 s) makes the client handshake again, looking the name up first.
    const moved = client.proc.waitForOutput(
      new RegExp(`server name resolves to a new address server=vpn.test:${VPN_PORT} endpoint=${b.address}:`),
      30_000,
    );
    await pingWhileWaiting(c1, server.overlay, moved, 30_000);
    await c1.waitForPing(server.overlay, 10_000);
  });
});
