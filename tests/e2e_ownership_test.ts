/**
 * End-to-end: what a key holder can do to other peers' addresses and endpoints. A peer revoked by a
 * reload while its handshakes are in flight, IPv6 takeover attempts, and captured initiations replayed
 * (from the attacker's own address and with a forged source) after a server restart.
 */
import { assert, assertEquals, assertMatch, assertNotMatch } from "./assert.ts";
import type { Host } from "./netns/hosts.ts";
import { python3Bin } from "./netns/capture.ts";
import type { StatusReport } from "../src/ops/status_report.ts";
import { eventually, newKey, pcapUdp, VPN_PORT, vpnCmd, withVpnLab } from "./netns/vpn.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const FLOOD = `${ROOT}tests/netns/initiation_flood.ts`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pinned(name: string, address: string, keyFile: string, address6?: string): string {
  return `\n[[server.peers]]\nname = "${name}"\naddress = "${address}"\nkey_file = "${keyFile}"\n` +
    (address6 ? `address6 = "${address6}"\n` : "");
}

/** Sends one UDP datagram from `host` with a forged IPv4 source (a raw socket; the kernel fills in the rest). */
async function sendSpoofed(host: Host, src: string, srcPort: number, dst: string, payload: Uint8Array) {
  const script = `
import socket, struct, sys
src, dst, sport, dport, data = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), bytes.fromhex(sys.argv[5])
udp = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(ip + udp, (dst, 0))
`;
  const hex = Array.from(payload, (b) => b.toString(16).padStart(2, "0")).join("");
  await host.runOk([python3Bin(), "-c", script, src, dst, String(srcPort), String(VPN_PORT), hex]);
}

Deno.test("e2e: a revoked peer racing a reload never holds an address after the reload", async () => {
  await withVpnLab({ hosts: ["srv", "ca"] }, async (lab, net) => {
    const [hs, ha] = [net.host("srv"), net.host("ca")];
    const keyA = newKey();
    const [fileA, fileB] = [await lab.writeKeyFile("alice", keyA), await lab.writeKeyFile("bob", newKey())];
    const config = `${lab.dir}/race.toml`;
    const write = (alice: boolean) =>
      Deno.writeTextFile(
        config,
        `[server]\naddress = "10.0.0.1/24"\n` + (alice ? pinned("alice", "10.0.0.10", fileA) : "") +
          pinned("bob", "10.0.0.11", fileB),
      );
    await write(true);
    const srv = await lab.server("srv", { args: ["--config", config] });
    const reloads = () => (srv.output().match(/reloaded peers/g) ?? []).length;
    const reload = async (alice: boolean) => {
      await write(alice);
      const n = reloads();
      srv.proc.kill("SIGHUP");
      assert(await eventually(() => Promise.resolve(reloads() > n), 10_000), "no reload");
    };

    // Alice's key keeps up to 64 handshakes in flight (fresh initiations asking for her address) while
    // the server drops and re-adds her, five times.
    const cap = await ha.capture(`udp src port ${VPN_PORT}`, 60_000, { tool: "tcpdump" });
    const flood = ha.spawn(
      [
        Deno.execPath(),
        "run",
        "-A",
        "--config",
        `${ROOT}deno.json`,
        FLOOD,
        hs.address,
        String(VPN_PORT),
        "40000",
        "10.0.0.10",
      ],
      { env: { FLOOD_KEY: keyA } },
    );
    try {
      await flood.waitForOutput(/flooding/, 15_000);
      for (let round = 0; round < 5; round++) {
        await sleep(500); // handshakes under alice's key are answered
        await reload(false);
        await sleep(1000); // every handshake that was in flight has finished
        const st = await srv.status();
        assertEquals(
          st.peers.map((p) => `${p.name}=${p.address}`),
          ["bob=10.0.0.11"],
          `round ${round}: after alice's removal the server lists ${JSON.stringify(st.peers)}`,
        );
        await reload(true);
      }
    } finally {
      await flood.stop("SIGKILL", 0);
    }
    const answers = pcapUdp(await cap.stop()).filter((d) => d.payload[0] === 2).length;
    console.log(`revocation race: ${answers} responses to the flood while alice was configured`);
    assert(answers > 0, "the flood was never answered: nothing raced the reloads");
  });
});

Deno.test("e2e: IPv6 takeover attempts are refused at config load and at handshake", async () => {
  await withVpnLab({ hosts: ["srv", "ca", "cm"] }, async (lab, net) => {
    const [hs, ha, hm] = ["srv", "ca", "cm"].map((n) => net.host(n));
    const fileA = await lab.writeKeyFile("alice", newKey());
    const base = `[server]\naddress = "10.0.0.1/24"\naddress6 = "fd00::1/64"\n`;

    // Config load: alice pinned to fd00::7, which the client at 10.0.0.7 would get.
    const bad = `${lab.dir}/bad.toml`;
    await Deno.writeTextFile(bad, base + pinned("alice", "10.0.0.10", fileA, "fd00::7"));
    const r = await hs.run(vpnCmd("server", "--config", bad, "--tun", lab.tunName("vs")), {
      env: { VPN_RUN_DIR: lab.runDir, VPN_KEY: lab.key },
    });
    assert(r.code !== 0, "a server with an overlapping address6 started");
    const err = r.stderr.trim();
    assertMatch(err, /bad\.toml:\d+: server\.peers\[0\]\.address6: got "fd00::7"; allowed: .*10\.0\.0\.7/);
    assertEquals(err.split("\n").length, 1, `not one line:\n${err}`);
    // And a prefix with fewer host bits than the IPv4 subnet (/16: 10.0.1.5 and 10.0.2.5 would share fd00::5).
    await Deno.writeTextFile(bad, `[server]\naddress = "10.0.0.1/16"\naddress6 = "fd00::1/120"\n`);
    const r2 = await hs.run(vpnCmd("server", "--config", bad, "--tun", lab.tunName("vs")), {
      env: { VPN_RUN_DIR: lab.runDir, VPN_KEY: lab.key },
    });
    assert(r2.code !== 0);
    assertMatch(
      r2.stderr.trim(),
      /bad\.toml:3: server\.address6: got "fd00::1\/120"; allowed: a prefix of \/112/,
    );

    // Handshake: alice owns 10.0.0.10 and fd00::1:a. Mallory (shared key) asks for 10.0.0.10.
    const config = `${lab.dir}/v6.toml`;
    await Deno.writeTextFile(config, base + pinned("alice", "10.0.0.10", fileA, "fd00::1:a"));
    const srv = await lab.server("srv", { args: ["--config", config] });
    const a = await lab.client("ca", srv, { keyFile: fileA });
    assertEquals([a.overlay, a.overlay6], ["10.0.0.10", "fd00::1:a"]);
    const m = await lab.client("cm", srv, { address: "10.0.0.10" });
    assertEquals([m.overlay, m.overlay6], ["10.0.0.2", "fd00::2"]);
    await Promise.all([ha, hm].map((h) => h.waitForPing("fd00::1", 5000)));

    // Mallory sends from alice's IPv6 address and from the mirror of alice's IPv4 address: dropped,
    // charged to mallory, never answered.
    const mallory = (st: StatusReport) => st.peers.find((p) => p.address === "10.0.0.2")!;
    for (const forged of ["fd00::1:a", "fd00::a"]) {
      await hm.runOk(["ip", "addr", "add", `${forged}/128`, "dev", m.tun, "nodad"]);
      const before = await srv.status();
      const spoof = await hm.run(["ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-I", forged, "fd00::1"]);
      assert(spoof.code !== 0, `a ping from ${forged} was answered:\n${spoof.stdout}`);
      const after = await srv.status();
      assert(
        mallory(after).drops.no_route - mallory(before).drops.no_route >= 3,
        JSON.stringify(mallory(after)),
      );
    }
    // Reload with alice's address6 moved onto a mirror: refused, nothing changes.
    await Deno.writeTextFile(config, base + pinned("alice", "10.0.0.10", fileA, "fd00::2"));
    srv.proc.kill("SIGHUP");
    await srv.proc.waitForOutput(/reload failed; keeping the running config.*address6/, 10_000);
    assert(await hs.ping("fd00::1:a", { count: 2 }), "alice lost fd00::1:a");
    assert(await hs.ping("fd00::2", { count: 2 }), "mallory lost fd00::2");
    assert(!(await hs.ping("fd00::a", { count: 1 })), "the mirror of alice's IPv4 address is routed");
  });
});

Deno.test("e2e: initiations replayed after a server restart get no session and move no endpoint", async () => {
  await withVpnLab({ hosts: ["srv", "ca", "mx", "vi"] }, async (lab, net) => {
    const [hs, ha, hx, hv] = ["srv", "ca", "mx", "vi"].map((n) => net.host(n));
    const fileA = await lab.writeKeyFile("alice", newKey());
    // No periodic keepalive: a redirected endpoint stays redirected until alice sends on her own.
    const config = `[server]\naddress = "10.0.0.1/24"\nkeepalive = 0\n` + pinned("alice", "10.0.0.10", fileA);

    // Record two of alice's initiations (two client starts).
    let srv = await lab.server("srv", { config });
    const cap = await ha.capture(`udp dst port ${VPN_PORT}`, 60_000, { tool: "tcpdump" });
    let a = await lab.client("ca", srv, { keyFile: fileA });
    await a.stop();
    a = await lab.client("ca", srv, { keyFile: fileA, tun: a.tun });
    await a.stop();
    const inits = pcapUdp(await cap.stop()).filter((d) => d.payload[0] === 1).map((d) => d.payload);
    assert(inits.length >= 2, `captured ${inits.length} initiations`);

    // The server restarts (its replay memory is gone); alice connects again with a new handshake.
    await srv.stop();
    srv = await lab.server("srv", { config });
    a = await lab.client("ca", srv, { keyFile: fileA, tun: a.tun });
    await ha.waitForPing(srv.overlay, 5000);
    const alice = async () => (await srv.status()).peers.find((p) => p.name === "alice")!;
    const before = await alice();
    const t0 = Date.now();
    assertEquals(before.endpoint?.split(":")[0], ha.address);
    const seenX = await hx.capture(`udp src port ${VPN_PORT}`, 60_000, { tool: "tcpdump" });
    const seenV = await hv.capture(`udp src port ${VPN_PORT}`, 60_000, { tool: "tcpdump" });
    const upLines = () => (srv.output().match(/peer up peer=alice|rekeyed peer=alice/g) ?? []).length;
    const ups = upLines();

    // 1. The first recorded initiation, replayed from the attacker's own address.
    await hx.udpBlast(hs.address, VPN_PORT, [inits[0]], 3000);
    await sleep(500);
    assertEquals((await alice()).endpoint, before.endpoint, "a replayed initiation moved alice's endpoint");
    assert(await hs.ping("10.0.0.10", { count: 3 }), "server -> alice failed after a replay");

    // 2. The second one with a forged source: the victim's address.
    await sendSpoofed(hx, hv.address, 40000, hs.address, inits[1]);
    await sleep(500);
    assertEquals((await alice()).endpoint, before.endpoint, "a spoofed-source replay moved alice's endpoint");
    assert(await hs.ping("10.0.0.10", { count: 3 }), "server -> alice failed after a spoofed replay");

    // Alice's last handshake is still the real one: its age grew by the time the replays took.
    const after = await alice();
    const aged = (after.last_handshake_s ?? 0) - (before.last_handshake_s ?? 0);
    assert(
      aged >= (Date.now() - t0) / 1000 - 0.5,
      `a replay counted as alice's handshake: ${before.last_handshake_s} -> ${after.last_handshake_s} s`,
    );
    assertEquals(upLines(), ups, "a replay brought a session up");
    // Neither the attacker nor the victim ever receives alice's traffic; at most a handshake response.
    for (const [name, c] of [["attacker", seenX], ["victim", seenV]] as const) {
      const got = pcapUdp(await c.stop());
      assertEquals(c.dropped, 0);
      assertEquals(got.filter((d) => d.payload[0] === 3).length, 0, `the ${name} received alice's data`);
      assert(got.length <= 1, `the ${name} received ${got.length} datagrams`);
    }
    assertNotMatch(srv.output(), /peer roamed/);
  });
});
