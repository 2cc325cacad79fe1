/**
 * Networks behind clients (per-peer `routes`, site-to-site) and `client_to_client = false`, between
 * namespaces. A "LAN" is a host holding an address on its loopback, reachable through its gateway host on
 * the shared underlay bridge (like the "web" host of e2e_routing_test.ts).
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import type { Host } from "./netns/hosts.ts";
import { eventually, newKey, vpnCmd, type VpnLab, withVpnLab } from "./netns/vpn.ts";
import type { StatusReport } from "../src/ops/status_report.ts";

const A_LAN = "192.168.50.0/24", A_HOST = "192.168.50.1";
const S_LAN = "192.168.60.0/24", S_HOST = "192.168.60.1";

/** `lan` holds `address` and answers through `gateway`. */
async function lanBehind(lan: Host, address: string, gateway: Host, nets: string[]): Promise<void> {
  await lan.runOk(["ip", "addr", "add", `${address}/32`, "dev", "lo"]);
  // `src`: the LAN host speaks with its LAN address, not its underlay one.
  for (const n of nets) await lan.runOk(["ip", "route", "add", n, "via", gateway.address, "src", address]);
}

async function statusOf(lab: VpnLab, host: Host, tun: string): Promise<StatusReport> {
  const r = await host.run(vpnCmd("status", "--json", "--tun", tun), { env: { VPN_RUN_DIR: lab.runDir } });
  assertEquals(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

Deno.test("e2e: site-to-site: LANs behind a client and behind the server reach each other and a second client", async () => {
  await withVpnLab({ hosts: ["srv", "a", "b", "alan", "slan"] }, async (lab, net) => {
    const [srv, a, b, alan, slan] = ["srv", "a", "b", "alan", "slan"].map((n) => net.host(n));
    await lanBehind(alan, A_HOST, a, ["10.0.0.0/24", S_LAN]);
    await lanBehind(slan, S_HOST, srv, ["10.0.0.0/24", A_LAN]);
    await a.runOk(["ip", "route", "add", A_LAN, "via", alan.address]);
    await srv.runOk(["ip", "route", "add", S_LAN, "via", slan.address]);
    const fwd = (h: Host) => h.runOk(["cat", "/proc/sys/net/ipv4/conf/all/forwarding"]).then((s) => s.trim());
    const aForwardBefore = await fwd(a);

    const tun = lab.tunName("vs");
    const config = `${lab.dir}/server.toml`;
    await Deno.writeTextFile(
      config,
      `[server]\ntun = "${tun}"\nlisten = "0.0.0.0:51820"\nforward = true\nshared_key = false\n` +
        `public_endpoint = "${srv.address}:51820"\n`,
    );
    const env = { VPN_RUN_DIR: lab.runDir };
    for (const [name, extra] of [["sitea", ["--route", A_LAN]], ["roamer", []]] as const) {
      const r = await srv.run(
        vpnCmd("peer", "add", name, "--config", config, "--out", `${lab.dir}/${name}.toml`, ...extra),
        { env },
      );
      assertEquals(r.code, 0, r.stderr);
    }
    // The second client's config already routes to the first one's LAN.
    assertMatch(await Deno.readTextFile(`${lab.dir}/roamer.toml`), /routes = \["192\.168\.50\.0\/24"\]/);
    assertMatch(await Deno.readTextFile(`${lab.dir}/sitea.toml`), /forward = true/);

    const server = srv.spawn(vpnCmd("server", "--config", config), { env });
    await server.waitForOutput(/server started/, 20_000);
    assertMatch(await srv.runOk(["ip", "-4", "route"]), new RegExp(`192\\.168\\.50\\.0/24 dev ${tun}`));
    const [ta, tb] = [lab.tunName("vc"), lab.tunName("vc")];
    const ca = a.spawn(
      vpnCmd("client", "--config", `${lab.dir}/sitea.toml`, "--tun", ta, "--route", S_LAN),
      { env },
    );
    const cb = b.spawn(
      vpnCmd("client", "--config", `${lab.dir}/roamer.toml`, "--tun", tb, "--route", A_LAN, "--route", S_LAN),
      { env },
    );
    await ca.waitForOutput(/handshake complete/, 20_000);
    await cb.waitForOutput(/handshake complete .*address=10\.0\.0\.3\//, 20_000);
    assertEquals(await fwd(a), "1");

    await alan.waitForPing(S_HOST, 10_000); // A's LAN -> server's LAN, sources from A's LAN accepted
    assert(await slan.ping(A_HOST, { count: 2, timeoutS: 1 }), "server LAN -> A's LAN");
    assert(await b.ping(A_HOST, { count: 2, timeoutS: 1 }), "client B -> A's LAN (relayed by route)");
    assert(await alan.ping("10.0.0.3", { count: 2, timeoutS: 1 }), "A's LAN -> client B");
    assert(await b.ping(S_HOST, { count: 2, timeoutS: 1 }), "client B -> server's LAN");

    // B claims a source in A's LAN: the server drops it and charges it to B.
    await b.runOk(["ip", "addr", "add", "192.168.50.99/32", "dev", "lo"]);
    const before = (await statusOf(lab, srv, tun)).peers.find((p) => p.name === "roamer")!.drops.no_route;
    const r = await b.run([
      "ping",
      "-n",
      "-q",
      "-c",
      "3",
      "-i",
      "0.2",
      "-W",
      "1",
      "-I",
      "192.168.50.99",
      "10.0.0.1",
    ]);
    assert(r.code !== 0, "a spoofed source got an answer");
    const after = (await statusOf(lab, srv, tun)).peers.find((p) => p.name === "roamer")!.drops.no_route;
    assert(after >= before + 3, `roamer's no_route drops ${before} -> ${after}`);

    assertEquals((await ca.stop()).code, 0);
    assertEquals(await fwd(a), aForwardBefore);
    assertEquals((await server.stop()).code, 0);
    assert(!(await srv.runOk(["ip", "-4", "route"])).includes("192.168.50.0/24"), "route left behind");
  });
});

Deno.test("e2e: client_to_client = false drops relayed packets and counts them; the server stays reachable", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "c2"] }, async (lab, net) => {
    const server = await lab.server("srv", { config: "[server]\nclient_to_client = false\n" });
    const c1 = await lab.client("c1", server);
    const c2 = await lab.client("c2", server);
    await net.host("c1").waitForPing("10.0.0.1", 10_000);
    await net.host("c2").waitForPing("10.0.0.1", 10_000);
    assert(
      !(await net.host("c1").ping(c2.overlay, { count: 3, timeoutS: 1 })),
      "client-to-client got through",
    );
    const s = await server.status();
    assert(s.peers.find((p) => p.address === c1.overlay)!.drops.relay >= 3, JSON.stringify(s.peers));
    const t = await net.host("srv").run(vpnCmd("status", "--tun", server.tun), {
      env: { VPN_RUN_DIR: lab.runDir },
    });
    assertMatch(t.stdout, /DROPS a\/r\/n\/o\/m\/c/);
  });
});

Deno.test("e2e: shared_key = false admits only listed peers, even with the shared key in VPN_KEY", async () => {
  await withVpnLab({ hosts: ["srv", "c1", "c2"] }, async (lab, net) => {
    const own = newKey();
    const server = await lab.server("srv", {
      config:
        `[server]\nshared_key = false\n[[server.peers]]\nname = "own"\naddress = "10.0.0.9"\nkey = "${own}"\n`,
    });
    assertMatch(server.output(), /shared_key=false/);
    const shared = await lab.client("c1", server, { wait: false });
    const listed = await lab.client("c2", server, { key: own });
    assertEquals(listed.overlay, "10.0.0.9");
    await net.host("c2").waitForPing("10.0.0.1", 5000);
    assert(!(await eventually(() => Promise.resolve(/handshake complete/.test(shared.output())), 3000)));
  });
});
