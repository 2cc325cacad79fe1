/**
 * `vpn peer add/remove` against a running server, and a fresh host with no /etc/vpn: real processes in
 * network namespaces. The fresh-host test gives each process its own /etc (a private mount namespace with a
 * temp dir bound over /etc), so the host's /etc is never touched.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import type { Host } from "./netns/hosts.ts";
import { eventually, vpnCmd, type VpnLab, withVpnLab } from "./netns/vpn.ts";
import { ConfigFile } from "../src/config/config_file.ts";
import { serverOptionsFrom } from "../src/config/config.ts";

/** Start `vpn server --config FILE` (the TUN name is in the file, so `vpn peer` finds the instance). */
function startServer(lab: VpnLab, host: Host, config: string) {
  return host.spawn(vpnCmd("server", "--config", config), { env: { VPN_RUN_DIR: lab.runDir } });
}

/** `vpn ARGS` seeing `etc` as its /etc (a private mount namespace); nothing outside it changes. */
function inOwnEtc(etc: string, args: string[]): string[] {
  return [
    "unshare",
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    `mount --bind "$0" /etc && exec "$@"`,
    etc,
    ...vpnCmd(...args),
  ];
}

function exists(path: string): Promise<boolean> {
  return Deno.lstat(path).then(() => true, () => false);
}

async function peer(lab: VpnLab, host: Host, ...args: string[]) {
  return await host.run(vpnCmd("peer", ...args), { env: { VPN_RUN_DIR: lab.runDir }, timeoutMs: 30_000 });
}

Deno.test("e2e: peer add lets a client in at once with its own key; peer remove cuts it off", async () => {
  await withVpnLab({ hosts: ["srv", "a", "b"] }, async (lab, net) => {
    const [srv, a] = [net.host("srv"), net.host("a")];
    const tun = lab.tunName("vs");
    const config = `${lab.dir}/server.toml`;
    const original =
      `# my server\n[server]\ntun = "${tun}"   # keep this comment\nlisten = "0.0.0.0:51820"\n` +
      `address = "10.0.0.1/24"\nshared_key = false\npublic_endpoint = "${srv.address}:51820"\n\n` +
      `[client]\n# nothing here\n`;
    await Deno.writeTextFile(config, original);
    const server = startServer(lab, srv, config);
    await server.waitForOutput(/server started.*shared_key=false/, 20_000);

    const out = `${lab.dir}/alice.toml`;
    const added = await peer(lab, srv, "add", "alice", "--config", config, "--out", out);
    assertEquals(added.code, 0, added.stderr);
    assertMatch(added.stdout, /added peer alice with address 10\.0\.0\.2 /);
    assertMatch(added.stdout, new RegExp(`the running server on ${tun} \\(pid \\d+\\) applied it`));
    assertMatch(added.stdout, /on the client run: vpn client --config alice\.toml/);
    // The old file byte for byte, then the new entry.
    const after = await Deno.readTextFile(config);
    assert(after.startsWith(original), after);
    assertEquals(
      after.slice(original.length),
      `\n[[server.peers]]\nname = "alice"\naddress = "10.0.0.2"\nkey_file = "peers/alice.key"\n`,
    );
    assertEquals((await Deno.stat(out)).mode! & 0o777, 0o600);
    assertEquals((await Deno.stat(`${lab.dir}/peers/alice.key`)).mode! & 0o777, 0o600);

    const ctun = lab.tunName("vc");
    const client = a.spawn(vpnCmd("client", "--config", out, "--tun", ctun), {
      env: { VPN_RUN_DIR: lab.runDir },
    });
    await client.waitForOutput(/client started/, 20_000);
    await client.waitForOutput(/handshake complete .*address=10\.0\.0\.2\/24/, 2000);
    await a.waitForPing("10.0.0.1", 5000);
    assert(await srv.ping("10.0.0.2", { count: 2, timeoutS: 1 }), "server -> client ping");

    // Two concurrent adds both land, in a file that loads.
    const [r1, r2] = await Promise.all(
      ["bob", "carol"].map((n) =>
        peer(lab, srv, "add", n, "--config", config, "--out", `${lab.dir}/${n}.toml`)
      ),
    );
    assertEquals([r1.code, r2.code], [0, 0], r1.stderr + r2.stderr);
    const both = await Deno.readTextFile(config);
    assert(both.startsWith(after));
    const loaded = serverOptionsFrom(new ConfigFile(config, both), {}, {});
    assertEquals(loaded.peers.map((p) => p.name).sort(), ["alice", "bob", "carol"]);
    assertEquals(loaded.peers.map((p) => p.address.address.join(".")).sort(), [
      "10.0.0.2",
      "10.0.0.3",
      "10.0.0.4",
    ]);

    // Bad input: one line naming the field; the file stays as it was.
    for (
      const [args, re] of [
        [["add", "bob"], /^vpn: NAME: got "bob"; allowed: a name no other peer/],
        [
          ["add", "dave", "--address", "10.0.0.2"],
          /^vpn: --address: got "10.0.0.2"; allowed: .*peer "alice"/,
        ],
        [["add", "dave", "--address", "10.9.0.2"], /^vpn: --address: got "10.9.0.2"; allowed: .*inside/],
        [["add", "dave", "--route", "10.0.0.0/16"], /^vpn: --route: got "10.0.0.0\/16"; allowed: .*overlay/],
      ] as [string[], RegExp][]
    ) {
      const r = await peer(lab, srv, ...args, "--config", config, "--out", `${lab.dir}/dave.toml`);
      assertEquals(r.code, 2, args.join(" "));
      assertEquals(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assertMatch(r.stderr, re);
      assertEquals(await Deno.readTextFile(config), both);
    }

    const list = await peer(lab, srv, "list", "--config", config, "--json");
    assertEquals(list.code, 0, list.stderr);
    const listed = JSON.parse(list.stdout);
    assertEquals(listed.running, true);
    const alice = listed.peers.find((p: { name: string }) => p.name === "alice");
    assert(alice.last_handshake_s !== null && alice.rx_bytes > 0, JSON.stringify(alice));

    const removed = await peer(lab, srv, "remove", "alice", "--config", config);
    assertEquals(removed.code, 0, removed.stderr);
    assertMatch(server.output(), /peer down peer=alice reason="removed from the config"/);
    assert(!(await a.ping("10.0.0.1", { count: 2, timeoutS: 1 })), "alice still reaches the server");
    // Her key is gone from the server: her retries stay unanswered.
    const handshakes = () => client.output().match(/handshake complete/g)?.length ?? 0;
    assertEquals(handshakes(), 1);
    assert(!(await eventually(() => Promise.resolve(handshakes() > 1), 4000)), "alice reconnected");
    assert(!(await a.ping("10.0.0.1", { count: 1, timeoutS: 1 })));
    const final = await Deno.readTextFile(config);
    assert(final.startsWith(original) && !final.includes('"alice"'), final);
  });
});

Deno.test("e2e: a fresh host: vpn server with no flags creates /etc/vpn and its key; a client with the copy gets 10.0.0.2", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const [srv, c1] = [net.host("srv"), net.host("c1")];
    const srvEtc = `${lab.dir}/srv-etc`, cEtc = `${lab.dir}/c1-etc`;
    await Deno.mkdir(srvEtc);
    await Deno.mkdir(cEtc);
    const hostHadKey = await exists("/etc/vpn/vpn.key");
    const server = srv.spawn(inOwnEtc(srvEtc, ["server"]), { env: { VPN_RUN_DIR: `${lab.dir}/srv-run` } });
    await server.waitForOutput(/server started/, 20_000);
    assertMatch(server.output(), /created a new key file path=\/etc\/vpn\/vpn\.key/);
    assertEquals((await Deno.stat(`${srvEtc}/vpn`)).mode! & 0o777, 0o700);
    assertEquals((await Deno.stat(`${srvEtc}/vpn/vpn.key`)).mode! & 0o777, 0o600);
    assertEquals(await exists("/etc/vpn/vpn.key"), hostHadKey, "the host's /etc changed");

    await Deno.mkdir(`${cEtc}/vpn`, { mode: 0o700 });
    await Deno.copyFile(`${srvEtc}/vpn/vpn.key`, `${cEtc}/vpn/vpn.key`);
    await Deno.chmod(`${cEtc}/vpn/vpn.key`, 0o600);
    const client = c1.spawn(inOwnEtc(cEtc, ["client", "--peer", `${srv.address}:51820`]), {
      env: { VPN_RUN_DIR: `${lab.dir}/c1-run` },
    });
    await client.waitForOutput(/handshake complete .*address=10\.0\.0\.2\/24/, 20_000);
    await c1.waitForPing("10.0.0.1", 5000);
    assertEquals((await client.stop()).code, 0);
    assertEquals((await server.stop()).code, 0);
  });
});

Deno.test("e2e: a fresh host, the README's quick start: peer add without --config, then vpn server with no flags", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const [srv, c1] = [net.host("srv"), net.host("c1")];
    const etc = `${lab.dir}/srv-etc`;
    await Deno.mkdir(etc);
    const env = { VPN_RUN_DIR: lab.runDir };
    const out = `${lab.dir}/laptop.toml`;
    const r = await srv.run(
      inOwnEtc(etc, ["peer", "add", "laptop", "--endpoint", `${srv.address}:51820`, "--out", out]),
      {
        env,
      },
    );
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stdout, /added peer laptop with address 10\.0\.0\.2 to \/etc\/vpn\/vpn\.toml \(created\)/);
    assertEquals((await Deno.stat(`${etc}/vpn`)).mode! & 0o777, 0o700);
    assertEquals((await Deno.stat(`${etc}/vpn/vpn.toml`)).mode! & 0o777, 0o600);
    const server = srv.spawn(inOwnEtc(etc, ["server"]), { env });
    await server.waitForOutput(/server started .*peers=1 shared_key=false/, 20_000);
    assert(
      !(await exists(`${etc}/vpn/vpn.key`)),
      "a shared key was created although only listed peers are admitted",
    );
    const client = c1.spawn(vpnCmd("client", "--config", out, "--tun", lab.tunName("vc")), { env });
    await client.waitForOutput(/handshake complete .*address=10\.0\.0\.2\/24/, 20_000);
    await c1.waitForPing("10.0.0.1", 5000);
    const list = await srv.run(inOwnEtc(etc, ["peer", "list"]), { env });
    assertMatch(list.stdout, /^\/etc\/vpn\/vpn\.toml: 1 peer\(s\); server running on vpn0\nNAME +ADDRESS/);
    assertMatch(list.stdout, /\nlaptop +10\.0\.0\.2 +- +\d+s ago +\d+ +\d+$/m);
    assertEquals((await client.stop()).code, 0);
    assertEquals((await server.stop()).code, 0);
  });
});
