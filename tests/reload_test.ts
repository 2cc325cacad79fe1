/** SIGHUP reloads the peer list: peers that stay keep their sessions, removed ones lose the tunnel, new ones get in. */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { createNetwork, denoBin, type Host, type HostProcess } from "./netns/hosts.ts";
import { generateKey, keyToBase64 } from "../src/config/key_file.ts";

const MOD = new URL("../mod.ts", import.meta.url).pathname;

function writeKey(dir: string, name: string): string {
  const path = `${dir}/${name}.key`;
  Deno.writeTextFileSync(path, keyToBase64(generateKey()) + "\n", { mode: 0o600 });
  Deno.chmodSync(path, 0o600);
  return path;
}

function peersToml(peers: [string, string][]): string {
  return `[server]\naddress = "10.61.0.1/24"\nkey_file = "server.key"\n` +
    peers.map(([name, addr]) =>
      `[[server.peers]]\nname = "${name}"\naddress = "${addr}"\nkey_file = "${name}.key"\n`
    )
      .join("");
}

function startClient(
  host: Host,
  name: string,
  dir: string,
  server: string,
  env: Record<string, string>,
): HostProcess {
  return host.spawn([
    denoBin(),
    "run",
    "-A",
    MOD,
    "client",
    "--peer",
    `${server}:51820`,
    "--tun",
    `vr-${name}`,
    "--key-file",
    `${dir}/${name}.key`,
  ], { env, logPrefix: name });
}

Deno.test("SIGHUP reloads [[server.peers]] without dropping the peers that remain", async () => {
  await using net = await createNetwork({ hosts: ["srv", "a", "b", "c"] });
  const dir = Deno.makeTempDirSync({ prefix: "vpn-reload-" });
  const env = { VPN_RUN_DIR: dir, NO_COLOR: "1" };
  try {
    for (const n of ["server", "alice", "bob", "carol"]) writeKey(dir, n);
    const config = `${dir}/vpn.toml`;
    Deno.writeTextFileSync(config, peersToml([["alice", "10.61.0.10"], ["bob", "10.61.0.11"]]));
    const srvHost = net.host("srv");
    const server = srvHost.spawn(
      [
        denoBin(),
        "run",
        "-A",
        MOD,
        "server",
        "--config",
        config,
        "--tun",
        "vr-srv",
        "--listen",
        "0.0.0.0:51820",
      ],
      { env, logPrefix: "server" },
    );
    await server.waitForOutput(/server started/, 15_000);
    const alice = startClient(net.host("a"), "alice", dir, srvHost.address, env);
    const bob = startClient(net.host("b"), "bob", dir, srvHost.address, env);
    await alice.waitForOutput(/handshake complete .*address=10\.61\.0\.10\/24/, 15_000);
    await bob.waitForOutput(/handshake complete .*address=10\.61\.0\.11\/24/, 15_000);
    await net.host("a").waitForPing("10.61.0.1", 10_000);
    await net.host("b").waitForPing("10.61.0.1", 10_000);

    // Carol is not configured yet: her handshakes go unanswered.
    const carol = startClient(net.host("c"), "carol", dir, srvHost.address, env);
    await carol.waitForOutput(/client started/, 15_000);
    assert(!(await net.host("c").ping("10.61.0.1", { count: 2, timeoutS: 1 })));

    Deno.writeTextFileSync(config, peersToml([["alice", "10.61.0.10"], ["carol", "10.61.0.12"]]));
    const before = server.output().split("\n").length;
    server.kill("SIGHUP");
    await server.waitForOutput(/reloaded peers .*peers=2/, 10_000);
    const after = server.output().split("\n").slice(before - 1).join("\n");
    assertMatch(after, /peer down peer=bob reason="removed from the config"/);

    // Alice keeps her session: she still pings, and the server did not see a new handshake from her.
    assert(await net.host("a").ping("10.61.0.1", { count: 3, timeoutS: 1 }));
    assertEquals(/peer up peer=alice/.test(server.output().split("\n").slice(before - 1).join("\n")), false);
    // Bob is cut off; Carol gets in (her client retries with backoff).
    assert(!(await net.host("b").ping("10.61.0.1", { count: 2, timeoutS: 1 })));
    await carol.waitForOutput(/handshake complete .*address=10\.61\.0\.12\/24/, 20_000);
    await net.host("c").waitForPing("10.61.0.1", 10_000);

    // A broken config on reload is reported and changes nothing.
    Deno.writeTextFileSync(config, "[server]\nmtu = 1\n");
    server.kill("SIGHUP");
    await server.waitForOutput(/reload failed; keeping the running config/, 10_000);
    assert(await net.host("c").ping("10.61.0.1", { count: 1, timeoutS: 2 }));
    for (const p of [alice, bob, carol, server]) assertEquals((await p.stop()).code, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
