/**
 * `vpn status` end to end: a server and two clients in namespaces, traffic, then the status of each side
 * as JSON and as a table, the control socket's permissions (a non-root user is refused), and the
 * messages when nothing runs.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { createNetwork, denoBin, type Host, type HostProcess } from "./netns/hosts.ts";
import type { PeerStatus, StatusReport } from "../src/ops/status_report.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MOD = `${ROOT}mod.ts`;
const DROP_KEYS = [
  "auth",
  "busy",
  "malformed",
  "no_route",
  "oversize",
  "relay",
  "replay",
  "source",
  "wrong_source",
];

interface Cli {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `vpn ARGS` in the test's own namespace (the control socket is a file, not bound to a namespace). */
async function vpn(
  args: string[],
  env: Record<string, string>,
  asNobody?: { denoDir: string },
): Promise<Cli> {
  const deno = [denoBin(), "run", "-A", MOD, ...args];
  const cmd = asNobody
    ? [
      "setpriv",
      "--reuid=nobody",
      "--regid=nogroup",
      "--clear-groups",
      "env",
      `DENO_DIR=${asNobody.denoDir}`,
      ...deno,
    ]
    : deno;
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function statusJson(tun: string, runDir: string): Promise<StatusReport> {
  const r = await vpn(["status", "--json", "--tun", tun], { VPN_RUN_DIR: runDir });
  assertEquals(r.code, 0, `vpn status --json failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusReport;
}

function checkDrops(d: unknown): void {
  assert(typeof d === "object" && d !== null);
  assertEquals(Object.keys(d).sort(), DROP_KEYS);
  for (const v of Object.values(d)) assert(Number.isInteger(v) && (v as number) >= 0);
}

function checkTraffic(p: PeerStatus, minPackets: number): void {
  assert(p.rx_packets >= minPackets, `rx_packets ${p.rx_packets} < ${minPackets}`);
  assert(p.tx_packets >= minPackets, `tx_packets ${p.tx_packets} < ${minPackets}`);
  // Every ping is 84 bytes of IPv4 (the counters count inner packets).
  assert(p.rx_bytes >= 84 * minPackets, `rx_bytes ${p.rx_bytes}`);
  assert(p.tx_bytes >= 84 * minPackets, `tx_bytes ${p.tx_bytes}`);
  assert(p.last_handshake_s !== null && p.last_handshake_s >= 0 && p.last_handshake_s < 60);
  checkDrops(p.drops);
}

/**
 * Asserts the table is aligned: every cell of every row starts exactly under its column's header, and the
 * cells named in `expected` (one entry per row, in order) hold the given text.
 */
function checkAligned(text: string, expected: Record<string, string>[]): void {
  const lines = text.split("\n");
  const head = lines.findIndex((l) => l.startsWith("PEER "));
  assert(head >= 0, `no table header in:\n${text}`);
  const header = lines[head];
  const starts = [...header.matchAll(/(?:^|\s{2,})(\S)/g)].map((m) => m.index! + m[0].length - 1);
  assertEquals(starts.length, 9, `expected 9 columns in: ${header}`);
  const rows = lines.slice(head + 1).filter((l) => l !== "");
  assertEquals(rows.length, expected.length, text);
  for (const [i, row] of rows.entries()) {
    for (const at of starts) {
      assert(row[at] !== undefined && row[at] !== " ", `row ${i} has no cell at column ${at}:\n${text}`);
      assert(
        at === 0 || row.slice(at - 2, at) === "  ",
        `row ${i}: cell before column ${at} runs into it:\n${text}`,
      );
    }
    for (const [column, cell] of Object.entries(expected[i])) {
      const at = header.indexOf(column);
      assert(starts.includes(at), `no column ${column}`);
      assert(
        row.startsWith(`${cell} `, at) || row.slice(at) === cell,
        `row ${i}, ${column}: want ${cell}:\n${text}`,
      );
    }
  }
}

async function startPair(
  srv: Host,
  clients: Host[],
  key: string,
  runDir: string,
): Promise<{ server: HostProcess; procs: HostProcess[] }> {
  const env = { VPN_KEY: key, NO_COLOR: "1" };
  const server = srv.spawn([
    denoBin(),
    "run",
    "-A",
    MOD,
    "server",
    "--listen",
    `${srv.address}:51820`,
    "--tun",
    "stsrv0",
  ], {
    env: { ...env, VPN_RUN_DIR: `${runDir}/srv` },
  });
  await server.waitForOutput(/server started/, 15_000);
  // One after the other, so the first client gets 10.0.0.2 and the second 10.0.0.3.
  const procs: HostProcess[] = [];
  for (const [i, c] of clients.entries()) {
    const p = c.spawn(
      [denoBin(), "run", "-A", MOD, "client", "--peer", `${srv.address}:51820`, "--tun", `stcli${i}`],
      { env: { ...env, VPN_RUN_DIR: `${runDir}/${c.name}` } },
    );
    procs.push(p);
    await p.waitForOutput(/handshake complete/, 15_000);
  }
  return { server, procs };
}

Deno.test("vpn status shows peers, traffic and drops on server and client; refuses non-root", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "vpn-status-" });
  await using net = await createNetwork({ hosts: ["srv", "c1", "c2"] });
  try {
    await Deno.chmod(tmp, 0o755);
    const keyOut = await vpn(["genkey"], {});
    const key = keyOut.stdout.trim();
    const [srv, c1, c2] = ["srv", "c1", "c2"].map((n) => net.host(n));
    const { server, procs } = await startPair(srv, [c1, c2], key, tmp);

    assert(await c1.ping("10.0.0.1", { count: 5, timeoutS: 2 }), "c1 cannot ping the server");
    assert(await c2.ping("10.0.0.2", { count: 3, timeoutS: 2 }), "c2 cannot ping c1 through the server");

    // --- server, JSON
    const s = await statusJson("stsrv0", `${tmp}/srv`);
    assertEquals(s.version, 1);
    assertEquals(s.role, "server");
    assertEquals(s.interface, "stsrv0");
    assertEquals(s.address, "10.0.0.1/24");
    assertMatch(String(s.listen), /:51820$/);
    assert(typeof s.uptime_s === "number" && s.uptime_s > 0);
    assertMatch(s.crypto, /^(openssl|webcrypto)$/);
    assertMatch(s.udp, /^(batched|deno)$/);
    checkDrops(s.drops);
    // A healthy run over loopback-speed links loses nothing to the host.
    assertEquals(s.errors, { tun_write: 0, send_dropped: 0, send_refused: 0, truncated: 0 });
    assertEquals(s.peers.map((p) => p.address).sort(), ["10.0.0.2", "10.0.0.3"]);
    const p1 = s.peers.find((p) => p.address === "10.0.0.2")!;
    const p2 = s.peers.find((p) => p.address === "10.0.0.3")!;
    assertMatch(String(p1.endpoint), /^10\.203\.0\.2:\d+$/);
    assertMatch(String(p2.endpoint), /^10\.203\.0\.3:\d+$/);
    checkTraffic(p1, 5 + 3);
    checkTraffic(p2, 3);

    // --- server, table: same facts, columns aligned
    const t = await vpn(["status", "--tun", "stsrv0"], { VPN_RUN_DIR: `${tmp}/srv` });
    assertEquals(t.code, 0, t.stderr);
    assertMatch(t.stdout, /^server on stsrv0 10\.0\.0\.1\/24 listening /);
    assertMatch(t.stdout, /drops \(not charged to a peer\): auth \d+, replay \d+, no-route \d+/);
    assertMatch(t.stdout, /\nerrors: tun-write 0, send-dropped 0, send-refused 0, truncated 0\n/);
    checkAligned(
      t.stdout,
      s.peers.map((p) => ({
        PEER: p.name,
        ADDRESS: p.address!,
        ENDPOINT: p.endpoint!,
        "DROPS a/r/n/o/m/c/w/s": "0/0/0/0/0/0/0/0",
      })),
    );

    // --- client, JSON and table: it shows the server
    const c = await statusJson("stcli0", `${tmp}/c1`);
    assertEquals(c.role, "client");
    assertEquals(c.interface, "stcli0");
    assertEquals(c.address, "10.0.0.2/24");
    assertEquals(c.listen, null);
    assertEquals(c.peers.length, 1);
    assertEquals(c.peers[0].name, "server");
    assertEquals(c.peers[0].endpoint, `${srv.address}:51820`);
    checkTraffic(c.peers[0], 5 + 3);
    checkDrops(c.drops);
    assertEquals(c.errors, { tun_write: 0, send_dropped: 0, send_refused: 0, truncated: 0 });
    const ct = await vpn(["status", "--tun", "stcli0"], { VPN_RUN_DIR: `${tmp}/c1` });
    assertEquals(ct.code, 0, ct.stderr);
    checkAligned(ct.stdout, [{ PEER: "server", ADDRESS: "-", ENDPOINT: `${srv.address}:51820` }]);

    // --- the socket: 0600 in a folder the process made 0700
    assertEquals((await Deno.stat(`${tmp}/srv/stsrv0.sock`)).mode! & 0o777, 0o600);
    assertEquals((await Deno.stat(`${tmp}/srv`)).mode! & 0o777, 0o700);
    assertEquals((await Deno.stat(`${tmp}/c1`)).mode! & 0o777, 0o700);

    // --- a non-root user is refused with a clear message, by the socket's own 0600 mode: the server
    // refuses to start in a folder wider than 0700, so loosen it only now
    await Deno.chmod(`${tmp}/srv`, 0o755);
    const denoDir = `${tmp}/deno-dir`;
    await Deno.mkdir(denoDir);
    const info = JSON.parse((await vpnInfo()).stdout) as { npmCache: string };
    // nobody cannot read root's Deno cache; give it a copy of the npm packages the CLI imports.
    await run(["cp", "-r", info.npmCache, `${denoDir}/npm`]);
    await run(["chown", "-R", "nobody:nogroup", denoDir]);
    const n = await vpn(["status", "--tun", "stsrv0"], { VPN_RUN_DIR: `${tmp}/srv` }, { denoDir });
    assertEquals(n.code, 1, `as nobody: ${n.stdout}${n.stderr}`);
    assertEquals(n.stdout, "");
    assertMatch(
      n.stderr,
      /^vpn status: permission denied on \S+stsrv0\.sock: the control socket is root-only; run as root\n$/,
    );

    // --- stopping removes the socket
    for (const p of [...procs, server]) assertEquals((await p.stop("SIGTERM", 5000)).code, 0, net.logs());
    await assertMissing(`${tmp}/srv/stsrv0.sock`);
  } catch (e) {
    console.error(net.logs());
    throw e;
  } finally {
    await net.destroy();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("vpn status without a running instance says so and exits 1", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "vpn-status-" });
  try {
    const none = await vpn(["status", "--tun", "nosuch0"], { VPN_RUN_DIR: tmp });
    assertEquals(none.code, 1);
    assertEquals(none.stdout, "");
    assertEquals(
      none.stderr,
      `vpn status: no vpn is running on nosuch0 (nothing listens on ${tmp}/nosuch0.sock)\n`,
    );
    // A socket file left behind by a killed instance (exiting without close keeps the file): same message.
    const left = `${tmp}/stale0.sock`;
    const exited = await new Deno.Command(denoBin(), {
      args: ["eval", `Deno.listen({ transport: "unix", path: ${JSON.stringify(left)} }); Deno.exit(0)`],
      stdin: "null",
    }).output();
    assert(exited.success && (await Deno.lstat(left)).isSocket, "could not leave a stale socket behind");
    const stale = await vpn(["status", "--json", "--tun", "stale0"], { VPN_RUN_DIR: tmp });
    assertEquals(stale.code, 1);
    assertMatch(stale.stderr, /^vpn status: no vpn is running on stale0 /);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

async function assertMissing(path: string): Promise<void> {
  try {
    await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  throw new Error(`${path} still exists`);
}

async function run(cmd: string[]): Promise<void> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdin: "null" }).output();
  if (!out.success) throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

async function vpnInfo(): Promise<Cli> {
  const out = await new Deno.Command(denoBin(), { args: ["info", "--json"], stdin: "null" }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout), stderr: "" };
}
